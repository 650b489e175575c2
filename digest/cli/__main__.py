"""`python -m digest.cli` runs the `digest` command."""
from digest.cli.main import main

main()
