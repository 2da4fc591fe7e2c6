"""Binned and unbinned likelihoods agree for fine recon bins (PHYSICS.md s. 5): the CI
campaign's 200 events on 0.05 deg x 40-per-decade bins, sampled both ways with the same
seed, give the same posterior within a fraction of its width."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from .conftest import ROOT


@pytest.mark.slow
def test_binned_and_unbinned_posteriors_agree(tmp_path, data_root):
    cfg = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    cfg["data_dir"] = str(data_root)  # the runs work in tmp_path
    cfg["roi"].update(pixel_deg=0.05, energy_bins_per_decade=40)
    cfg["normalisation"]["chunks"] = cfg["marginalisation"]["chunks"] = 1
    # 400 live points, not the CI campaign's 100: the two runs' sampling noise must sit
    # well below the tolerance (with 100, two runs of the same unbinned likelihood whose
    # values differ at round-off moved the CCR median by 0.16 of its width)
    cfg["sampler"]["nlive"] = 400
    runs = {}
    for binned in (False, True):
        cfg["likelihood"]["binned"] = binned
        path = tmp_path / f"c{int(binned)}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        base = ["--config", str(path)]

        def gm(*args):
            proc = subprocess.run([sys.executable, "-m", "gammadm.cli", *args, *base],
                                  cwd=tmp_path, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
            return proc.stdout

        if not binned:  # the stores are shared: results/ci/gc/ under tmp_path
            gm("events")
            gm("normalise")
            gm("marginalise")
            gm("bin")
        out = tmp_path / f"post{int(binned)}"
        gm("sample", "--background-only", "--out", str(out / "bkg"))
        gm("sample", "--bkg-evidence", str(out / "bkg" / "evidence.json"), "--out", str(out))
        runs[binned] = json.loads((out / "summary.json").read_text())
    assert runs[True]["binned"] is True and runs[False]["binned"] is False
    for name, u in runs[False]["parameters"].items():
        b = runs[True]["parameters"][name]
        width = 0.5 * (u["p84"] - u["p16"])
        print(f"{name}: unbinned {u['p50']:.4g} [{u['p16']:.4g}, {u['p84']:.4g}], binned "
              f"{b['p50']:.4g} [{b['p16']:.4g}, {b['p84']:.4g}]")
        assert abs(b["p50"] - u["p50"]) < 0.3 * width, (name, b["p50"], u["p50"], width)
        assert b["p84"] - b["p16"] == pytest.approx(u["p84"] - u["p16"], rel=0.25), name
    # the Bayes factors differ only by sampling noise (the binned multinomial constant
    # cancels between signal and background-only)
    bf = [runs[k]["log_bayes_factor"] for k in (False, True)]
    err = np.hypot(*(runs[k]["log_evidence_err"] for k in (False, True)))
    assert abs(bf[0] - bf[1]) < 3 * 2 * err + 0.5, bf
