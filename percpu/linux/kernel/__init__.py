"""linux.git's kernel/."""
