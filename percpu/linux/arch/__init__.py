"""linux.git's arch/."""
