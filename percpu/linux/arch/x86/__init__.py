"""linux.git's arch/x86/."""
