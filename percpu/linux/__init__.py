"""The emulated kernel, laid out as linux.git is: percpu/linux/kernel/fork.py
stands for kernel/fork.c, percpu/linux/arch/x86/mm/tlb.py for
arch/x86/mm/tlb.c, and so on; each module's first line names its file and
the README's sources table names the version or patch each function follows.
Only the mm paths that decide the lazy-TLB comparison are here."""
