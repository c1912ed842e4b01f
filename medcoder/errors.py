"""Errors a user can act on: each says what went wrong and where, in one line."""

from __future__ import annotations


class MedcoderError(Exception):
    """Base for every error medcoder raises on purpose; the CLI prints it in one line."""


class UnknownCodeError(MedcoderError, KeyError):
    """A code that does not exist in the code system asked about."""

    def __init__(self, code: str, system: str) -> None:
        self.code = code
        self.system = system
        super().__init__(f"unknown {system} code: {code!r}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class DataFileError(MedcoderError):
    """A knowledge or user data file that is missing or not in the expected shape."""


class StorageError(MedcoderError):
    """A file medcoder writes or reads that is full, read-only, locked or damaged; names the file and the fix."""


class ConfigError(MedcoderError):
    """A settings file or `MEDCODER_*` variable medcoder cannot use; names the file, line and field."""
