"""Fetch, verify and cache the published data sets gammadm relies on.

Every file comes from one pinned wheel on PyPI (GammaBayes 0.1.9, which bundles the
CTAO prod5 IRFs, the Fermi-LAT GC cut-out, the HGPS catalogue, the PPPC 4 DM ID
table and the scalar-singlet grids). Each file is checked against the sha256 in
``manifest.json`` (shipped with the package), so a truncated or edited copy is never
used. Provenance (source, version, licence) is written beside the files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = [
    "DataError",
    "FetchReport",
    "data_dir",
    "fetch_data",
    "load_manifest",
    "required_files",
    "verify_file",
    "verify_files",
    "singlet_cache_path",
    "resolve_data_file",
]

ENV_VAR = "GAMMADM_DATA"
DEFAULT_DIR = Path("resources") / "data"
PROVENANCE = "PROVENANCE.json"
CACHE_SUBDIR = "cache"


class DataError(InputError, RuntimeError):
    """A data file is missing, truncated or altered; the message names file and fix."""


@dataclass
class FetchReport:
    """What one ``fetch_data`` call did."""

    data_dir: Path
    downloaded: bool = False
    extracted: list[str] = field(default_factory=list)
    verified: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)


def load_manifest() -> dict:
    """The committed manifest: source wheel, data sets, per-file sha256."""
    text = resources.files("gammadm.data").joinpath("manifest.json").read_text()
    return json.loads(text)


def data_dir(configured: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory: config value, else ``$GAMMADM_DATA``, else default.

    Relative paths are taken relative to the current working directory (the project
    root when run by Snakemake).
    """
    if configured:
        return Path(configured)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_DIR


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def required_files(manifest: dict, irf_groups: list[str] | None = None) -> list[str]:
    """Manifest paths needed for the given prod5 IRF groups (e.g. ``South-20deg``)."""
    groups = set(manifest["default_irf_groups"] if irf_groups is None else irf_groups)
    out = []
    for rel, entry in manifest["files"].items():
        group = entry.get("irf_group")
        if group is None or group in groups:
            out.append(rel)
    return sorted(out)


def verify_file(root: Path, rel: str, manifest: dict | None = None) -> Path:
    """Check one file against the manifest; raise `DataError` naming file and fix."""
    manifest = manifest or load_manifest()
    entry = manifest["files"].get(rel)
    if entry is None:
        raise DataError(f"{rel}: not a file of the gammadm data manifest")
    path = root / rel
    fix = f"run `gammadm fetch-data` (data directory {root})"
    if not path.is_file():
        raise DataError(f"data file {path} is missing; fix: {fix}")
    if "size" in entry and path.stat().st_size != entry["size"]:
        raise DataError(
            f"data file {path} has {path.stat().st_size} bytes, expected {entry['size']} "
            f"(truncated or altered); fix: delete it and {fix}"
        )
    if _sha256(path) != entry["sha256"]:
        raise DataError(
            f"data file {path} fails its sha256 check (altered or corrupted); "
            f"fix: delete it and {fix}"
        )
    return path


def verify_files(root: Path, rels: list[str], manifest: dict | None = None) -> None:
    manifest = manifest or load_manifest()
    for rel in rels:
        verify_file(root, rel, manifest)


def _download_wheel(manifest: dict, dest: Path) -> Path:
    """``pip download`` the pinned wheel into ``dest`` and check its sha256."""
    src = manifest["source"]
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "-d", str(dest),
        f"{src['package']}=={src['version']}",
    ]
    print(f"downloading {src['package']}=={src['version']} (about 55 MB)", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = dest / src["wheel"]
    if proc.returncode != 0 or not wheel.is_file():
        raise DataError(
            f"could not download {src['package']}=={src['version']} from PyPI:\n"
            f"{proc.stderr.strip()[-2000:]}\nfix: check the network or pip's index settings"
        )
    if _sha256(wheel) != src["sha256"]:
        raise DataError(f"downloaded wheel {wheel} fails its pinned sha256; refusing to use it")
    return wheel


def _extract(wheel: Path, root: Path, rels: list[str], manifest: dict) -> list[str]:
    done = []
    with zipfile.ZipFile(wheel) as zf:
        archives: dict[str, tarfile.TarFile] = {}
        for rel in rels:
            entry = manifest["files"][rel]
            member = entry["member"]
            if "archive_member" in entry:
                if member not in archives:
                    blob = zf.read(member)
                    if hashlib.sha256(blob).hexdigest() != manifest["archives"][member]["sha256"]:
                        raise DataError(f"archive {member} in {wheel.name} fails its sha256")
                    archives[member] = tarfile.open(fileobj=io.BytesIO(blob))
                fh = archives[member].extractfile(entry["archive_member"])
                data = fh.read()
            else:
                data = zf.read(member)
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(target.suffix + ".part")
            tmp.write_bytes(data)
            os.replace(tmp, target)  # atomic: a killed fetch never leaves half a file
            done.append(rel)
    return done


def singlet_cache_path(root: Path, grid: str) -> Path:
    """Binary cache (npz) of a scalar-singlet CSV grid: ``darkSUSY`` or ``dimauromattia``."""
    return root / CACHE_SUBDIR / f"annihilation_ratios__{grid}.npz"


def _convert_singlet(root: Path, manifest: dict) -> list[str]:
    """Parse the slow scalar-singlet CSVs once into npz (keyed to the source sha256)."""
    done = []
    for rel, entry in manifest["files"].items():
        if not rel.startswith("singlet/"):
            continue
        grid = rel.split("__")[-1].removesuffix(".csv")
        out = singlet_cache_path(root, grid)
        if out.is_file():
            with np.load(out) as z:
                if str(z["source_sha256"]) == entry["sha256"]:
                    continue
        with open(root / rel) as fh:
            header = fh.readline()
        # header: quoted names with spaces; the first column is a row index
        names = [t for t in header.replace('"mS [GeV]"', "mS_GeV")
                 .replace('"hadrons (below confinement scale)"', "hadrons").split()]
        table = np.loadtxt(root / rel, skiprows=1)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.stem + ".part.npz")
        np.savez(tmp, table=table[:, 1:], columns=np.array(names),
                 source_sha256=np.array(entry["sha256"]))
        os.replace(tmp, out)
        done.append(str(out.relative_to(root)))
    return done


def _write_provenance(root: Path, manifest: dict, present: list[str]) -> None:
    src = manifest["source"]
    prov = {
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {**src, "command": "pip download --no-deps --only-binary=:all: "
                   f"{src['package']}=={src['version']}"},
        "datasets": manifest["datasets"],
        "files": {rel: {k: manifest["files"][rel][k] for k in
                        ("member", "sha256", "dataset") if k in manifest["files"][rel]}
                  for rel in present},
    }
    (root / PROVENANCE).write_text(json.dumps(prov, indent=1) + "\n")


def fetch_data(root: Path | None = None, irf_groups: list[str] | None = None,
               wheel: Path | None = None) -> FetchReport:
    """Make the data directory complete and verified; download only what is missing.

    Parameters
    ----------
    root : Path, optional
        Data directory (see `data_dir`).
    irf_groups : list of str, optional
        prod5 groups such as ``"South-20deg"`` (default: the manifest's default).
    wheel : Path, optional
        An already downloaded GammaBayes 0.1.9 wheel (checked against its sha256).
    """
    manifest = load_manifest()
    root = Path(root) if root is not None else data_dir()
    groups = manifest["default_irf_groups"] if irf_groups is None else irf_groups
    unknown = sorted(set(groups) - {a["irf_group"] for a in manifest["archives"].values()})
    if unknown:
        raise DataError(f"unknown prod5 IRF group(s) {unknown}")
    rels = required_files(manifest, groups)
    report = FetchReport(data_dir=root)
    missing = []
    for rel in rels:
        try:
            verify_file(root, rel, manifest)
        except DataError:
            missing.append(rel)
    if missing:
        root.mkdir(parents=True, exist_ok=True)
        cached = root / CACHE_SUBDIR / manifest["source"]["wheel"]
        if wheel is None and cached.is_file() and _sha256(cached) == manifest["source"]["sha256"]:
            wheel = cached  # repairs and new IRF groups need no second download
        if wheel is None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cached.parent) as tmp:
                os.replace(_download_wheel(manifest, Path(tmp)), cached)
            wheel = cached
            report.downloaded = True
        elif _sha256(Path(wheel)) != manifest["source"]["sha256"]:
            raise DataError(f"wheel {wheel} fails its pinned sha256")
        report.extracted = _extract(Path(wheel), root, missing, manifest)
        verify_files(root, missing, manifest)
    report.verified = rels
    report.converted = _convert_singlet(root, manifest)
    present = [rel for rel in manifest["files"] if (root / rel).is_file()]
    _write_provenance(root, manifest, present)
    return report


#: Config keys of ``data_files`` and the published file each one replaces.
PUBLISHED = {
    "pppc_table": "pppc/AtProduction_gamma_EW_corrections.dat",
    "hgps_catalogue": "hess/hgps_catalog_v1.fits.gz",
    "fermi_iem": "fermi/gll_iem_v06_gc.fits.gz",
    "singlet_table": "singlet/annihilation_ratios__{grid}.csv",
}


def resolve_data_file(cfg: dict, key: str) -> Path:
    """The file a campaign uses for ``key``: the user's own or the verified published one.

    Raises `DataError` naming the config field (user file missing) or the published
    file and the fix (missing or altered).
    """
    own = cfg.get("data_files", {}).get(key)
    if own:
        path = Path(own)
        if not path.is_file():
            raise DataError(f"config field 'data_files.{key}': file {path} does not exist")
        return path
    rel = PUBLISHED[key].format(grid=cfg["dark_matter"]["spectrum"]["singlet_grid"])
    return verify_file(data_dir(cfg.get("data_dir")), rel)
