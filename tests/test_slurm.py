"""The local one-node SLURM cluster (scripts/slurm-localhost.sh): real daemons, real MPI.

What the workflow's SLURM profile relies on: `srun --mpi=pmi2 -n 2` wires the venv's
mpi4py (PyPI MPICH) into one world of two ranks, and batch jobs run and finish.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
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
