"""`watchfloor serve`: the whole service in one process (intake, pipeline, storage, operations)."""
