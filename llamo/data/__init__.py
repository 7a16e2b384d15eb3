"""Data: the procedurally generated motion-QA suite, its renderer and dataset loaders."""
