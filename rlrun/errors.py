"""User-facing errors: the CLI prints these as one line and exits non-zero, without a traceback."""


class RlrunError(Exception):
    """Base class for errors caused by user input rather than by a bug."""

    exit_code = 2  # bad input


class ConfigError(RlrunError):
    """A config value is invalid. The message names the key and the allowed values."""


class IncompatibleSpaceError(ConfigError):
    """An agent cannot drive the environment's action (or observation) space."""


class CheckpointError(RlrunError):
    """A checkpoint or run directory is missing, incomplete or corrupt."""


class RunDirBusyError(RlrunError):
    """Another process holds the run directory's lock: two writers would interleave and delete each other's
    rows, so the second one stops before touching anything."""


class TrainingDivergedError(RlrunError, FloatingPointError):
    """A loss became NaN or infinite: the run stops with a one-line report instead of training on garbage."""


class EnvCopyError(RlrunError):
    """An env copy failed: its env raised, its worker process died or hung, or its Ray actor was lost. The
    message names the copy; the trainer checkpoints before the error reaches the user."""

    exit_code = 1  # not bad input: the run failed, and `rlrun train resume=<dir>` continues it


class SimulationLimitError(RlrunError):
    """A simulation would exceed a limit of its own bookkeeping (e.g. more messages in flight than it can
    tell apart): the run stops with one line instead of silently mixing them up."""
