"""Faults in a running campaign: the CI campaign (3 chunks per stage) run for real by
Snakemake in a temporary directory.

- A chunk job killed with SIGKILL: Snakemake reports the failure; running
  `snakemake -c2` again completes, and the summary equals an undisturbed run's.
- A deleted chunk sentinel: the next run re-runs that chunk job and what depends on it,
  nothing else.

The config error that stops before any job is tested in test_workflow_static.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .workflow_helpers import (
    ROOT,
    ci_config,
    dry_run_jobs,
    run_snakemake,
    snakemake_argv,
    snakemake_env,
)

pytestmark = pytest.mark.slow

CI = str(ROOT / "config" / "ci.yaml")
SUMMARY = Path("results/ci/posterior/summary.json")
RUN_TIMEOUT = 1200  # s; the CI campaign takes 2-4 min on 2 idle cores
# s of a chunk job's life: past the interpreter's start, inside its imports and set-up
# (~1.5 s of them before any computing; whole jobs last 2-9 s depending on the machine)
KILL_AFTER = 1.0


def _summary(workdir: Path) -> dict:
    """The run's summary without wall_seconds (the part that may differ between equal runs)."""
    summary = json.loads((workdir / SUMMARY).read_text())
    del summary["wall_seconds"]
    return summary


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_root) -> Path:
    """An undisturbed run of the CI campaign: its working directory."""
    workdir = tmp_path_factory.mktemp("reference")
    run = run_snakemake(workdir, "-c2", "--configfile", CI, env=snakemake_env(data_root),
                        timeout=RUN_TIMEOUT)
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return workdir


def _chunk_job(workdir: Path, chunk: str) -> tuple[int, str] | None:
    """(pid, stage) of this run's running `gammadm.cli <stage> ... --chunk <chunk>`
    process (not its shell), found through /proc; jobs run in the run's directory,
    which tells them from other runs on the machine."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")[:-1]
            cwd = os.readlink(proc / "cwd")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        argv = [a.decode() for a in argv]
        if (argv[1:3] == ["-m", "gammadm.cli"] and cwd == str(workdir)
                and "--chunk" in argv and argv[argv.index("--chunk") + 1] == chunk):
            return int(proc.name), argv[3]
    return None


def _age(pid: int) -> float:
    """Seconds since the process started (/proc/<pid>/stat field 22, in clock ticks)."""
    start = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start / os.sysconf("SC_CLK_TCK")


def _kill_chunk_job(workdir: Path, snakemake: subprocess.Popen, chunk: str) -> str:
    """SIGKILL the first chunk job of `chunk` (normalise or marginalise) once it has run
    KILL_AFTER seconds; returns its stage."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while (found := _chunk_job(workdir, chunk)) is None:
        assert snakemake.poll() is None, "snakemake ended before any chunk job ran"
        assert time.monotonic() < deadline, "no chunk job started"
        time.sleep(0.1)
    pid, stage = found
    # the job runs this worktree's package (Snakemake's environment, inherited)
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"PYTHONPATH={ROOT / 'src'}".encode() in environ
    while _age(pid) < KILL_AFTER:
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)  # raises if the job had ended already
    return stage


def test_killed_chunk_job_reruns_and_the_summary_equals_an_undisturbed_run(
        tmp_path, data_root, reference):
    env = snakemake_env(data_root)
    # no retries here, so that the failure surfaces: the test then runs what a user
    # does after a crash (profiles/default's retry re-runs the job the same way)
    with subprocess.Popen(
            snakemake_argv(tmp_path, "-c2", "--configfile", CI, "--retries", "0"),
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True) as first:
        try:
            stage = _kill_chunk_job(tmp_path, first, "1/3")
            out, _ = first.communicate(timeout=RUN_TIMEOUT)
        except BaseException:
            first.terminate()  # Snakemake then stops its jobs
            raise
    assert first.returncode != 0, out[-4000:]
    assert f"Error in rule {stage}_chunk" in out, out[-4000:]
    sentinel = "norm" if stage == "normalise" else "marginals"
    assert not (tmp_path / f"results/ci/gc/.done/{sentinel}.1").exists()
    assert not (tmp_path / SUMMARY).exists()

    again = run_snakemake(tmp_path, "-c2", "--configfile", CI, env=env, timeout=RUN_TIMEOUT)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-4000:]
    rerun = [j["shell"] for j in dry_run_jobs(out).get(f"{stage}_chunk", [])]
    assert any(f"--chunk 1/3 --sentinel results/ci/gc/.done/{sentinel}.1 " in s
               for s in rerun), out[-4000:]
    assert _summary(tmp_path) == _summary(reference)


@pytest.mark.parametrize("change, expect", [
    # a sampler setting: the sampling runs only, not hours of marginalisation
    ({"sampler": {"nlive": 120}}, {"sample_bkg_only", "sample", "bayes_factor", "report"}),
    # a new simulation: events onwards, not the IRF tables and normalisation
    ({"simulation": {"seed": 12}}, {"stage_config", "events", "marginalise_create",
                                    "marginalise_chunk", "bin", "sample_bkg_only",
                                    "sample", "bayes_factor", "report"}),
])
def test_config_change_reruns_the_stages_that_read_it(reference, tmp_path, change, expect):
    dry = run_snakemake(reference, "-n", "-c2", "--configfile", str(ci_config(tmp_path, **change)))
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-4000:]
    assert set(dry_run_jobs(out)) == expect | {"campaign_config", "all"}, out[-4000:]


def test_deleted_chunk_sentinel_reruns_that_chunk_alone(reference):
    (reference / "results/ci/gc/.done/marginals.1").unlink()
    dry = run_snakemake(reference, "-n", "-c2", "--configfile", CI)
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-4000:]
    jobs = dry_run_jobs(out)
    # that chunk, then only what depends on it: the two sampling runs, their join and
    # the report
    assert set(jobs) == {"marginalise_chunk", "sample_bkg_only", "sample", "bayes_factor",
                         "report", "all"}, out[-4000:]
    assert [re.search(r"--chunk (\S+)", j["shell"]).group(1)
            for j in jobs["marginalise_chunk"]] == ["1/3"]
    assert len(jobs["sample"]) == len(jobs["sample_bkg_only"]) == 1
