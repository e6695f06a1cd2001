"""`vigil serve`: the engine as a long-running service with an HTTP API, a live web page,
/healthz and Prometheus /metrics. Needs the `serve` extra; nothing here is imported by `vigil run`."""
