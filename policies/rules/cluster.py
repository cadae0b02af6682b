"""cluster rules."""
