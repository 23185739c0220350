"""`python -m overdrive` runs the `overdrive` command."""

from overdrive.cli import main

main()
