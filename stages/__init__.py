"""Built-in stage kinds, one module per family, declared as `vigil.stages` entry points in pyproject.toml."""
