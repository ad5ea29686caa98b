"""The error family the command line prints as one line (no traceback)."""


class HumanParseError(Exception):
    """A problem the user can act on: bad input, a missing file, a mismatched checkpoint."""


class CheckpointError(HumanParseError):
    """A checkpoint file is missing, unreadable, or does not match what is asked of it."""


class ConfigError(HumanParseError):
    """A configuration value is missing, malformed or out of range."""


class OptionError(HumanParseError):
    """Options that do not go together, or one the chosen model does not read; the command
    line reports it as a usage error (exit status 2)."""
