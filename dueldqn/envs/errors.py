"""Errors of the envs package, in a module of their own so that the env modules import them without a cycle."""

from __future__ import annotations


class MissingDependency(ImportError):
    """An optional package an environment needs is not installed; the message says what to install."""
