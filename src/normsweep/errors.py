"""Errors that name the file or key at fault and the fix (torch-free: the workflow imports
them while planning)."""


class DataError(ValueError):
    """Bad or missing input data; the message names the file and the fix."""


class PackError(ValueError):
    """A pack that cannot be trained as asked; the message names the config key."""
