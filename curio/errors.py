"""Errors that mean "the user's input is wrong": the CLI prints them as one line, no traceback."""


class UserError(Exception):
    """A problem with configuration or data that the user can fix."""


class ConfigError(UserError, ValueError):
    """A config key has an impossible value; the message names the key, value and rule."""


class DataError(UserError):
    """A data file or row is malformed; the message names the file, row and field."""


class TrainingDiverged(UserError):
    """Too many optimizer steps in a row had a non-finite gradient; the last good state is saved."""


def check_count(key: str, value: object) -> None:
    """``key=value`` must be an integer >= 1 (a batch size, a number of steps); a
    :class:`ConfigError` naming the key otherwise. ``True`` is not a count."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key}={value}: must be an integer >= 1")
