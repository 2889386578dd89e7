"""``python -m clm.app.cli`` runs the CLI."""

from clm.app.cli import main

main()
