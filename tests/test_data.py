import json
import shutil

import numpy as np
import pytest

from gammadm.data import DataError, fetch, fetch_data, load_manifest, required_files, verify_file
from gammadm.data.fetch import singlet_cache_path

PHYSICS_FILES = [  # PHYSICS.md section 1
    "irf/prod5/Prod5-South-20deg-AverageAz-14MSTs37SSTs.18000s-v0.1.fits.gz",
    "fermi/gll_iem_v06_gc.fits.gz",
    "hess/hgps_catalog_v1.fits.gz",
    "pppc/AtProduction_gamma_EW_corrections.dat",
    "singlet/annihilation_ratios__darkSUSY.csv",
    "singlet/annihilation_ratios__dimauromattia.csv",
]


def test_manifest_covers_the_published_files():
    man = load_manifest()
    assert man["source"]["package"] == "gammabayes" and man["source"]["version"] == "0.1.9"
    assert len(man["source"]["sha256"]) == 64
    default = required_files(man)
    for rel in PHYSICS_FILES:
        assert rel in default
    # every South-20deg azimuth and cut time, nothing from other groups by default
    assert sum("Prod5-South-20deg" in r for r in default) == 9
    assert not any("North" in r.split("/")[-1].split("-")[1] for r in default if "irf/" in r)
    assert man["datasets"]["prod5"]["licence"] == "CC-BY-4.0"


def test_all_files_verify_and_provenance_is_written(data_root):
    man = load_manifest()
    for rel in required_files(man):
        verify_file(data_root, rel, man)
    prov = json.loads((data_root / "PROVENANCE.json").read_text())
    assert prov["source"]["version"] == "0.1.9"
    assert "zenodo.5499840" in prov["datasets"]["prod5"]["acknowledgement"]
    assert set(PHYSICS_FILES) <= set(prov["files"])


def _copy_tree(src, dst, rels):
    for rel in rels:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, dst / rel)


def test_second_fetch_downloads_nothing(data_root, tmp_path, monkeypatch):
    def no_download(*a, **k):
        raise AssertionError("fetch_data downloaded although every file is present")

    monkeypatch.setattr(fetch, "_download_wheel", no_download)
    man = load_manifest()
    rels = required_files(man)
    _copy_tree(data_root, tmp_path, rels)
    (tmp_path / "cache").mkdir()
    for grid in ("darkSUSY", "dimauromattia"):
        shutil.copy2(singlet_cache_path(data_root, grid), singlet_cache_path(tmp_path, grid))
    report = fetch_data(tmp_path)
    assert not report.downloaded and report.extracted == [] and report.converted == []
    assert sorted(report.verified) == sorted(rels)


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_file_is_named_with_the_fix(data_root, tmp_path, damage):
    rel = "hess/hgps_catalog_v1.fits.gz"
    _copy_tree(data_root, tmp_path, [rel])
    path = tmp_path / rel
    if damage == "flip":
        blob = bytearray(path.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        path.write_bytes(bytes(blob))
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.unlink()
    with pytest.raises(DataError) as exc:
        verify_file(tmp_path, rel)
    msg = str(exc.value)
    assert str(path) in msg and "gammadm fetch-data" in msg


def test_fetch_repairs_a_corrupted_file_from_the_cached_wheel(data_root, tmp_path, monkeypatch):
    man = load_manifest()
    wheel = data_root / "cache" / man["source"]["wheel"]
    if not wheel.is_file():
        pytest.fail(f"{wheel} missing: run `gammadm fetch-data` (README set-up)")
    monkeypatch.setattr(fetch, "_download_wheel", lambda *a: pytest.fail("downloaded"))
    rels = required_files(man)
    _copy_tree(data_root, tmp_path, rels + [f"cache/{man['source']['wheel']}"])
    target = tmp_path / "pppc/AtProduction_gamma_EW_corrections.dat"
    target.write_text("not the PPPC table\n")
    report = fetch_data(tmp_path)
    assert report.extracted == ["pppc/AtProduction_gamma_EW_corrections.dat"]
    verify_file(tmp_path, "pppc/AtProduction_gamma_EW_corrections.dat", man)


def test_singlet_cache_equals_the_csv(data_root):
    csv = data_root / "singlet/annihilation_ratios__darkSUSY.csv"
    with open(csv) as fh:
        head = [next(fh) for _ in range(6)]
    rows = np.array([[float(x) for x in line.split()] for line in head[1:]])
    with np.load(singlet_cache_path(data_root, "darkSUSY")) as z:
        table, cols = z["table"], list(z["columns"])
        assert str(z["source_sha256"]) == load_manifest()["files"][
            "singlet/annihilation_ratios__darkSUSY.csv"]["sha256"]
    assert cols[:2] == ["mS_GeV", "lahS"] and cols[-1] == "hadrons" and "gammagamma" in cols
    assert table.shape == (51106, len(cols))
    np.testing.assert_array_equal(table[:5], rows[:, 1:])


def test_data_dir_precedence(monkeypatch, tmp_path):
    from gammadm.data import data_dir

    monkeypatch.delenv("GAMMADM_DATA", raising=False)
    assert str(data_dir()) == "resources/data"
    monkeypatch.setenv("GAMMADM_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    assert str(data_dir("elsewhere")) == "elsewhere"  # the config wins


def test_unknown_irf_group_is_an_error(tmp_path):
    with pytest.raises(DataError, match="Moon-20deg"):
        fetch_data(tmp_path, ["Moon-20deg"])


def test_users_own_tables_replace_the_published_ones(data_root, tmp_path, monkeypatch):
    from gammadm.config import validate_config
    from gammadm.data import resolve_data_file

    monkeypatch.setenv("GAMMADM_DATA", str(data_root))
    cfg = validate_config({"campaign": "t", "observations": [{"name": "a"}]})
    assert resolve_data_file(cfg, "hgps_catalogue") == data_root / "hess/hgps_catalog_v1.fits.gz"
    assert resolve_data_file(cfg, "singlet_table").name == "annihilation_ratios__darkSUSY.csv"
    mine = tmp_path / "my_catalogue.fits"
    mine.write_bytes(b"x")
    cfg["data_files"]["hgps_catalogue"] = str(mine)
    assert resolve_data_file(cfg, "hgps_catalogue") == mine
    cfg["data_files"]["pppc_table"] = str(tmp_path / "absent.dat")
    with pytest.raises(DataError, match="data_files.pppc_table.*absent.dat"):
        resolve_data_file(cfg, "pppc_table")
