"""The Snakemake workflow without running jobs: dry runs through both profiles (as a
workflow profile and as an installed global profile), lint, config errors, and the
conda environment file against pyproject.toml.

A dry run renders each job's shell command and resources exactly as a real run would
submit them; these tests read that output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from .workflow_helpers import ROOT, ci_config as _config, dry_run_jobs as _jobs
from .workflow_helpers import run_snakemake as _snakemake


def _same_python(path: str) -> bool:
    """The rendered interpreter is the one running Snakemake (this venv's)."""
    return Path(path).resolve() == Path(sys.executable).resolve()


def _sampling(out: str) -> dict:
    jobs = _jobs(out)
    assert len(jobs.get("sample", [])) == 1, out[-3000:]
    return jobs["sample"][0]


def test_small_campaigns_run_kernel_jobs_single_threaded_and_sample_side_by_side(tmp_path):
    """The seed-sized CI campaign (200 events in 3 chunks): kernel jobs get 1 thread (they
    are start-up bound, so normalisation overlaps the event jobs on 2 cores); Poisson
    events (a count not known before the run) get 2. The signal and background-only runs
    do not wait for each other; bayes_factor joins them."""
    def jobs_of(cfg):
        proc = _snakemake(tmp_path, "-n", "-p", "-c2", "--configfile", str(cfg))
        assert proc.returncode == 0, proc.stderr[-3000:]
        return _jobs(proc.stdout + proc.stderr)

    small = jobs_of(_config(tmp_path))
    for rule in ("normalise_chunk", "marginalise_chunk"):
        assert {j["threads"] for j in small[rule]} == {1}, rule
        assert all("NUMBA_NUM_THREADS=1 " in j["shell"] for j in small[rule])
    (signal,), (bkg,), (join,) = small["sample"], small["sample_bkg_only"], small["bayes_factor"]
    assert not any("bkg_only" in f for f in signal["input"])
    assert not any(f.endswith("signal.json") for f in bkg["input"])
    assert set(join["input"]) == {"results/ci/posterior/signal.json",
                                  "results/ci/posterior/bkg_only/evidence.json"}
    assert "--summary-name signal.json" in signal["shell"]
    poisson = jobs_of(_config(tmp_path, simulation={"mode": "poisson"}))
    for rule in ("normalise_chunk", "marginalise_chunk"):
        assert {j["threads"] for j in poisson[rule]} == {2}, rule


def test_dry_run_default_profile_runs_sampling_under_local_mpiexec(tmp_path):
    cfg = _config(tmp_path, sampler={"tasks": 2})
    proc = _snakemake(tmp_path, "-n", "-p", "-c2", "--configfile", str(cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "workflow specific profile profiles/default" in out
    job = _sampling(out)
    assert job["threads"] == 2  # a local MPI job reserves a core per rank
    assert job["resources"]["tasks"] == "2"
    assert Path(job["resources"]["mpi"]).name == "mpiexec"
    # the venv's mpiexec (works without an activated venv), 2 ranks, then gammadm sample
    launch = re.escape(job["resources"]["mpi"]) + r" -n 2 (\S+) -m gammadm\.cli sample "
    assert _same_python(re.search(launch, job["shell"]).group(1))
    assert "NUMBA_NUM_THREADS=1 " in job["shell"]  # 1 numba thread per rank
    jobs = _jobs(out)
    # one job per chunk, each owning its chunk and touching its own sentinel
    chunks = sorted(j["shell"].split("--chunk ")[1].split()[0] for j in jobs["normalise_chunk"])
    assert chunks == ["0/3", "1/3", "2/3"]
    for j in jobs["marginalise_chunk"]:
        i = re.search(r"--chunk (\d)/3", j["shell"]).group(1)
        assert f"--sentinel results/ci/gc/.done/marginals.{i} " in j["shell"]
        assert f"NUMBA_NUM_THREADS={j['threads']} " in j["shell"]
    assert {"warm_numba", "fetch_data", "normalise_create", "marginalise_create"} <= set(jobs)


def test_dry_run_serial_sampling_has_no_launcher(tmp_path):
    proc = _snakemake(tmp_path, "-n", "-p", "-c2", "--configfile", str(_config(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = _sampling(proc.stdout + proc.stderr)
    assert job["shell"].startswith("NUMBA_CACHE_DIR=")
    assert "mpiexec" not in job["shell"] and " -n " not in job["shell"]
    assert job["threads"] == 1


def _assert_slurm_sampling(out: str) -> None:
    job = _sampling(out)
    res = job["resources"]
    launch = re.search(r"srun --mpi=pmi2 -n 2 (\S+) -m gammadm\.cli sample ", job["shell"])
    assert launch and _same_python(launch.group(1)), job["shell"]
    assert (res["tasks"], res["mpi"], res["cpus_per_task"]) == ("2", "srun --mpi=pmi2", "1")
    assert res["slurm_extra"] == "--signal=TERM@180"
    assert (res["runtime"], res["mem_mb"]) == ("720", "8000")
    chunk = _jobs(out)["normalise_chunk"][0]
    assert chunk["threads"] == 2 and chunk["resources"]["runtime"] == "60"


def test_dry_run_slurm_workflow_profile_runs_sampling_through_srun(tmp_path):
    cfg = _config(tmp_path, sampler={"tasks": 2})
    # a dry run counts one core unless told; a cluster run does not cap threads
    proc = _snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(cfg),
                      "--workflow-profile", "profiles/slurm")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "workflow specific profile profiles/slurm" in out
    _assert_slurm_sampling(out)


def test_dry_run_installed_global_slurm_profile_is_not_overridden(tmp_path):
    """Cluster users' habit: `snakemake --profile slurm`, with profiles/default merged
    over it; it must keep the cluster's executor settings and resources."""
    home = tmp_path / "home"
    env = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    inst = subprocess.run([sys.executable, "-m", "gammadm.cli", "install-profile", "slurm",
                           "--workflow-dir", str(ROOT)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **env})
    assert inst.returncode == 0, inst.stderr
    installed = home / ".config" / "snakemake" / "slurm" / "config.yaml"
    assert installed.read_text() == (ROOT / "profiles" / "slurm" / "config.yaml").read_text()
    cfg = _config(tmp_path, sampler={"tasks": 2})
    proc = _snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(cfg),
                      "--profile", "slurm", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "Using profiles slurm and workflow specific profile profiles/default" in out
    _assert_slurm_sampling(out)


def test_default_profile_cannot_override_a_cluster_profile():
    keys = set(yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text()))
    assert not keys & {"executor", "set-resources", "default-resources", "set-threads",
                       "jobs", "cores", "groups", "group-components"}
    assert {"rerun-incomplete", "retries"} <= keys
    slurm = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    assert slurm["executor"] == "slurm" and slurm["slurm-status-command"] == "squeue"
    assert slurm["rerun-incomplete"] is True and slurm["retries"] >= 1


def test_lint_is_clean(tmp_path):
    proc = _snakemake(tmp_path, "--lint", "--configfile", str(ROOT / "config" / "ci.yaml"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in out, out[-3000:]


def test_config_error_stops_before_any_job_naming_the_field(tmp_path):
    cfg = _config(tmp_path)
    bad = yaml.safe_load(cfg.read_text())
    bad["observations"][0]["irf"]["site"] = "Moon"
    cfg.write_text(yaml.safe_dump(bad))
    proc = _snakemake(tmp_path, "-c1", "--configfile", str(cfg))
    assert proc.returncode != 0
    assert ("config field 'observations[0].irf.site': \"Moon\" is not allowed; "
            "allowed values: \"South\", \"North\"") in proc.stderr
    assert not (tmp_path / "results").exists()


def test_snakefmt_clean():
    snakefmt = Path(sys.executable).parent / "snakefmt"
    if not snakefmt.exists():
        pytest.skip("snakefmt (a development tool) is not installed in this venv")
    proc = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _requirement(spec: str) -> tuple[str, str]:
    """(normalised name, version specifiers without spaces) of a requirement string."""
    spec = spec.split("#")[0].replace(" ", "")
    m = re.match(r"([A-Za-z0-9_.-]+)(.*)", spec)
    return m.group(1).lower().replace("_", "-"), m.group(2)


def test_conda_env_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_requirement(r) for r in project["dependencies"]
              + project["optional-dependencies"]["mpi"]}
    env = yaml.safe_load((ROOT / "envs" / "gammadm.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {_requirement(r) for r in pip} == wanted
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert f"python{project['requires-python']}" in conda


def test_warmup_config_is_a_valid_tiny_campaign(seed_config):
    from gammadm.cli import _warmup_config
    from gammadm.config import validate_config

    tiny = validate_config(_warmup_config(seed_config))
    assert [o["name"] for o in tiny["observations"]] == ["gc"]
    assert tiny["simulation"]["n_events"] == 20
    assert tiny["roi"]["l_deg"] == [-0.5, 0.5] and tiny["normalisation"]["chunks"] == 1
    # the same components as the campaign, so the same kernels get compiled
    assert tiny["backgrounds"] == seed_config["backgrounds"]


def test_warm_sentinel_follows_the_package_sources(tmp_path):
    """A changed source (same version) names a new warm-up sentinel, so rule warm_numba
    runs again before any kernel job; unchanged sources keep it."""
    import shutil

    from gammadm.kernels import source_digest, warm_sentinel

    copy = tmp_path / "gammadm"
    shutil.copytree(ROOT / "src" / "gammadm", copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = source_digest(copy)
    assert source_digest(copy) == before == source_digest(ROOT / "src" / "gammadm")
    kernel = copy / "kernels" / "marginal.py"
    kernel.write_text(kernel.read_text() + "\n# a changed line\n")
    assert source_digest(copy) != before
    assert warm_sentinel().name == f"warm-{before}.ok"


def test_install_profile_names_a_missing_profile(tmp_path, capsys):
    from gammadm.cli import main

    assert main(["install-profile", "nope", "--workflow-dir", str(ROOT),
                 "--dest", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no profile 'nope' (profiles/nope/config.yaml)" in err[0]
    assert main(["install-profile", "slurm", "--workflow-dir", str(ROOT),
                 "--dest", str(tmp_path)]) == 0
    assert main(["install-profile", "slurm", "--workflow-dir", str(ROOT),
                 "--dest", str(tmp_path)]) == 2  # no silent overwrite without --force


def test_the_workflow_imports_no_numerical_stack():
    """What common.smk imports of the package loads none of the heavy libraries: every
    `snakemake` start (and each dry run) pays for them otherwise (~1 s measured)."""
    src = (ROOT / "workflow" / "rules" / "common.smk").read_text()
    imports = [line.strip() for line in src.splitlines()
               if re.match(r"\s*from gammadm[\w.]* import ", line)]
    assert len(imports) >= 4, imports
    code = "import sys\n" + "\n".join(imports) + (
        "\nprint(sorted(m for m in ('scipy', 'numba', 'matplotlib', 'astropy', 'zarr', "
        "'dynesty') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout
