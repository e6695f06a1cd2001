"""Model catalog, resolver, inference backends and per-family pre/post-processing."""
