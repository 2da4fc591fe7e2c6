"""The common base of errors a user fixes by changing an input (a config field, a file,
a store to complete): the command line prints the message, which names the field or
file, and exits with status 2. A module of its own so that catching these errors costs
no imports."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(Exception):
    """Bad input, with a message naming the field or file and the fix."""
