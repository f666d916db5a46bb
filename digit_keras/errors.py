"""Errors caused by what the user gave us; the CLI prints them as one line and exits 2."""


class UserError(Exception):
    """Bad input, missing files or bad options: reported without a traceback."""


class DataError(UserError):
    """A data file is missing or malformed; the message names file, row and column."""


class ConfigError(UserError):
    """A config file or override names an unknown key or holds a value of the wrong type."""
