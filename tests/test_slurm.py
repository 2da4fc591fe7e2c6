"""The local one-node SLURM cluster (scripts/slurm-localhost.sh): real daemons, real MPI.

What the workflow's SLURM profile relies on: `srun --mpi=pmi2 -n 2` wires the venv's
mpi4py (PyPI MPICH) into one world of two ranks, and batch jobs run and finish.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .workflow_helpers import ROOT, snakemake_argv, snakemake_env

pytestmark = pytest.mark.slurm

HELLO = ("from mpi4py import MPI; c = MPI.COMM_WORLD; "
         "print(f'rank {c.Get_rank()} of {c.Get_size()}', flush=True)")


def test_srun_pmi2_gives_one_world_of_two_ranks():
    out = subprocess.run(["srun", "--mpi=pmi2", "-n", "2", sys.executable, "-c", HELLO],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert sorted(out.split("\n")[:-1]) == ["rank 0 of 2", "rank 1 of 2"]


def test_sbatch_wait_runs_a_job_to_the_end(tmp_path):
    out = tmp_path / "job.out"
    proc = subprocess.run(["sbatch", "--wait", "-n", "1", "--mem=100", "-o", str(out),
                           "--wrap", "echo job $SLURM_JOB_ID on $SLURMD_NODENAME; exit 0"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[-1]
    assert out.read_text().split() == ["job", job_id, "on", "localhost"]


def test_sbatch_wait_reports_a_failing_job(tmp_path):
    proc = subprocess.run(["sbatch", "--wait", "--mem=100", "-o", "/dev/null",
                           "--wrap", "exit 3"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 3


MPI_RULE = """
import sys

rule sample:
    output: "ranks.txt"
    log: "sample.log"
    threads: 2
    resources: tasks=2, mpi="mpiexec"
    shell: "{resources.mpi} -n {resources.tasks} " + sys.executable + " hello.py > {output} 2> {log}"
"""


def test_slurm_profile_runs_an_mpi_rule_through_srun_pmi2(tmp_path):
    """profiles/slurm's settings of the sampling rule (tasks from the rule, srun
    --mpi=pmi2 as the launcher, one CPU per task) on a rule of the same shape as the
    workflow's `sample`: one sbatch job, one MPI world of two ranks."""
    (tmp_path / "Snakefile").write_text(MPI_RULE)
    (tmp_path / "hello.py").write_text(HELLO)
    run = subprocess.run(
        ["timeout", "300", str(Path(sys.executable).parent / "snakemake"),
         "--workflow-profile", str(ROOT / "profiles" / "slurm"),
         "--slurm-init-seconds-before-status-checks", "2",
         "--seconds-between-status-checks", "3"],
        cwd=tmp_path, capture_output=True, text=True)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]
    assert re.search(r"Shell command: srun --mpi=pmi2 -n 2 \S+/python\S* hello\.py ", out)
    assert "tasks=2, mpi=srun --mpi=pmi2, cpus_per_task=1, slurm_extra=--signal=TERM@180" in out
    assert len(re.findall(r"has been submitted with SLURM jobid", out)) == 1
    ranks = (tmp_path / "ranks.txt").read_text().splitlines()
    assert sorted(ranks) == ["rank 0 of 2", "rank 1 of 2"]


@pytest.mark.slow
def test_campaign_stores_on_slurm_equal_their_chunks_and_rerun_one_chunk(tmp_path, data_root):
    """The CI campaign through profiles/slurm (real sbatch, squeue status checks, each
    chunk a SLURM job): every chunk filled (no NaN left), the event count as simulated,
    a deleted chunk sentinel re-runs that chunk alone, and the run to the end samples
    under `srun --mpi=pmi2 -n 2` (sampler.tasks = 2) and writes a valid summary."""
    import json

    import numpy as np
    import yaml
    import zarr

    import jsonschema

    from gammadm.config import load_schema

    campaign = tmp_path / "results" / "ci" / "gc"
    targets = ([f"results/ci/gc/.done/norm.{i}" for i in range(3)]
               + [f"results/ci/gc/.done/marginals.{i}" for i in range(3)]
               + ["results/ci/gc/tables.zarr"])
    cfg = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    cfg["sampler"]["tasks"] = 2
    (tmp_path / "ci2.yaml").write_text(yaml.safe_dump(cfg))

    def snakemake(*args, targets=targets):
        return subprocess.run(
            ["timeout", "900", *snakemake_argv(tmp_path, *targets),
             "--configfile", str(tmp_path / "ci2.yaml"),
             "--workflow-profile", "profiles/slurm",
             # test-only: poll often; the node has 2 CPUs, so one chunk per group job
             # and one numba thread per chunk job (two run side by side)
             "--slurm-init-seconds-before-status-checks", "2",
             "--seconds-between-status-checks", "3",
             "--group-components", "chunks=1",
             "--set-threads", "normalise_chunk=1", "marginalise_chunk=1", *args],
            cwd=ROOT, capture_output=True, text=True, env=snakemake_env(data_root))

    run = snakemake()
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert len(re.findall(r"has been submitted with SLURM jobid", out)) == 8  # tabulate, events, 6 chunks
    for store, n in (("norm.zarr", 12), ("marginals.zarr", 10)):
        arrays = _arrays(zarr.open_group(str(campaign / store), mode="r"))
        assert len(arrays) >= n
        for name, a in arrays.items():
            assert not (a.dtype.kind == "f" and np.isnan(a).any()), f"{store}/{name} has NaN"
    n_events = sum(int(re.search(r"\((\d+) events\)", p.read_text()).group(1))
                   for p in (tmp_path / "results" / "ci" / "logs" / "marginalise").glob("gc.[0-9].log"))
    assert n_events == 200  # simulation.n_events of config/ci.yaml, all inside the ROI

    (campaign / ".done" / "marginals.1").unlink()
    again = snakemake("--dry-run")
    assert again.returncode == 0, again.stderr[-3000:]
    assert re.findall(r"--chunk (\d/\d)", again.stdout + again.stderr) == ["1/3"]

    final = snakemake(targets=[])  # to the end: that chunk, then the sampling rules
    out = final.stdout + final.stderr
    assert final.returncode == 0, out[-4000:]
    assert re.findall(r"--chunk (\d/\d)", out) == ["1/3"]
    # background-only and signal runs, each one MPI world of 2 ranks under srun
    assert len(re.findall(r"Shell command: .*srun --mpi=pmi2 -n 2 \S+ -m gammadm\.cli sample",
                          out)) == 2
    summary = json.loads((tmp_path / "results" / "ci" / "posterior" / "summary.json").read_text())
    jsonschema.validate(summary, load_schema("summary"))
    assert summary["sampler"]["ranks"] == 2 and summary["n_events"] == 200


def _arrays(group, prefix=""):
    import zarr

    out = {}
    for name, member in group.members():
        if isinstance(member, zarr.Group):
            out.update(_arrays(member, f"{prefix}{name}/"))
        else:
            out[prefix + name] = member[...]
    return out
