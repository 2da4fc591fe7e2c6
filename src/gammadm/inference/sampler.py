"""A thin dynesty adapter: seeds, queue size, pools, checkpoints and SIGTERM.

- Serial runs use `SerialPool` (a pool whose map is the built-in map) so that a serial
  run and an MPI proposal-pool run with the same seed and ``queue_size`` draw the same
  samples (PLATFORM.md: dynesty reproduces across pools only for equal queue sizes).
- Checkpoints: ``<out>/.ckpt/<label>.pkl`` (dynesty's own pickle; it holds the
  likelihood, which pickles as store paths, not arrays) every ``checkpoint_every``
  seconds, and on SIGTERM: the driver sets a flag in the handler, finishes the current
  iteration, saves and raises `Checkpointed` (the CLI exits with `EXIT_CHECKPOINTED`).
  A run started with a checkpoint present resumes from it if it was written for the
  same settings, parameters and data (the caller's fingerprint), else sets it aside.
"""

from __future__ import annotations

import json
import logging
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["SamplerSettings", "SerialPool", "CountingLikelihood", "Checkpointed", "EXIT_CHECKPOINTED",
           "run_dynesty", "checkpoint_path"]

log = logging.getLogger(__name__)

#: Exit status of a run stopped by SIGTERM after saving its checkpoint (re-run to resume;
#: 75 is EX_TEMPFAIL of sysexits.h: "try again later").
EXIT_CHECKPOINTED = 75


class Checkpointed(Exception):
    """The run was stopped by SIGTERM after its checkpoint was saved."""


@dataclass(frozen=True)
class SamplerSettings:
    """dynesty settings recorded in summary.json."""

    nlive: int = 500
    dlogz: float = 0.8
    seed: int = 42
    queue_size: int = 2
    parallel: str = "serial"  # serial | proposal | data
    ranks: int = 1
    name: str = "dynesty"

    @classmethod
    def from_config(cls, sampler_cfg: dict, parallel: str, ranks: int) -> SamplerSettings:
        return cls(int(sampler_cfg["nlive"]), float(sampler_cfg["dlogz"]),
                   int(sampler_cfg["seed"]), int(sampler_cfg["queue_size"]), parallel,
                   int(ranks))

    def as_dict(self) -> dict:
        return asdict(self)


class CountingLikelihood:
    """Counts the calls made in this process (pickled with the count, so a resumed run
    keeps counting). dynesty's own count misses queued proposals that it discards when
    the bound changes (measured: 798 counted of 859 made with queue_size 2)."""

    def __init__(self, like):
        self.like = like
        self.n = 0

    def __call__(self, theta) -> float:
        self.n += 1
        return self.like(theta)

    def __deepcopy__(self, memo):
        return self  # dynesty copies its task arguments; the count must stay shared


class SerialPool:
    """A pool-like object whose map is the built-in map (no ``size``, on purpose: dynesty
    then keeps the requested or checkpointed queue size)."""

    def map(self, fn, iterable):
        return list(map(fn, iterable))


def checkpoint_path(out: str | Path, label: str) -> Path:
    return Path(out) / ".ckpt" / f"{label}.pkl"


class _StopFlag:
    """Set by SIGTERM; restores the previous handler on exit."""

    def __init__(self):
        self.stop = False

    def __enter__(self):
        self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum, frame):
        self.stop = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGTERM, self._old)
        return False


def _set_aside(checkpoint: Path) -> None:
    """Keep a stale checkpoint (other settings, parameters or data) as ``*.stale.pkl``,
    replacing an older stale one, so that the run starts afresh and loses nothing."""
    stale = checkpoint.with_name(checkpoint.stem + ".stale.pkl")
    checkpoint.replace(stale)
    stamp = checkpoint.with_suffix(".json")
    if stamp.exists():
        stamp.replace(stale.with_suffix(".json"))
    log.warning("checkpoint %s was written for other settings, parameters or data (a "
                "store re-made since?); kept as %s, sampling starts afresh", checkpoint,
                stale.name)


def _fingerprint(settings: SamplerSettings, ndim: int, names: list[str], extra: str) -> str:
    return json.dumps({"settings": {k: v for k, v in settings.as_dict().items()
                                    if k not in ("parallel", "ranks")},
                       "ndim": ndim, "names": names, "extra": extra}, sort_keys=True)


def run_dynesty(loglike, prior_transform, ndim: int, names: list[str],
                settings: SamplerSettings, checkpoint: Path | None = None, pool=None,
                checkpoint_every: float = 60.0, fingerprint_extra: str = "",
                progress_every: float = 30.0):
    """Run (or resume) static nested sampling.

    Returns
    -------
    results : dynesty Results
    n_calls : int
        Likelihood calls of the whole run, resumed parts included: exact for in-process
        runs (serial and data mode, where rank 0 makes every call); dynesty's count for
        an external pool (proposal mode), which misses discarded queued proposals.

    Parameters
    ----------
    loglike, prior_transform : callable
        Picklable (they are stored in the checkpoint and sent to pool workers).
    settings : SamplerSettings
    checkpoint : Path, optional
        Checkpoint file; resumed if it exists and was written for the same settings,
        parameters and ``fingerprint_extra``; else it is stale: kept as
        ``<label>.stale.pkl`` and the run starts afresh.
    pool : object with ``map``, optional
        Default `SerialPool`.
    progress_every : float
        Seconds between progress lines on stdout (iteration, calls, ln Z and the
        remaining dlogz against the stopping value); a run shorter than this prints none.

    Raises
    ------
    Checkpointed
        After SIGTERM: the current iteration finished and the checkpoint was saved.
    """
    import dynesty
    from dynesty.utils import compute_integrals

    local = pool is None  # every call happens here: count them exactly
    pool = pool or SerialPool()
    if local:
        loglike = CountingLikelihood(loglike)
    fp = _fingerprint(settings, ndim, names, fingerprint_extra)
    sampler = None
    if checkpoint is not None and checkpoint.exists():
        stamp = checkpoint.with_suffix(".json")
        if stamp.exists() and stamp.read_text() == fp:
            sampler = dynesty.NestedSampler.restore(str(checkpoint), pool=pool)
        else:
            _set_aside(checkpoint)
    if sampler is None:
        sampler = dynesty.NestedSampler(loglike, prior_transform, ndim, nlive=settings.nlive,
                                        rstate=np.random.default_rng(settings.seed),
                                        queue_size=settings.queue_size, pool=pool)
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.with_suffix(".json").write_text(fp)

    def save():
        tmp = checkpoint.with_suffix(".tmp")
        sampler.save(str(tmp))
        tmp.replace(checkpoint)  # atomic: a kill while saving leaves the old one

    last = shown = time.monotonic()
    what = f" ({checkpoint.stem})" if checkpoint is not None else ""
    with _StopFlag() as flag:
        if not sampler.added_live:
            for it in sampler.sample(dlogz=settings.dlogz, save_bounds=False):
                if time.monotonic() - shown > progress_every:
                    shown = time.monotonic()
                    print(f"  sampling{what}: iteration {sampler.it}, {sampler.ncall} calls, "
                          f"ln Z = {it.logz:.3f}, remaining dlogz {it.delta_logz:.3g} "
                          f"(stops below {settings.dlogz:g})", flush=True)
                if checkpoint is None:
                    continue  # nowhere to save: SIGTERM waits for the end of the run
                if flag.stop or time.monotonic() - last > checkpoint_every:
                    save()
                    last = time.monotonic()
                if flag.stop:
                    raise Checkpointed(str(checkpoint))
            sampler.add_final_live(print_progress=False)
            run = sampler.saved_run
            logwt, logz, logzvar, h = compute_integrals(logl=run["logl"], logvol=run["logvol"])
            run["logwt"], run["logz"] = logwt.tolist(), logz.tolist()
            run["logzvar"], run["h"] = logzvar.tolist(), h.tolist()
            if checkpoint is not None:
                save()
    counter = sampler.loglikelihood.loglikelihood  # dynesty's LogLikelihood, then
    counter = getattr(counter, "func", counter)  # its _function_wrapper
    n_calls = counter.n if isinstance(counter, CountingLikelihood) else int(sampler.ncall)
    return sampler.results, n_calls
