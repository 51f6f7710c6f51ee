"""Data: the schema, the registry of real datasets, simulators and loaders."""
