"""slotcast models package."""
