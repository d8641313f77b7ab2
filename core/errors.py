"""Errors that reach the user as one line, never as a traceback."""


class UserError(Exception):
    """Bad input or an impossible request. ``str(err)`` is one line that says what to do."""


class Cancelled(Exception):
    """The user cancelled the run; no output that looks complete is left behind."""
