"""numba kernels: inner integrals on plain arrays."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["numba_cache_dir", "source_digest", "warm_sentinel"]


def numba_cache_dir() -> Path:
    """numba's cache directory for these kernels: one per user and package version.

    One shared, pre-warmed cache spares every job the compile; a per-job cache would
    recompile everything each time, and concurrent first compiles into one cache are a
    known cause of crashes in cluster jobs (so the workflow warms it once, first).
    """
    from .. import __version__

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gammadm" / "numba" / __version__


def source_digest(root: str | Path | None = None) -> str:
    """Digest (12 hex digits) of the package's Python sources under ``root`` (default:
    this package).

    numba keys its cache by the kernel's source file, but a change in how a kernel is
    called (argument types, array layouts) compiles a new version at the first call:
    inside a chunk job, concurrently with others, if nothing warmed it. A version
    number does not change between commits of a checkout; this digest does.
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def warm_sentinel() -> Path:
    """The mark that `gammadm warm-numba` has warmed the cache for these sources."""
    return numba_cache_dir() / f"warm-{source_digest()}.ok"
