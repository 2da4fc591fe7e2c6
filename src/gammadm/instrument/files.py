"""Choose a CTAO prod5 IRF file explicitly (never by directory order)."""

from __future__ import annotations

from pathlib import Path

from ..data import fetch as _fetch
from ..errors import InputError

__all__ = ["IRFFileError", "prod5_filename", "prod5_group", "resolve_irf_file"]

_ARRAYS = {
    ("South", "full"): "14MSTs37SSTs",
    ("South", "MST"): "14MSTs",
    ("South", "SST"): "37SSTs",
    ("North", "full"): "4LSTs09MSTs",
    ("North", "LST"): "4LSTs",
    ("North", "MST"): "09MSTs",
}


class IRFFileError(InputError, ValueError):
    """An IRF file that cannot serve this analysis; the message names the file."""


def _array(site: str, subarray: str) -> str:
    try:
        return _ARRAYS[(site, subarray)]
    except KeyError:
        allowed = sorted(s for (st, s) in _ARRAYS if st == site)
        raise IRFFileError(
            f"prod5 has no '{subarray}' subarray for site {site}; allowed: {allowed}"
        ) from None


def prod5_group(site: str, zenith_deg: int, subarray: str = "full") -> str:
    """Name of the prod5 archive group, e.g. ``South-20deg`` or ``North-LSTSubArray-40deg``."""
    _array(site, subarray)
    sub = "" if subarray == "full" else f"{subarray}SubArray-"
    return f"{site}-{sub}{zenith_deg}deg"


def prod5_filename(site: str = "South", zenith_deg: int = 20, azimuth: str = "AverageAz",
                   cut_time_s: int = 18000, subarray: str = "full") -> str:
    """The prod5 v0.1 file for an explicit site, zenith, azimuth and cut time.

    >>> prod5_filename()
    'Prod5-South-20deg-AverageAz-14MSTs37SSTs.18000s-v0.1.fits.gz'
    """
    return (f"Prod5-{site}-{zenith_deg}deg-{azimuth}-{_array(site, subarray)}."
            f"{cut_time_s}s-v0.1.fits.gz")


def resolve_irf_file(irf_cfg: dict, root: Path) -> Path:
    """Path of the IRF file an observation's ``irf`` config asks for.

    A user's own file (``irf.file``) is taken as it is; a prod5 file is checked
    against the data manifest (missing or altered: `DataError` naming the fix).
    """
    if irf_cfg.get("file"):
        path = Path(irf_cfg["file"])
        if not path.is_file():
            raise IRFFileError(f"IRF file {path} (config irf.file) does not exist")
        return path
    name = prod5_filename(irf_cfg["site"], irf_cfg["zenith_deg"], irf_cfg["azimuth"],
                          irf_cfg["cut_time_s"], irf_cfg.get("subarray", "full"))
    return _fetch.verify_file(Path(root), f"irf/prod5/{name}")
