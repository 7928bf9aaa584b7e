"""linux.git's init/."""
