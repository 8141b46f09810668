"""Exceptions that carry a message meant for the user (the CLI prints it as one line)."""


class ImagioError(Exception):
    """A problem with the user's input, stated with what to do about it."""


class InputError(ImagioError):
    """Input file or data that cannot be used (missing, not an image, wrong dimension, empty)."""


class Cancelled(ImagioError):
    """Long-running work stopped by the user's cancel request."""


class InputWarning(UserWarning):
    """Something about an input that the result depends on (geometry corrected, slices dropped,
    padding replaced): issued with ``warnings.warn`` and kept in ``Volume.warnings``, so the CLI
    prints it and the commands put it into their JSON outputs."""
