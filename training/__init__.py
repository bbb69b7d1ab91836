"""slotcast training package."""
