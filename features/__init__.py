"""slotcast features package."""
