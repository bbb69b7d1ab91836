"""slotcast serving package."""
