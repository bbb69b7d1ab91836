"""Errors of the model layer. Each knows its CLI exit code and its HTTP status, so that the CLI and
the service can map them without knowing this layer (see pipelines/cli.py)."""

from __future__ import annotations


class SlotcastModelError(Exception):
    """Base of every error raised by ``models``."""

    exit_code: int = 1
    http_status: int = 500


class ModelFitError(SlotcastModelError):
    """Training produced no usable model: empty matrix, NaN factors, a degenerate label."""

    exit_code = 1
    http_status = 500


class IncompatibleBundleError(SlotcastModelError):
    """A saved bundle is missing a file, corrupted, or was written by incompatible library versions.

    Serving answers 503 (no usable model) rather than 500: the service itself is fine.
    """

    exit_code = 1
    http_status = 503


class FeatureMismatchError(SlotcastModelError, ValueError):
    """A feature frame lacks a feature the ranker was trained on (a caller bug or a stale service)."""

    exit_code = 2
    http_status = 500


class UnknownEntityError(SlotcastModelError, KeyError):
    """An id that must be known is not. Unknown users and products on the normal paths never raise
    this (they get empty results or NaN scores); only explicit lookups do."""

    exit_code = 2
    http_status = 404

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "unknown entity"
