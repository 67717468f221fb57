"""`python -m practicum ...` runs the CLI."""

from practicum.cli import main

raise SystemExit(main())
