"""docs/tutorial.md runs as written: its python blocks, in order and in one namespace, on
the CI campaign (GAMMADM_TUTORIAL_CONFIG=config/ci.yaml) in a temporary folder; its
numbers are checked against an independent recomputation and the truths; its shell
commands dry-run on a copy of the workflow (the workflow itself runs the CI campaign in
test_inference_e2e, test_report and test_workflow_faults)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from .workflow_helpers import ROOT, SNAKEMAKE, dry_run_jobs, snakemake_env

TUTORIAL = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)

pytestmark = pytest.mark.slow


def code_blocks(language: str) -> list[tuple[int, str]]:
    """(line number of the first code line, code) of each fenced block of ``language``
    in the tutorial, in order."""
    text = TUTORIAL.read_text()
    return [(text.count("\n", 0, m.start(2)) + 1, m.group(2))
            for m in FENCE.finditer(text) if m.group(1) == language]


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory, data_root) -> tuple[Path, dict]:
    """Run every python block of the tutorial in a temporary working directory; returns
    the directory and the namespace the blocks left behind."""
    work = tmp_path_factory.mktemp("tutorial")
    patch = pytest.MonkeyPatch()
    patch.chdir(work)
    patch.setenv("GAMMADM_TUTORIAL_CONFIG", str(ROOT / "config" / "ci.yaml"))
    patch.setenv("GAMMADM_DATA", str(data_root))  # the campaign's data, from any folder
    namespace = {"__name__": "tutorial"}
    try:
        for line, code in code_blocks("python"):
            # padded so that a traceback names the tutorial's own line numbers
            exec(compile("\n" * (line - 1) + code, str(TUTORIAL), "exec"), namespace)
    finally:
        patch.undo()
    return work, namespace


def test_blocks_ran_on_the_ci_campaign_and_wrote_their_files(tutorial):
    work, ns = tutorial
    assert len(code_blocks("python")) == 12  # one per step of the seed tutorial
    assert ns["cfg"]["campaign"] == "ci"
    obs_dir = work / "results" / "tutorial" / "ci" / "gc"
    figures = ["irf", "spectra", "j_factor", "backgrounds", "events", "normalisation",
               "marginals"]
    for path in [obs_dir / "figures" / f"{f}.png" for f in figures] + [obs_dir / "corner.png"]:
        assert path.is_file() and path.stat().st_size > 10_000, path
    for store in ("norm.zarr", "marginals.zarr"):
        assert (obs_dir / store / "zarr.json").is_file()
    assert (obs_dir / "events.fits").is_file() and (obs_dir / "hdu-index.fits.gz").is_file()


def test_events_follow_the_mixture_and_equal_the_workflows(tutorial, tmp_path, data_root):
    _, ns = tutorial
    events, counts = ns["events"], ns["counts"]
    assert events.n == 200 and counts == {"DM": 100, "CCR": 70, "HGPS": 20, "diffuse": 10}
    per = np.bincount(events.mc["component"], minlength=len(events.mc_components))
    assert dict(zip(events.mc_components, per.tolist())) == counts
    assert ns["obs"].roi.contains(events.energy, events.l, events.b).all()
    # step 13 says so: `gammadm simulate` (the workflow's events rule) draws the same
    from gammadm.events import read_events

    out = tmp_path / "events.fits"
    subprocess.run([sys.executable, "-m", "gammadm.cli", "simulate", "--config",
                    str(ROOT / "config" / "ci.yaml"), "--out", str(out)], cwd=ROOT,
                   env=snakemake_env(data_root), capture_output=True, text=True, check=True)
    cli = read_events(out, ns["obs"].roi, pointing=ns["obs"].pointing)
    for column in ("energy", "l", "b"):
        np.testing.assert_array_equal(getattr(cli, column), getattr(events, column))


def _independent_loglike(ns: dict, theta) -> float:
    """ln L = sum_e ln sum_k W_k lambda_k(e) / mu_k with numpy from the stores of steps
    7 and 8: the dark matter's S_s(m) by direct quadrature (the hand-off interpolates a
    table), its lines by geometric interpolation of the pointwise kernel in ln E."""
    from gammadm.expected import dm_expected, dm_subinterval_spectrum
    from gammadm.marginalise import band_matvec

    dm, ctx, norm, marg, tree = ns["dm"], ns["ctx"], ns["norm"], ns["marg"], ns["tree"]
    p = dict(zip(ns["names"], theta))
    m = p["mass_TeV"]
    w = dict(zip(tree.leaves, tree.leaf_weights([p[n] for n in tree.sampled_names])))
    lam = band_matvec(marg["dm/g"], marg["dm/g_first"].astype(np.int64),
                      dm_subinterval_spectrum(dm, ctx.quad.edges, m))
    grid, g, first = norm["axes/line_energies"], marg["dm/line_g"], marg["dm/line_first"]
    rows = np.arange(g.shape[0])

    def column(k):
        inside = (k >= 0) & (k < g.shape[1])
        return np.where(inside, g[rows, np.clip(k, 0, g.shape[1] - 1)], 0.0)

    for e_line, factor in dm.line_factors(m):
        j = int(np.searchsorted(grid, e_line)) - 1
        t = np.log(e_line / grid[j]) / np.log(grid[j + 1] / grid[j])
        g0, g1 = column(j - first.astype(np.int64)), column(j + 1 - first.astype(np.int64))
        both = (g0 > 0) & (g1 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):  # rounding: |g| ~ 1e-13 max
            geo = np.exp((1 - t) * np.log(g0) + t * np.log(g1))
        lam += factor * np.where(both, geo, (1 - t) * g0 + t * g1)
    mu_dm = dm_expected(dm, ctx.quad, norm["dm/h"], grid, norm["dm/points"], m)
    total = w[dm.name] * lam / mu_dm
    for name, model in ctx.backgrounds.items():
        mu = norm[{"ccr": "ccr/mu", "hgps": "hgps/mu"}.get(model, f"{name}/mu")].sum()
        total = total + w[name] * marg[f"bkg/{name}"] / mu
    return float(np.sum(np.log(total)))


def test_handoff_loglike_equals_an_independent_sum(tutorial):
    _, ns = tutorial
    loglike, names = ns["loglike"], ns["names"]
    assert names == ["mass_TeV", "DM", "CCR", "HGPS"]
    for theta in (ns["theta_true"], [10.0, 0.1, 1 / 3, 1 / 3], [0.5, 0.8, 0.2, 0.5]):
        got = loglike(np.asarray(theta, float))
        # the interpolated S_s(m) differs from direct quadrature by < 1e-4 (relative)
        assert got == pytest.approx(_independent_loglike(ns, theta), abs=2e-3), theta
    # the likelihood prefers the truth to a wrong mass and signal fraction
    assert loglike(ns["theta_true"]) > loglike(np.array([10.0, 0.1, 1 / 3, 1 / 3])) + 10


def test_posterior_holds_the_truths_and_prefers_the_signal(tutorial):
    _, ns = tutorial
    table = ns["table"]
    assert set(table) == {"mass_TeV", "DM", "CCR", "HGPS", "bkg", "diffuse"}
    for name, p in table.items():
        assert p["p0.5"] <= p["truth"] <= p["p99.5"], (name, p)
    mass = table["mass_TeV"]
    assert mass["p99.5"] / mass["p0.5"] < 10  # the mass is measured, not the prior
    assert ns["ln_bayes"] > 5  # 100 dark-matter events of 200


def test_workflow_commands_are_valid(tmp_path):
    """Every shell command of the tutorial dry-runs in a copy of the workflow (nothing
    runs, nothing lands in the repository)."""
    commands = [shlex.split(raw, comments=True) for _, code in code_blocks("bash")
                for raw in code.splitlines()]
    commands = [c for c in commands if c]
    assert len(commands) >= 4 and all(c[0] == ".venv/bin/snakemake" for c in commands)
    copy = tmp_path / "project"
    copy.mkdir()
    shutil.copy2(ROOT / "Snakefile", copy)
    for folder in ("workflow", "config", "profiles"):
        shutil.copytree(ROOT / folder, copy / folder)
    (copy / "src").symlink_to(ROOT / "src")  # the workflow's schema refers into it
    for argv in commands:
        args = argv[1:] if "-n" in argv else ["-n", *argv[1:]]
        proc = subprocess.run([str(SNAKEMAKE), *args], cwd=copy, env=snakemake_env(),
                              capture_output=True, text=True, timeout=300)
        out = proc.stdout + proc.stderr
        if "--report" in args:
            # nothing has run in the copy: Snakemake reads the workflow and its report
            # registrations, then names the first report file that does not exist yet
            assert "marked for report but does not exist" in out, (argv, out[-3000:])
            continue
        assert proc.returncode == 0, (argv, out[-3000:])
        assert {"sample", "sample_bkg_only", "report"} <= set(dry_run_jobs(out)), argv
        campaign = "ci" if "config/ci.yaml" in args else "seed"
        assert f"results/{campaign}/posterior/summary.json" in out, argv
