"""linux.git's arch/x86/mm/."""
