"""Errors the command line turns into one clear line and an exit code.

The library raises these instead of printing, so scripts that import `mixup_cli` get exceptions
and the CLI gets exit codes: 2 for bad usage or bad config, 1 for failures at run time.
"""


class MixupError(Exception):
    """Base class: a failure whose message is fit to show a user as is."""

    exit_code = 1


class ConfigError(MixupError, ValueError):
    """Bad usage: an unknown key, a wrong type, an out-of-range value, a missing file."""

    exit_code = 2


class RunError(MixupError, RuntimeError):
    """A failure while working: a diverging loss, a full disk."""

    exit_code = 1


class Interrupted(Exception):
    """Work stopped on request after saving `checkpoint`, from which --resume continues exactly."""

    def __init__(self, message: str, checkpoint):
        super().__init__(message)
        self.checkpoint = checkpoint
