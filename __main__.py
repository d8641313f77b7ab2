"""`python -m thaw_slump_mapper ...` runs the command line."""
from .cli import main

raise SystemExit(main())
