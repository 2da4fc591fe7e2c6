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


SLURM_SCRIPT = ROOT / "scripts" / "slurm-localhost.sh"


@pytest.fixture(scope="session")
def slurm_cluster():
    """A one-node SLURM cluster on localhost, installed (apt) and started by
    scripts/slurm-localhost.sh; stopped again at the end if this session started it."""
    import os
    import subprocess

    status = subprocess.run([SLURM_SCRIPT, "status"], capture_output=True, text=True)
    if status.returncode == 0:  # already up (a developer's or an earlier session's)
        yield
        return
    if os.geteuid() != 0:
        pytest.skip("SLURM tests install and start munge/slurmctld/slurmd: run them as root")
    start = subprocess.run([SLURM_SCRIPT, "start"], capture_output=True, text=True,
                           timeout=600)
    if start.returncode != 0:
        pytest.fail(f"{SLURM_SCRIPT.name} start failed:\n{start.stdout}{start.stderr}")
    yield
    subprocess.run([SLURM_SCRIPT, "stop"], capture_output=True, text=True, timeout=60)


@pytest.fixture(autouse=True)
def _slurm_for_marked_tests(request):
    """Tests marked `slurm` get the local cluster."""
    if request.node.get_closest_marker("slurm"):
        request.getfixturevalue("slurm_cluster")
