"""The corpus stage's errors, in a module without datatrove: the command line catches them cheaply."""

from octo.errors import StageError


class CorpusBuildError(StageError):
    """A stage did not complete (failed tasks are listed with the tail of their logs)."""


class RefineServerError(StageError):
    """The server could not be reached (or went away): the task stops, its finished documents are kept."""
