"""linux.git's mm/."""
