"""One error hierarchy. Library code raises these and never prints or exits; the CLI maps them to
messages and exit codes in one place."""

from __future__ import annotations


class ImgsearchError(Exception):
    """Base of every error imgsearch means to show a user. The message says what to do."""

    exit_code = 1


class ConfigError(ImgsearchError):
    """Settings or arguments that cannot work (unknown model profile, bad URL...)."""

    exit_code = 2


class ModelUnavailableError(ImgsearchError):
    """Model weights are not on this machine and cannot be fetched (offline, no local path)."""

    exit_code = 3


class StoreError(ImgsearchError):
    """The catalog or the vector store cannot be opened or written."""

    exit_code = 4


class StoreMismatchError(StoreError):
    """The index was built with another model (or vector size) than the one asked for."""


class StoreLockedError(StoreError):
    """Another process holds the stores for writing."""


class BadImageError(ImgsearchError):
    """A file that cannot be used as an image; its message is the one-line reason kept in the
    catalog."""
