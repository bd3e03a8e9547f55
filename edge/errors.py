"""User-facing errors: the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class EmopiError(Exception):
    """A problem the user can fix; ``str(err)`` is one line that says what and how."""

    exit_code = 2


class NotImplementedYet(EmopiError):
    """A sub-command that a later release fills in."""

    exit_code = 3
