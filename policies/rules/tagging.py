"""tagging rules."""
