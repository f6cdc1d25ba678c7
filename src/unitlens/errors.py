"""The one exception type unitlens raises for problems a user can act on."""

from __future__ import annotations


class UnitlensError(Exception):
    """A problem with the user's input, files or settings.

    The message names what was wrong (the file, the field) and what was expected. The CLI prints it
    without a traceback and exits with status 2.
    """
