"""numba kernels: inner integrals on plain arrays."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["numba_cache_dir"]


def numba_cache_dir() -> Path:
    """numba's cache directory for these kernels: one per user and package version.

    One shared, pre-warmed cache spares every job the compile; a per-job cache would
    recompile everything each time, and concurrent first compiles into one cache are a
    known cause of crashes in cluster jobs (so the workflow warms it once, first).
    """
    from .. import __version__

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gammadm" / "numba" / __version__
