"""The one exception type for bad user input (unknown env, bad flag values, missing ROMs or GL).

Launchers catch it, print its message as a single line on stderr and exit with status 2,
without a traceback and without touching an existing run directory.
"""


class UsageError(Exception):
    """Bad input or a missing system dependency, explained in one line."""
