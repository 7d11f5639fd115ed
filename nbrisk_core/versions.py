"""The software versions a written result records (model cards, prognosis configs, stored cases, reports)."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata


def software_versions(packages: Iterable[str] = ()) -> dict[str, str | None]:
    """NBRisk's and Python's versions, then each of ``packages`` as installed (None where it is absent).

    >>> versions = software_versions(["numpy", "no-such-package-nbrisk"])
    >>> list(versions)[:2], versions["no-such-package-nbrisk"]
    (['nbrisk', 'python'], None)
    """
    from nbrisk_core import __version__

    versions: dict[str, str | None] = {"nbrisk": __version__, "python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions
