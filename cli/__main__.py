"""`python -m percpu.cli`: the console script."""
from percpu.cli import main

main()
