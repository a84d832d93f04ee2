"""Exceptions raised for invalid user input.

Every module that reads files, names or sizes from a user raises
:class:`InputError` with a message that names the offending value and says
what to do. The command line turns it into one line on stderr and exit
code 2; library callers can catch it like any other exception.
"""


class InputError(ValueError):
    """Invalid user input: a bad file, name, size or shape."""


class SimulationError(RuntimeError):
    """An internal invariant of a finished simulation does not hold."""
