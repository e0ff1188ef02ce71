"""Errors that name the file or key at fault and the fix (torch-free: the workflow imports
them while planning)."""


class DataError(ValueError):
    """Bad or missing input data; the message names the file and the fix."""


class PackError(ValueError):
    """A pack that cannot be trained as asked; the message names the config key."""


class Interrupted(BaseException):
    """A run stopped by a scheduler's signal after saving its state (a request to stop, like
    KeyboardInterrupt, not an error of the run): the next try resumes where it saved.
    ``progressed``: whether this try trained at all (a try that did not is requeued only when
    preempted, never again and again at a time limit)."""

    def __init__(self, message: str, progressed: bool = True):
        super().__init__(message)
        self.progressed = progressed
