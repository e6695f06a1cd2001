"""Built-in stage kinds, one module per family. Importing a module registers its kinds."""
