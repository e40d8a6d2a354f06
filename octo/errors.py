"""The project's exceptions: one small hierarchy, so the ``octo`` command can print any of them as one line.

``OctoError`` is for what a user can fix (a config field, an input file, a missing asset, a busy output
folder); its message names the file, line or field. Anything else is a bug and keeps its traceback.
"""


class OctoError(Exception):
    """A user-facing error: the message says what is wrong and where."""


class ConfigError(OctoError, ValueError):
    """A config that cannot be loaded or does not make sense; the message names the file and the field."""


class InputError(OctoError, ValueError):
    """A bad input file (a corpus, a metrics log, an export); the message names the file and line."""


class MissingInputError(InputError, FileNotFoundError):
    """An input file or folder that is not there; the message names it."""


class StageError(OctoError, RuntimeError):
    """A stage cannot go on (its inputs are missing or inconsistent); the message says which and why."""


class MissingAssetError(OctoError, RuntimeError):
    """An offline asset is not installed (the message says how to install it)."""
