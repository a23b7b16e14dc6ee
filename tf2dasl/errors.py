"""The base of every error a user can cause: the CLI prints its message as one line, never a traceback."""


class UserError(ValueError):
    """Something the user can fix (a path, a file, a config, an input); the message names it and the fix."""
