"""linux.git's include/linux/."""
