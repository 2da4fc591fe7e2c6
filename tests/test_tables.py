"""The per-observation tables (tables.zarr), units against a hand calculation, figures."""

import subprocess
import sys

import numpy as np
import pytest
import zarr

from gammadm.models.dark_matter import DarkMatterModel


@pytest.fixture(scope="module")
def seed_tables(tmp_path_factory, chdir_root_module):
    out = tmp_path_factory.mktemp("tab") / "tables.zarr"
    subprocess.run([sys.executable, "-m", "gammadm.cli", "tabulate", "--out", str(out)],
                   check=True, capture_output=True, text=True, cwd=chdir_root_module)
    return zarr.open_group(out, mode="r")


@pytest.fixture(scope="module")
def chdir_root_module():
    from .conftest import ROOT

    return ROOT


def test_units_against_a_hand_calculation(seed_config):
    """Einasto defaults, psi = 1 deg, m = 1 TeV, <sigma v> = 3e-26 cm^3 s^-1,
    dN/dE(0.5 TeV) = 0.0699 TeV^-1: Phi = 2.58e-10 TeV^-1 cm^-2 s^-1 sr^-1."""
    hand = 3e-26 / (8 * np.pi * 1.0**2) * 0.0699 * 3.092e24 * 1e-6
    assert hand == pytest.approx(2.58e-10, rel=2e-3)
    dm = DarkMatterModel.from_config(seed_config)
    phi = dm.intensity(0.5, 1.0, 1.0, 3e-26)
    assert phi == pytest.approx(2.58e-10, rel=5e-3)
    # and exactly the same arithmetic with the model's own dN/dE and J
    assert phi == pytest.approx(3e-26 / (8 * np.pi) * dm.spectrum.dnde(0.5, 1.0)
                                * dm.los(1.0) * 1e-6, rel=1e-12)


def test_decay_model(seed_config):
    import copy

    cfg = copy.deepcopy(seed_config)
    cfg["dark_matter"]["process"] = "decay"
    dm = DarkMatterModel.from_config(cfg)
    assert dm.los.power == 1 and dm.spatial_unit == "GeV cm-2 sr-1"
    assert dm.spectrum.dnde(0.6, 1.0) == 0.0 and dm.spectrum.dnde(0.4, 1.0) > 0
    tau = 1e27
    phi = dm.intensity(0.3, 2.0, 1.0, 1 / tau)
    assert phi == pytest.approx(1 / (4 * np.pi * 1.0 * tau) * dm.spectrum.dnde(0.3, 1.0)
                                * dm.los(2.0) * 1e-3, rel=1e-12)


def test_tables_store(seed_tables, irf):
    g = seed_tables
    assert g.attrs["campaign"] == "seed" and g.attrs["observation"] == "gc"
    assert g.attrs["r_halo_kpc"] == 100.0 and g.attrs["irf_file"].endswith(
        "Prod5-South-20deg-AverageAz-14MSTs37SSTs.18000s-v0.1.fits.gz")
    e = g["axes/true_energy_edges"][:]
    assert e[0] < 0.05 and g["exposure"].shape == (e.size - 1, 78, 78)
    assert g["exposure"].attrs["unit"] == "cm2 s"
    # exposure at a cell centre equals A T of the IRF there
    enode = np.sqrt(e[1:] * e[:-1])
    l = g["axes/true_l_edges"][:]
    i, j, k = 60, 39, 39  # l, b cell centres at +0.05 deg
    lc = 0.5 * (l[j] + l[j + 1])
    from gammadm.instrument.reach import angular_offset
    th = angular_offset(lc, lc, 0, 0)
    assert g["exposure"][i, j, k] == pytest.approx(irf.effective_area(enode[i], th) * 18000,
                                                   rel=1e-12)
    assert g["dark_matter/spatial"].attrs["unit"] == "GeV2 cm-5 sr-1"
    assert g["dark_matter/dnde"].shape == (121, e.size - 1)
    m = g["dark_matter/mass_tev"][:]
    assert m[0] == pytest.approx(0.12) and m[-1] == pytest.approx(80.0)
    assert len(g["hgps"].attrs["names"]) == 6
    assert "HESS J1747-248" in g["hgps"].attrs["considered_negligible"]
    assert g["ccr/rate"].shape == (60, 30, 30)
    assert np.all(np.isfinite(g["diffuse/morphology"][:]))


@pytest.mark.parametrize("command", ["plot-models", "tabulate"])
def test_figures_are_written(tmp_path, command):
    """By `gammadm plot-models`, and by `gammadm tabulate --figures` beside its tables
    (the workflow's one job for both)."""
    from .conftest import ROOT

    if command == "tabulate":
        args = ["--out", str(tmp_path / "tables.zarr"), "--figures", str(tmp_path)]
    else:
        args = ["--out", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-m", "gammadm.cli", command, *args], check=True,
                          capture_output=True, text=True, cwd=ROOT)
    for name in ("spectra.png", "j_factor.png", "backgrounds.png"):
        p = tmp_path / name
        assert p.stat().st_size > 20_000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(p) in proc.stdout
    if command == "tabulate":
        assert (tmp_path / "tables.zarr" / "zarr.json").exists()
