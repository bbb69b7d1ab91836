"""slotcast pipelines package."""
