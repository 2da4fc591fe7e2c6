"""GADF DL3 event lists: gammapy opens what we write; we read what others write."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from gammadm.events import EventData, EventFileError, read_events, write_events, write_index
from gammadm.geometry import ROI

ROI_SEED = ROI((0.1, 100.0), (-3.0, 3.0), (-3.0, 3.0))


def _events(n=1000, seed=0, mc=True):
    rng = np.random.default_rng(seed)
    e = 10 ** rng.uniform(-1.3, 2.2, n)  # some below 0.1 and above 100 TeV
    l = rng.uniform(-4, 4, n)
    b = rng.uniform(-4, 4, n)
    t = rng.uniform(0, 18000, n)
    truth = None
    if mc:
        truth = {"component": rng.integers(0, 4, n), "energy": e * 1.1, "l": l + 0.01,
                 "b": b - 0.01}
    return EventData(e, l, b, t, 42, 17100.0, 18000.0, np.array([[0.0, 18000.0]]),
                     (0.0, 0.0), truth, ["DM", "CCR", "HGPS", "diffuse"])


def test_roundtrip_and_roi_selection(tmp_path):
    ev = _events()
    path = write_events(tmp_path / "obs.fits", ev)
    back = read_events(path, ROI_SEED)
    inside = ROI_SEED.contains(ev.energy, ev.l, ev.b)
    assert back.n == inside.sum() and back.n_read == ev.n
    assert back.n_cut_roi == (~inside).sum() and back.n_cut_gti == 0
    np.testing.assert_allclose(back.energy, ev.energy[inside], rtol=1e-15)
    np.testing.assert_allclose(back.l, ev.l[inside], atol=1e-12)
    np.testing.assert_allclose(back.b, ev.b[inside], atol=1e-12)
    assert back.mc_components == ["DM", "CCR", "HGPS", "diffuse"]
    np.testing.assert_array_equal(back.mc["component"], ev.mc["component"][inside])
    assert back.livetime_s == 17100.0 and back.deadc == pytest.approx(0.95)
    assert back.pointing == pytest.approx((0.0, 0.0), abs=1e-9)


def test_gammapy_datastore_opens_our_files(tmp_path, irf_path):
    from gammapy.data import DataStore

    path = write_events(tmp_path / "obs_000042.fits", _events())
    write_index(tmp_path, [path], irf_path)
    store = DataStore.from_dir(tmp_path)
    obs = store.obs(42)
    assert len(obs.events.table) == 1000
    assert obs.observation_live_time_duration.to_value("s") == pytest.approx(17100.0)
    assert obs.aeff is not None and obs.psf is not None
    np.testing.assert_allclose(obs.events.energy.to_value("TeV"), _events().energy)
    gal = obs.events.radec.galactic
    np.testing.assert_allclose(np.mod(gal.l.deg + 180, 360) - 180, _events().l, atol=1e-8)


def test_reads_a_file_written_by_astropy_with_radec_only(tmp_path):
    ev = _events(mc=False)
    from gammadm.events.dl3 import _radec

    ra, dec = _radec(ev.l, ev.b)
    t = Table({"EVENT_ID": np.arange(ev.n), "TIME": ev.time, "RA": ra, "DEC": dec,
               "ENERGY": ev.energy * 1e3})
    t["ENERGY"].unit = "GeV"
    hdu = fits.table_to_hdu(t)
    hdu.name = "EVENTS"
    pra, pdec = _radec(0.0, 0.0)
    hdu.header.update({"OBS_ID": 7, "RA_PNT": float(pra), "DEC_PNT": float(pdec),
                       "ONTIME": 1800.0, "LIVETIME": 1700.0})
    path = tmp_path / "astropy.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    back = read_events(path, ROI_SEED)
    inside = ROI_SEED.contains(ev.energy, ev.l, ev.b)
    assert back.n == inside.sum()
    np.testing.assert_allclose(back.energy, ev.energy[inside], rtol=1e-12)
    np.testing.assert_allclose(back.b, ev.b[inside], atol=1e-9)


def test_gti_selection(tmp_path):
    ev = _events()
    ev.gti = np.array([[0.0, 6000.0], [9000.0, 18000.0]])
    back = read_events(write_events(tmp_path / "g.fits", ev), None)
    in_gti = (ev.time <= 6000) | (ev.time >= 9000)
    assert back.n == in_gti.sum() and back.n_cut_gti == (~in_gti).sum()


def test_bad_files_get_one_clear_message(tmp_path):
    path = write_events(tmp_path / "ok.fits", _events())
    with fits.open(path) as hdul:
        hdul["EVENTS"].header["HDUCLAS3"] = "POINT-LIKE"
        hdul.writeto(tmp_path / "pointlike.fits")
    with pytest.raises(EventFileError, match="pointlike.fits: POINT-LIKE"):
        read_events(tmp_path / "pointlike.fits", ROI_SEED)
    t = Table({"TIME": [1.0, 2.0]})
    hdu = fits.table_to_hdu(t)
    hdu.name = "EVENTS"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp_path / "nocols.fits")
    with pytest.raises(EventFileError, match="nocols.fits: EVENTS lacks column.*ENERGY"):
        read_events(tmp_path / "nocols.fits", ROI_SEED)
    far = _events()
    far.l = far.l + 30
    with pytest.raises(EventFileError, match="no events left inside the ROI"):
        read_events(write_events(tmp_path / "far.fits", far), ROI_SEED)
    with pytest.raises(EventFileError, match="outside the ROI .roi.strict"):
        read_events(path, ROI_SEED, strict_roi=True)


def test_cli_events_ingests_a_dl3_file(tmp_path):
    """`gammadm events` with events.source dl3: the ROI/GTI selection is written to
    events.fits with the numbers cut, and the marginalisation store carries them; a
    file pointed elsewhere than the config gets one message naming both."""
    import subprocess
    import sys

    import yaml

    from .conftest import ROOT

    ev = _events(600, seed=3)
    ev.time[:7] = 20000.0  # after the GTI
    src = write_events(tmp_path / "external.fits", ev)
    cfg = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    cfg["observations"][0]["events"] = {"source": "dl3", "file": str(src)}
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "events.fits"
    run = [sys.executable, "-m", "gammadm.cli", "events", "--config", str(cfg_path),
           "--out", str(out)]
    proc = subprocess.run(run, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    roi = ROI((0.5, 20.0), (-1.0, 1.0), (-1.0, 1.0))
    in_gti = ev.time <= 18000.0
    inside = roi.contains(ev.energy, ev.l, ev.b)
    back = read_events(out, roi)
    assert back.n == (inside & in_gti).sum() and back.n_read == 600
    assert back.n_cut_gti == 7 and back.n_cut_roi == (in_gti & ~inside).sum()
    assert f"{back.n} of 600 events" in proc.stdout
    cfg["observations"][0]["pointing"] = {"l_deg": 1.0, "b_deg": 0.0}
    cfg_path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run(run, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "observations[0].pointing" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("site, name", [("South", "ctao_south"), ("North", "ctao_north")])
def test_site_keywords_are_gammapys_observatory_locations(site, name):
    from gammapy.data import observatory_locations

    from gammadm.events.dl3 import CTAO_SITES

    loc = observatory_locations[name]
    lon, lat, height = CTAO_SITES[site]
    assert lon == pytest.approx(loc.lon.deg, abs=1e-9)
    assert lat == pytest.approx(loc.lat.deg, abs=1e-9)
    assert height == pytest.approx(loc.height.to_value("m"), abs=1e-6)
