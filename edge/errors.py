"""User-facing errors: the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class EmopiError(Exception):
    """A problem the user can fix; ``str(err)`` is one line that says what and how."""

    exit_code = 2


class ConfigError(EmopiError):
    """An invalid setting; the message names the file, variable or flag it came from.

    When one setting is at fault, ``key`` is its dotted name (``detect.every``) and
    ``problem`` the message without the name (``must be 1..100, not 0``), so the caller can
    name the setting the way the user wrote it.
    """

    def __init__(self, message: str, key: str = "", problem: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.problem = problem
