"""linux.git's kernel/sched/."""
