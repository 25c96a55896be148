"""Installed versions of distributions, for the records that name what a result or an export was made with."""

from __future__ import annotations

from importlib import metadata


def installed_version(package: str) -> str | None:
    """The installed version of distribution ``package`` (``"ale-py"``), or None where it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
