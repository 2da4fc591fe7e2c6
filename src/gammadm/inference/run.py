"""`gammadm sample`: serial or MPI nested sampling of a campaign, and its outputs.

Signal run: ``DIR/summary.json``, ``DIR/samples.npz``, ``DIR/corner.png``.
Background-only run (``background_only``): ``DIR/evidence.json`` (its evidence, call
count and priors), read by the signal run through ``bkg_evidence`` for the Bayes factor.
Checkpoints: ``DIR/.ckpt/{signal,bkg_only}.pkl``.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..config import ConfigError
from .api import StoreModelSpec, _build, binned_path, model_from_results, store_paths
from .limits import upper_limits
from .sampler import SamplerSettings, checkpoint_path, run_dynesty
from .summary import (posterior_table, read_bkg_evidence, realised_fractions,
                      set_bayes_factor, weighted_samples, write_corner, write_samples,
                      write_summary)

__all__ = ["run_sample", "BINNED_ABOVE"]

#: likelihood.binned / sampler.parallel "auto" switch above this many events.
BINNED_ABOVE = 1_000_000
#: config sections a checkpoint's fingerprint leaves out (they do not change the run)
_NOT_IN_FINGERPRINT = ("upper_limits", "sbc")


def checkpoint_fingerprint(cfg: dict, stores, binned: bool = False) -> str:
    """What a sampling checkpoint must have been written for: the campaign without the
    sections the posterior does not depend on (the fixed-mass limits fingerprint their
    own mass and prior), and the stores, by path and by the state of their files (a
    store re-made since, by changed code or inputs, makes the checkpoint stale)."""
    from ..store import store_stamp

    read = [p for _, norm, marg in stores
            for p in (norm, marg, *([binned_path(norm)] if binned else []))]
    return (json.dumps({k: v for k, v in cfg.items() if k not in _NOT_IN_FINGERPRINT},
                       sort_keys=True) + repr(tuple(stores))
            + repr([store_stamp(p) for p in read]))


def _n_events(stores) -> list[int]:
    import zarr

    out = []
    for _, _, marg in stores:
        if not Path(marg).exists():
            raise ConfigError("observations", f"{marg} does not exist; run 'gammadm "
                              "marginalise' for this observation first")
        out.append(int(zarr.open_group(marg, mode="r").attrs["n_events"]))
    return out


def _parallel_mode(cfg: dict, n_total: int) -> str:
    s = cfg["sampler"]
    if s["tasks"] == 1:
        return "serial"
    if s["parallel"] == "auto":
        return "data" if n_total > BINNED_ABOVE else "proposal"
    return s["parallel"]


def _use_binned(cfg: dict, stores, n_total: int) -> bool:
    """likelihood.binned (auto: above 1e6 events); binned needs each binned.zarr."""
    from ..binned import use_binned

    if not use_binned(cfg["likelihood"]["binned"], n_total):
        return False
    for _, norm, _ in stores:
        path = binned_path(norm)
        if not path.exists():
            raise ConfigError("likelihood.binned", f"binned likelihood ({n_total} events) "
                              f"needs {path}; run 'gammadm bin' for this observation")
    return True


def _truths(cfg: dict, model, mode: str) -> dict:
    """Simulation truths: the mass; the nominal tree values when the simulation used the
    tree (fixed or multinomial mode); <sigma v> and the scales when it used the physical
    rates."""
    sim = cfg["simulation"]
    if any(o["events"]["source"] != "simulate" for o in cfg["observations"]):
        return {}
    out = {"mass_TeV": sim["mass_TeV"]}
    if mode == "fractions" and sim["mode"] in ("fixed", "multinomial"):
        out.update(model.tree.nominal())
    elif mode == "rates" and sim["mode"] == "poisson":
        out["sigmav_cm3_s"] = sim["sigmav_cm3_s"]
        out.update({n: sim["background_scale"] for n in model.names if n.startswith("scale_")})
    return out


def _realised(cfg: dict, results: Path, stores, mode: str) -> dict:
    """Realised fractions from the MC truth of the simulated event list, if present."""
    if mode != "fractions":
        return {}
    from ..events import read_events

    name = stores[0][0]
    path = results / cfg["campaign"] / name / "events.fits"
    if not path.exists():
        return {}
    ev = read_events(path)
    if ev.mc is None:
        return {}
    counts = np.bincount(ev.mc["component"], minlength=len(ev.mc_components))
    return realised_fractions(cfg["mixture"], dict(zip(ev.mc_components, counts.tolist())))


@contextmanager
def _likelihood_and_pool(mode: str, spec: StoreModelSpec, model):
    """(likelihood, pool) of rank 0 for the parallel mode: the model's likelihood and
    an MPI pool (proposal), the data-parallel likelihood (data; the workers are
    released on leaving), or the model's likelihood alone (serial). Proposal workers get
    (None, None) once rank 0 has left the block."""
    if mode == "proposal":
        from mpi4py import MPI
        from mpi4py.futures import MPICommExecutor

        with MPICommExecutor(MPI.COMM_WORLD, root=0) as pool:
            yield (model.loglike, pool) if pool is not None else (None, None)
    elif mode == "data":
        from .parallel import DataParallelLikelihood

        like = DataParallelLikelihood.from_spec(spec)
        try:
            yield like, None
        finally:
            like.release_workers()
    else:
        yield model.loglike, None


def run_sample(cfg: dict, out: Path, results: Path, obs: str | None = None,
               background_only: bool = False, bkg_evidence: Path | None = None,
               summary_name: str = "summary.json") -> int:
    """Run `gammadm sample`; returns the exit status (0, or raises). The signal run
    writes its summary to ``out / summary_name``."""
    from .parallel import check_world, ignore_sigterm, serve_data

    t0 = time.monotonic()
    stores = store_paths(cfg, results, obs)
    counts = _n_events(stores)
    n_total = sum(counts)
    binned = _use_binned(cfg, stores, n_total)
    tasks = cfg["sampler"]["tasks"]
    comm = check_world(tasks)
    rank = comm.Get_rank() if comm is not None else 0
    mode = _parallel_mode(cfg, n_total)
    settings = SamplerSettings.from_config(cfg["sampler"], mode, tasks)
    signal = not background_only
    spec = StoreModelSpec(json.dumps(cfg, sort_keys=True), tuple(stores), signal,
                          (rank, tasks) if mode == "data" else (0, 1), binned)
    if rank != 0:
        ignore_sigterm()
    if mode == "data" and rank != 0:
        serve_data(_build(spec).loglike)
        return 0
    model = model_from_results(cfg, results, obs, signal, spec.shard, binned)
    t_load = time.monotonic() - t0
    label = "signal" if signal else "bkg_only"
    ckpt = checkpoint_path(out, label)
    extra = checkpoint_fingerprint(cfg, spec.stores, binned)
    with _likelihood_and_pool(mode, spec, model) as (like, pool):
        if like is None:  # an MPI proposal worker: served until rank 0 left the block
            return 0
        res, n_calls = run_dynesty(like, model.prior, model.ndim, model.names, settings,
                                   ckpt, pool=pool, fingerprint_extra=extra)
        t_sample = time.monotonic() - t0 - t_load
        # at fixed masses, by the same likelihood, pool and settings (rates mode)
        limits = (upper_limits(like, model.prior, cfg, settings, out, extra, pool)
                  if signal and cfg["likelihood"]["mode"] == "rates" else None)
    t_limits = time.monotonic() - t0 - t_load - t_sample
    out.mkdir(parents=True, exist_ok=True)
    log_z, log_z_err = float(res.logz[-1]), float(res.logzerr[-1])
    if background_only:
        (out / "evidence.json").write_text(json.dumps({
            "model": "background_only", "log_evidence": log_z, "log_evidence_err": log_z_err,
            "n_likelihood_calls": n_calls, "priors": model.prior.describe(),
            "sampler": settings.as_dict()}, indent=1) + "\n")
        print(f"wrote {out / 'evidence.json'}: ln Z_bkg = {log_z:.3f} +- {log_z_err:.3f} "
              f"({n_calls} likelihood calls)")
        return 0
    built = _build(spec)
    x, w, names, flags = weighted_samples(res, built)
    truths = _truths(cfg, built, cfg["likelihood"]["mode"])
    realised = _realised(cfg, results, stores, cfg["likelihood"]["mode"])
    summary = {
        "schema_version": 1, "campaign": cfg["campaign"], "mode": cfg["likelihood"]["mode"],
        "binned": binned,
        "observations": [{"name": a.name, "n_events": a.meta["n_events"],
                          "n_cut": a.meta["n_cut"], "livetime_s": a.meta["livetime_s"]}
                         for a in (t.a for t in built.loglike.terms)],
        "n_events": n_total,
        "parameters": posterior_table(x, w, names, flags, truths, realised),
        "priors": model.prior.describe(),
        "log_evidence": log_z, "log_evidence_err": log_z_err,
        "log_evidence_bkg_only": None, "log_bayes_factor": None,  # set below
        "upper_limits": limits, "n_likelihood_calls": n_calls,
        "sampler": settings.as_dict(),
        "wall_seconds": {},
    }
    set_bayes_factor(summary, read_bkg_evidence(bkg_evidence) if bkg_evidence else None)
    write_samples(out / "samples.npz", res, x, w, names)
    write_corner(out / "corner.png", x, w, names, truths)
    wall = {"load": t_load, "sample": t_sample}
    if limits is not None:
        wall["upper_limits"] = t_limits
    wall["write"] = time.monotonic() - t0 - t_load - t_sample - t_limits
    summary["wall_seconds"] = {k: round(v, 3) for k, v in wall.items()}
    write_summary(out / summary_name, summary)
    print(f"wrote {out / summary_name}: ln Z = {log_z:.3f} +- {log_z_err:.3f}, "
          f"{n_calls} likelihood calls, {t_sample:.1f} s sampling")
    for lim in (limits or {}).get("limits", []):
        print(f"  {limits['credibility']:.0%} upper limit on <sigma v> at m = "
              f"{lim['mass_TeV']:g} TeV: {lim['uniform']:.3g} (uniform prior), "
              f"{lim['log_uniform']:.3g} (log-uniform) cm^3 s^-1")
    return 0
