"""Sub-commands of the slotcast CLI, one module per area."""
