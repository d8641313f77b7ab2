"""Desktop front end: the Detect thaw slumps dock, its background tasks, styles and installer."""
