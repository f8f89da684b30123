"""Errors that mean "the user's input is wrong": the CLI prints them as one line, no traceback."""


class UserError(Exception):
    """A problem with configuration or data that the user can fix."""


class ConfigError(UserError, ValueError):
    """A config key has an impossible value; the message names the key, value and rule."""


class DataError(UserError):
    """A data file or row is malformed; the message names the file, row and field."""


class TrainingDiverged(UserError):
    """Too many optimizer steps in a row had a non-finite gradient; the last good state is saved."""
