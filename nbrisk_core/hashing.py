"""SHA-256 of a file (read in 1 MiB blocks) and of an array (dtype, shape and bytes): the one file hash of
model files, bundles and imports, and the array hash of the store and the export."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def sha256_file(path: Path | str) -> str:
    """Hex SHA-256 of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def feed_array(digest, values: np.ndarray) -> None:
    """Feed an array's dtype, shape and bytes into a running ``hashlib`` digest."""
    arr = np.ascontiguousarray(values)
    digest.update(f"nd:{arr.dtype.str}:{arr.shape}".encode())
    digest.update(arr.tobytes() if arr.dtype != object else repr(arr.tolist()).encode())


def sha256_array(values: np.ndarray) -> str:
    """Hex SHA-256 of an array by dtype, shape and bytes (as ``store.codec.sha256_of`` hashes arrays)."""
    digest = hashlib.sha256()
    feed_array(digest, values)
    return digest.hexdigest()
