"""compute rules."""
