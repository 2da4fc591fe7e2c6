"""Shared fixtures: the project's data directory (fetched by the README set-up) and the
seed IRF, read once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED_IRF = "irf/prod5/Prod5-South-20deg-AverageAz-14MSTs37SSTs.18000s-v0.1.fits.gz"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The verified data directory ($GAMMADM_DATA or resources/data of the project)."""
    from gammadm.data import data_dir, load_manifest, required_files, verify_files

    root = data_dir()
    if not root.is_absolute():
        root = ROOT / root
    manifest = load_manifest()
    # fails (not skips) with the file and the fix if the set-up step was not run
    verify_files(root, required_files(manifest), manifest)
    return root


@pytest.fixture(scope="session")
def irf_path(data_root) -> Path:
    return data_root / SEED_IRF


@pytest.fixture(scope="session")
def irf(irf_path):
    from gammadm.instrument import InstrumentResponse

    return InstrumentResponse.read(irf_path)


@pytest.fixture(scope="session")
def gammapy_irfs(irf_path):
    from gammapy.irf import load_irf_dict_from_file

    return load_irf_dict_from_file(irf_path)


@pytest.fixture(scope="session")
def seed_config():
    from gammadm.config import load_config

    return load_config(ROOT / "config" / "config.yaml")


@pytest.fixture
def chdir_root(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("GAMMADM_DATA", raising=False)
    return ROOT
