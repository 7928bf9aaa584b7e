"""linux.git's include/."""
