"""MPI modes of `gammadm sample` (DESIGN.md, Contracts).

- ``proposal``: dynesty's pool is ``MPICommExecutor(COMM_WORLD, root=0)`` (no process
  spawning, which srun forbids); rank 0 drives dynesty, the others evaluate proposals.
- ``data``: every rank holds one shard of the events (`StoreModelSpec.shard`); rank 0
  drives dynesty and, per call, broadcasts the parameters, evaluates its own shard,
  gathers the others' partial sums and adds them in rank order (deterministic).

Worker ranks ignore SIGTERM; only rank 0 checkpoints. mpi4py is imported only here,
so that serial runs never initialise MPI.
"""

from __future__ import annotations

import os
import signal

import numpy as np

from .api import StoreModelSpec, _build
from .likelihood import finite

__all__ = ["ParallelError", "launched_ranks", "check_world", "DataParallelLikelihood",
           "serve_data", "ignore_sigterm"]


class ParallelError(RuntimeError):
    """The MPI world does not match the requested tasks."""


def launched_ranks() -> int:
    """Ranks of an MPI launch as seen from the environment, without initialising MPI."""
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        if os.environ.get(key, "").isdigit():
            return int(os.environ[key])
    return 1


def check_world(tasks: int):
    """COMM_WORLD if its size is ``tasks`` (tasks > 1), else `ParallelError`; for
    tasks = 1, only checks that the process was not launched as several ranks."""
    if tasks == 1:
        n = launched_ranks()
        if n != 1:
            raise ParallelError(f"sampler.tasks is 1 but the process was launched as {n} MPI "
                                "ranks; set sampler.tasks to the rank count or run without "
                                "mpiexec/srun")
        return None
    from mpi4py import MPI

    size = MPI.COMM_WORLD.Get_size()
    if size != tasks:
        raise ParallelError(f"sampler.tasks is {tasks} but the MPI world has {size} rank(s); "
                            f"launch with 'mpiexec -n {tasks} gammadm sample ...' (or srun "
                            f"-n {tasks})")
    return MPI.COMM_WORLD


def ignore_sigterm() -> None:
    """Worker ranks: SIGTERM is rank 0's business (it saves and stops the run)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class DataParallelLikelihood:
    """Rank 0's likelihood in data mode over this rank's shard ``inner``.

    Built from a `StoreModelSpec` (``from_spec``) it pickles as that spec and re-attaches
    COMM_WORLD and its shard on unpickling (checkpoints hold paths, not arrays).
    """

    def __init__(self, inner, spec: StoreModelSpec | None = None, comm=None):
        from mpi4py import MPI

        self.inner, self.spec = inner, spec
        self.comm = comm or MPI.COMM_WORLD

    @classmethod
    def from_spec(cls, spec: StoreModelSpec) -> DataParallelLikelihood:
        return cls(_build(spec).loglike, spec)

    def __call__(self, theta) -> float:
        theta = np.asarray(theta, float)
        self.comm.bcast(theta, root=0)
        g, amps = self.inner.prepare(theta)
        parts = self.comm.gather(self.inner.local(amps), root=0)
        total = g
        for p in parts:  # rank order
            total += p
        return finite(total)

    def release_workers(self) -> None:
        self.comm.bcast(None, root=0)

    def __getstate__(self):
        if self.spec is None:
            raise TypeError("a data-parallel likelihood built from arrays cannot be pickled")
        return {"spec": self.spec}

    def __setstate__(self, state):
        other = DataParallelLikelihood.from_spec(state["spec"])
        self.__dict__.update(other.__dict__)


def serve_data(inner) -> int:
    """Worker loop of data mode: evaluate this rank's shard (``inner``: a likelihood
    with ``prepare`` and ``local``) until rank 0 sends None. Returns the call count."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    n = 0
    while True:
        theta = comm.bcast(None, root=0)
        if theta is None:
            return n
        _, amps = inner.prepare(theta)
        comm.gather(inner.local(amps), root=0)
        n += 1
