"""The ``gammadm`` command: one subcommand per workflow stage.

Errors a user can fix (config, data, IRF) print one line naming the field or file
and exit with status 2; nothing already computed is touched.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

__all__ = ["main"]

DEFAULT_CONFIG = "config/config.yaml"


def _load(args):
    from .config import load_config

    return load_config(args.config)


def cmd_fetch_data(args) -> int:
    from .data import data_dir, fetch_data
    from .instrument import prod5_group

    groups = None
    root = data_dir(args.data_dir)
    if args.config:
        cfg = _load(args)
        root = data_dir(args.data_dir or cfg["data_dir"])
        groups = sorted({prod5_group(o["irf"]["site"], o["irf"]["zenith_deg"],
                                     o["irf"]["subarray"])
                         for o in cfg["observations"] if not o["irf"]["file"]})
    if args.irf_group:
        groups = sorted(set(groups or []) | set(args.irf_group))
    report = fetch_data(root, groups, wheel=Path(args.wheel) if args.wheel else None)
    print(f"data directory {report.data_dir}: {len(report.verified)} files verified"
          f" ({'downloaded and extracted ' + str(len(report.extracted)) if report.downloaded else 'nothing downloaded'}"
          f"{', converted ' + ', '.join(report.converted) if report.converted else ''})")
    return 0


def cmd_validate(args) -> int:
    cfg = _load(args)
    if args.show:
        print(json.dumps(cfg, indent=1))
    else:
        print(f"{args.config}: valid campaign '{cfg['campaign']}' with "
              f"{len(cfg['observations'])} observation(s)")
    return 0


def cmd_irf(args) -> int:
    """Summarise the IRF of one observation and the true grid derived from it."""
    import numpy as np

    from .observation import Observation

    cfg = _load(args)
    obs = Observation.from_config(cfg, args.obs)
    irf, grid = obs.irf, obs.true
    sig = irf.psf([0.1, 1.0, 10.0], 0.0)[0][:, 0]
    out = {
        "irf_file": str(irf.path),
        "migration_storage": irf.edisp_conventions,
        "migration_raw_deviation": irf.edisp_raw_deviation,
        "aeff_1TeV_on_axis_cm2": float(irf.effective_area(1.0, 0.0)),
        "psf_sigma_deg_0.1_1_10TeV_on_axis": [round(float(s), 4) for s in sig],
        "ccr_rate_1TeV_on_axis_per_s_TeV_deg2": float(irf.ccr_rate(1.0, 0.0, 0.0)
                                                      * (np.pi / 180) ** 2),
        "true_grid": {
            "energy_tev": [float(grid.energy.edges[0]), float(grid.energy.edges[-1])],
            "l_deg": [float(grid.lon.edges[0]), float(grid.lon.edges[-1])],
            "b_deg": [float(grid.lat.edges[0]), float(grid.lat.edges[-1])],
            "shape": list(grid.shape),
        },
        "reach": obs.reach.__dict__,
    }
    print(json.dumps(out, indent=1))
    return 0


def cmd_tabulate(args) -> int:
    """Tabulate exposure, templates and spectra of one observation into tables.zarr (and,
    with --figures, draw the models' figures from the same models)."""
    from .models.tables import build_models, write_tables

    cfg = _load(args)
    obs_name, out = _stage_output(cfg, args, "tables.zarr")
    models = build_models(cfg, obs_name)
    write_tables(models, out)
    if models.hgps is not None:
        flagged = ", ".join(models.hgps.flagged)
        if flagged:
            print(f"note: catalogue spectra extrapolated below their HGPS threshold: {flagged}",
                  file=sys.stderr)
    print(f"wrote {out} (true grid {models.obs.true.shape})")
    if args.figures:  # the same models drawn, without building them again
        from .models.plots import plot_models

        for path in plot_models(models, Path(args.figures)):
            print(f"wrote {path}")
    return 0


def cmd_plot_models(args) -> int:
    """Figures of the source models of one observation (PNG)."""
    from .models.plots import plot_models
    from .models.tables import build_models

    cfg = _load(args)
    obs_name, out = _stage_output(cfg, args, "figures")
    for path in plot_models(build_models(cfg, obs_name), out):
        print(f"wrote {path}")
    return 0


def _chunk_plan(args, n_chunks: int, field: str):
    """(create the store?, chunk indices to fill) from --create / --chunk i/n; None
    after printing one error line (bad --chunk, or n differing from the config)."""
    from .store import parse_chunk

    try:
        chunk = parse_chunk(args.chunk) if args.chunk else None
    except ValueError as exc:
        print(f"gammadm {args.command}: error: {exc}", file=sys.stderr)
        return None
    if chunk and chunk[1] != n_chunks:
        print(f"gammadm {args.command}: error: --chunk {args.chunk} but config field "
              f"'{field}' is {n_chunks}", file=sys.stderr)
        return None
    if chunk:
        return args.create, [chunk[0]]
    return True, ([] if args.create else list(range(n_chunks)))


def _touch(sentinel: str | None) -> None:
    if sentinel:
        Path(sentinel).parent.mkdir(parents=True, exist_ok=True)
        Path(sentinel).touch()


def cmd_normalise(args) -> int:
    """IRF normalisation and expected-count terms: create norm.zarr and/or fill chunks."""
    from .normalise import create, fill_chunk

    stage = _chunked_stage(args, "norm.zarr", "normalisation")
    if stage is None:
        return 2
    cfg, out, n_chunks, create_it, todo, ctx = stage
    if create_it:
        create(ctx, out, n_chunks)
        print(f"created {out} ({len(ctx.quad)} energy sub-intervals x "
              f"{ctx.obs.true.shape[1]} x {ctx.obs.true.shape[2]} cells, {n_chunks} chunk(s))")
    _fill_chunks(fill_chunk, ctx, out, todo, n_chunks, args.sentinel)
    return 0


def _chunked_stage(args, output: str, section: str):
    """The common start of a chunked stage: (cfg, output path, n_chunks, create the
    store?, chunks to fill, NormContext); None after a one-line error."""
    from .normalise import NormContext

    cfg = _load(args)
    obs_name, out = _stage_output(cfg, args, output)
    n_chunks = cfg[section]["chunks"]
    plan = _chunk_plan(args, n_chunks, f"{section}.chunks")
    if plan is None:
        return None
    return cfg, out, n_chunks, plan[0], plan[1], NormContext(cfg, obs_name)


def _fill_chunks(fill_chunk, ctx, out, todo, n_chunks: int, sentinel) -> None:
    for i in todo:
        fill_chunk(ctx, out, i, n_chunks)
        print(f"filled chunk {i}/{n_chunks} of {out}")
    _touch(sentinel)


def cmd_events(args) -> int:
    """One observation's event list as GADF DL3: simulated, or ingested from the DL3 file
    of ``observations[].events.file`` (events inside the ROI and GTIs kept, the numbers
    cut recorded in the output's header)."""
    from .events import EventFileError, read_events, write_events, write_index
    from .instrument.reach import angular_offset
    from .observation import Observation

    cfg = _load(args)
    obs_name, out = _stage_output(cfg, args, "events.fits")
    obs_cfg = next(o for o in cfg["observations"] if o["name"] == obs_name)
    if obs_cfg["events"]["source"] == "simulate":
        return cmd_simulate(args)
    i = cfg["observations"].index(obs_cfg)
    field = f"observations[{i}].events.file"
    if not obs_cfg["events"]["file"]:
        raise EventFileError(f"config field '{field}': no DL3 file given for events.source dl3")
    obs = Observation.from_config(cfg, obs_name)
    ev = read_events(obs_cfg["events"]["file"], obs.roi, cfg["roi"]["strict"])
    sep = angular_offset(*ev.pointing, *obs.pointing)
    if sep > 0.01:
        raise EventFileError(
            f"{obs_cfg['events']['file']}: pointing (l, b) = ({ev.pointing[0]:.3f}, "
            f"{ev.pointing[1]:.3f}) deg differs by {sep:.3f} deg from the config's "
            f"observations[{i}].pointing ({obs.pointing[0]:.3f}, {obs.pointing[1]:.3f})")
    ev.site = obs_cfg["irf"]["site"]
    write_events(out, ev)
    write_index(out.parent, [out], obs.irf.path)
    print(f"wrote {out}: {ev.n} of {ev.n_read} events of {obs_cfg['events']['file']} "
          f"({ev.n_cut_roi} outside the ROI, {ev.n_cut_gti} outside the GTIs)")
    return 0


def cmd_simulate(args) -> int:
    """Simulate one observation's event list (GADF DL3) from the continuous model."""
    import numpy as np

    from .events import write_events, write_index
    from .events.simulate import simulate_observation
    from .normalise import NormContext

    cfg = _load(args)
    obs_name, out = _stage_output(cfg, args, "events.fits")
    obs_cfg = next(o for o in cfg["observations"] if o["name"] == obs_name)
    ctx = NormContext(cfg, obs_name)
    rng = np.random.default_rng([cfg["simulation"]["seed"], obs_cfg["events"]["seed"]])
    ev = simulate_observation(rng, cfg, ctx)
    ev.site = obs_cfg["irf"]["site"]
    write_events(out, ev)
    write_index(out.parent, [out], ctx.obs.irf.path)
    per = dict(zip(ev.mc_components, np.bincount(ev.mc["component"],
                                                 minlength=len(ev.mc_components)).tolist()))
    print(f"wrote {out}: {ev.n} events {per}")
    return 0


def cmd_marginalise(args) -> int:
    """Per-event marginals of one observation: create marginals.zarr and/or fill chunks."""
    from .marginalise import KernelInputs, create_store, fill_chunk

    stage = _chunked_stage(args, "marginals.zarr", "marginalisation")
    if stage is None:
        return 2
    cfg, out, n_chunks, create_it, todo, ctx = stage
    inputs = KernelInputs.build(ctx)
    if create_it:
        events, _ = _stage_events(cfg, args, ctx)
        create_store(ctx, inputs, events, out, n_chunks)
        print(f"created {out} ({_events_note(events)})")
    if todo:
        for i in todo:
            k = fill_chunk(ctx, inputs, out, i, n_chunks)
            print(f"filled chunk {i}/{n_chunks} of {out} ({k} events)")
    _touch(args.sentinel)
    return 0


def _stage_events(cfg: dict, args, ctx):
    """The event list of a stage (--events, default results/{campaign}/{obs}/events.fits),
    selected to the ROI and the GTIs; returns (events, path)."""
    from .events import read_events

    path = Path(args.events or f"results/{cfg['campaign']}/{ctx.obs.name}/events.fits")
    return read_events(path, ctx.obs.roi, cfg["roi"]["strict"], ctx.obs.pointing), path


def _events_note(events) -> str:
    return (f"{events.n} events; {events.n_cut_roi} outside the ROI and {events.n_cut_gti} "
            "outside the GTIs were cut")


def cmd_bin(args) -> int:
    """Binned mode: expected counts per recon bin and the counts histogram -> binned.zarr
    (created and/or filled by chunks of energy sub-intervals, as norm.zarr)."""
    from .binned import create, fill_chunk, use_binned

    stage = _chunked_stage(args, "binned.zarr", "normalisation")
    if stage is None:
        return 2
    cfg, out, n_chunks, create_it, todo, ctx = stage
    if create_it:
        events, path = _stage_events(cfg, args, ctx)
        create(ctx, out, n_chunks, events, str(path))
        mode = "binned" if use_binned(cfg["likelihood"]["binned"], events.n) else "unbinned"
        print(f"created {out} ({ctx.obs.recon.shape} recon bins; {_events_note(events)}; "
              f"likelihood.binned={cfg['likelihood']['binned']} -> {mode})")
    _fill_chunks(fill_chunk, ctx, out, todo, n_chunks, args.sentinel)
    return 0


def _chunk_arguments(p, field: str) -> None:
    """--create / --chunk i/n / --sentinel of a chunked stage (n must be ``field``)."""
    p.add_argument("--create", action="store_true", help="create the store (NaN-filled)")
    p.add_argument("--chunk", help=f"fill chunk i of n (i/n); n must be {field}")
    p.add_argument("--sentinel", help="file to touch when done")


def _warmup_config(cfg: dict) -> dict:
    """A tiny copy of a campaign (its first observation, a 1 x 1 deg ROI at 1-3 TeV,
    20 events) that runs the same kernels, with the same argument types, as the real
    one."""
    import copy

    tiny = copy.deepcopy(cfg)
    obs = tiny["observations"][0]
    obs["events"] = {"source": "simulate", "seed": 0}
    tiny["observations"] = [obs]
    l0, b0 = obs["pointing"]["l_deg"], obs["pointing"]["b_deg"]
    tiny["roi"].update(energy_tev=[1.0, 3.0], energy_bins_per_decade=5, pixel_deg=0.25,
                       l_deg=[l0 - 0.5, l0 + 0.5], b_deg=[b0 - 0.5, b0 + 0.5])
    tiny["true_grid"] = {"energy_bins_per_decade": 5, "pixel_deg": 0.25}
    tiny["simulation"].update(mode="fixed", n_events=20)
    tiny["normalisation"]["chunks"] = tiny["marginalisation"]["chunks"] = 1
    return tiny


def cmd_warm_numba(args) -> int:
    """Compile the numba kernels into their cache (`NUMBA_CACHE_DIR`) once, by running
    the kernel stages on a tiny copy of the campaign, before many jobs need them."""
    import os
    import tempfile

    import yaml

    cfg = _load(args)
    with tempfile.TemporaryDirectory(prefix="gammadm-warm-") as tmp:
        tiny = Path(tmp) / "tiny.yaml"
        tiny.write_text(yaml.safe_dump(_warmup_config(cfg)))
        base = ["--config", str(tiny)]
        for argv in (["normalise", *base, "--out", f"{tmp}/norm.zarr"],
                     ["simulate", *base, "--out", f"{tmp}/events.fits"],
                     ["marginalise", *base, "--out", f"{tmp}/marginals.zarr",
                      "--events", f"{tmp}/events.fits"]):
            if (rc := main(argv)) != 0:
                return rc
    print(f"numba cache warm: {os.environ.get('NUMBA_CACHE_DIR', '(numba default)')}")
    _touch(args.sentinel)
    return 0


def cmd_install_profile(args) -> int:
    """Copy a Snakemake profile of this workflow (profiles/NAME) into the user's
    Snakemake config folder, where `snakemake --profile NAME` finds it."""
    import shutil

    from snakemake.common import get_appdirs

    # the workflow checkout: the given folder, else the current one, else the source
    # tree this package was installed from (editable installs)
    roots = [Path(args.workflow_dir)] if args.workflow_dir else [
        Path.cwd(), Path(__file__).resolve().parents[2]]
    src = next((r / "profiles" / args.name for r in roots
                if (r / "profiles" / args.name / "config.yaml").is_file()), None)
    if src is None:
        print(f"gammadm install-profile: error: no profile '{args.name}' "
              f"(profiles/{args.name}/config.yaml) in {', '.join(map(str, roots))}; "
              "pass --workflow-dir", file=sys.stderr)
        return 2
    dest = Path(args.dest or get_appdirs().user_config_dir) / args.name
    if dest.exists() and not args.force:
        print(f"gammadm install-profile: error: {dest} exists; --force replaces it",
              file=sys.stderr)
        return 2
    shutil.copytree(src, dest, dirs_exist_ok=True)
    print(f"installed {src} as {dest}: run `snakemake --profile {args.name}`")
    return 0


def cmd_sample(args) -> int:
    """Nested sampling of a campaign (serial, or MPI with sampler.tasks ranks)."""
    from .inference.parallel import ParallelError
    from .inference.run import run_sample
    from .inference.sampler import EXIT_CHECKPOINTED, Checkpointed

    cfg = _load(args)
    sub = f"/{args.obs}" if args.obs else ""
    out = Path(args.out or f"results/{cfg['campaign']}/posterior{sub}")
    if args.bkg_evidence and not Path(args.bkg_evidence).exists():
        print(f"gammadm sample: error: --bkg-evidence {args.bkg_evidence} does not exist "
              "(run 'gammadm sample --background-only' first)", file=sys.stderr)
        return 2
    if args.bkg_evidence:  # checked before hours of sampling, not after
        from .inference.summary import read_bkg_evidence

        try:
            read_bkg_evidence(args.bkg_evidence)
        except ValueError as exc:
            print(f"gammadm sample: error: --bkg-evidence {exc}", file=sys.stderr)
            return 2
    try:
        return run_sample(cfg, out, Path(args.results), args.obs, args.background_only,
                          Path(args.bkg_evidence) if args.bkg_evidence else None,
                          args.summary_name)
    except ParallelError as exc:
        print(f"gammadm sample: error: {exc}", file=sys.stderr)
        return 2
    except Checkpointed as exc:
        print(f"gammadm sample: stopped by SIGTERM; checkpoint saved to {exc}; run the same "
              f"command again to resume (exit {EXIT_CHECKPOINTED})", file=sys.stderr)
        return EXIT_CHECKPOINTED


def cmd_bayes_factor(args) -> int:
    """Join a signal run's summary and a background-only run's evidence."""
    from .inference.summary import add_bayes_factor

    for path in (args.signal, args.bkg_only):
        if not Path(path).exists():
            print(f"gammadm bayes-factor: error: {path} does not exist", file=sys.stderr)
            return 2
    try:
        ln_b = add_bayes_factor(args.signal, args.bkg_only, args.out)
    except ValueError as exc:
        print(f"gammadm bayes-factor: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: ln B = {ln_b:.3f}")
    return 0


def cmd_report(args) -> int:
    """Figures and a text table of a finished campaign -> results/{campaign}/report."""
    from .report import ReportError, write_report

    cfg = _load(args)
    out = Path(args.out or f"{args.results}/{cfg['campaign']}/report")
    try:
        written = write_report(cfg, args.results, out)
    except ReportError as exc:
        print(f"gammadm report: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files into {out}")
    return 0


def _sbc_config(args, command: str):
    """The campaign of an SBC command; None after a one-line error if it has no sweep."""
    cfg = _load(args)
    if "sbc" not in cfg:
        print(f"gammadm {command}: error: {args.config} has no 'sbc' section", file=sys.stderr)
    return cfg if "sbc" in cfg else None


def cmd_sbc_replica(args) -> int:
    """One replica of a calibration sweep: draw the truth from the priors, simulate,
    marginalise, sample, and write the ranks of the truths among posterior draws."""
    from .sbc import run_replica

    cfg = _sbc_config(args, "sbc-replica")
    if cfg is None:
        return 2
    obs = cfg["observations"][0]["name"]
    norm = Path(args.norm or f"{args.results}/{cfg['campaign']}/{obs}/norm.zarr")
    out = Path(args.out or f"{args.results}/{cfg['campaign']}/sbc/replicas/{args.replica}.json")
    record = run_replica(cfg, norm, args.replica)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}: truth {record['truth']}, ranks {record['ranks']} of "
          f"{record['posterior_draws']} ({record['wall_seconds']['total']:.1f} s)")
    return 0


def cmd_sbc_ranks(args) -> int:
    """Rank histograms and KS tests of a calibration sweep from its replica records."""
    from .sbc import plot_rank_histograms, read_records, summarise

    cfg = _sbc_config(args, "sbc-ranks")
    if cfg is None:
        return 2
    sbc = cfg["sbc"]
    summary = {"campaign": cfg["campaign"],
               **summarise(read_records(args.replicas), sbc["posterior_draws"], sbc["bins"])}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
    plot_rank_histograms(summary, args.figure, f"{cfg['campaign']}: SBC rank histograms, "
                         f"{summary['replicas']} replicas")
    ks = ", ".join(f"{k} {v['ks_pvalue']:.3g}" for k, v in summary["parameters"].items())
    print(f"wrote {args.json} and {args.figure}: {summary['replicas']} replicas; KS p: {ks}")
    return 0


def _stage_parser(sub, name: str, help_text: str, output: str, func):
    """A per-observation stage: --config, --obs and --out (default under results/)."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--obs", help="observation name (default: the first)")
    p.add_argument("--out", help=f"output (default results/{{campaign}}/{{obs}}/{output})")
    p.set_defaults(func=func)
    return p


def _stage_output(cfg: dict, args, output: str) -> tuple[str, Path]:
    """The observation a stage works on and its output path."""
    obs_name = args.obs or cfg["observations"][0]["name"]
    return obs_name, Path(args.out or f"results/{cfg['campaign']}/{obs_name}/{output}")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="gammadm", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"gammadm {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    f = sub.add_parser("fetch-data", help="download (once), verify and cache the published data")
    f.add_argument("--config", help="campaign config: fetch the IRF groups it needs")
    f.add_argument("--data-dir", help="data directory (default: config, $GAMMADM_DATA, "
                   "resources/data)")
    f.add_argument("--irf-group", action="append", help="extra prod5 group, e.g. North-40deg")
    f.add_argument("--wheel", help="an already downloaded GammaBayes 0.1.9 wheel")
    f.set_defaults(func=cmd_fetch_data)

    v = sub.add_parser("validate", help="validate a campaign config against the schema")
    v.add_argument("config", nargs="?", default=DEFAULT_CONFIG)
    v.add_argument("--show", action="store_true", help="print the config with defaults")
    v.set_defaults(func=cmd_validate)

    i = sub.add_parser("irf", help="summarise an observation's IRF and derived true grid")
    i.add_argument("--config", default=DEFAULT_CONFIG)
    i.add_argument("--obs", help="observation name (default: the first)")
    i.set_defaults(func=cmd_irf)

    t = _stage_parser(sub, "tabulate", "exposure, templates and spectra -> tables.zarr",
                      "tables.zarr", cmd_tabulate)
    t.add_argument("--figures", help="also draw the models' figures (as plot-models) into "
                   "this directory")
    n = _stage_parser(sub, "normalise", "IRF normalisation N and expected counts -> norm.zarr",
                      "norm.zarr", cmd_normalise)
    _chunk_arguments(n, "normalisation.chunks")
    events_help = "event list (default results/{campaign}/{obs}/events.fits)"
    g = _stage_parser(sub, "marginalise", "per-event marginals -> marginals.zarr",
                      "marginals.zarr", cmd_marginalise)
    g.add_argument("--events", help=events_help)
    _chunk_arguments(g, "marginalisation.chunks")
    bn = _stage_parser(sub, "bin", "binned mode: expected counts per recon bin and the "
                       "counts histogram -> binned.zarr", "binned.zarr", cmd_bin)
    bn.add_argument("--events", help=events_help)
    _chunk_arguments(bn, "normalisation.chunks")
    _stage_parser(sub, "simulate", "simulate an observation's events (GADF DL3)",
                  "events.fits", cmd_simulate)
    _stage_parser(sub, "events", "an observation's events: simulated or ingested from DL3",
                  "events.fits", cmd_events)
    smp = _stage_parser(sub, "sample", "nested sampling -> summary.json, samples.npz, corner.png",
                        "posterior", cmd_sample)
    for action in smp._actions:
        if action.dest == "out":
            action.help = "output directory (default results/{campaign}/posterior[/{obs}])"
        if action.dest == "obs":
            action.help = "sample this observation alone (default: all of them jointly)"
    smp.add_argument("--background-only", action="store_true",
                     help="sample the background-only model; writes DIR/evidence.json")
    smp.add_argument("--bkg-evidence", help="evidence.json of the background-only run "
                     "(for the Bayes factor)")
    smp.add_argument("--summary-name", default="summary.json",
                     help="file name of the signal run's summary in DIR")
    smp.add_argument("--results", default="results",
                     help="results root holding {campaign}/{obs}/{norm,marginals}.zarr")
    bf = sub.add_parser("bayes-factor", help="a signal run's summary with the background-"
                        "only evidence and the Bayes factor filled in -> summary.json")
    bf.add_argument("--signal", required=True, help="summary of the signal run")
    bf.add_argument("--bkg-only", required=True,
                    help="evidence.json of the background-only run")
    bf.add_argument("--out", required=True, help="the joined summary.json")
    bf.set_defaults(func=cmd_bayes_factor)
    _stage_parser(sub, "plot-models", "figures of spectra, J, backgrounds (PNG)", "figures",
                  cmd_plot_models)
    rp = sub.add_parser("report", help="corner plot, model figures, count maps and spectra "
                        "with the fitted model, MC truth, summary.txt -> report/")
    rp.add_argument("--config", default=DEFAULT_CONFIG)
    rp.add_argument("--results", default="results",
                    help="results root holding {campaign}/posterior and {campaign}/{obs}/")
    rp.add_argument("--out", help="output directory (default {results}/{campaign}/report)")
    rp.set_defaults(func=cmd_report)
    sr = sub.add_parser("sbc-replica", help="one replica of a calibration sweep (the "
                        "config's sbc section) -> its truths and ranks (JSON)")
    sr.add_argument("--config", default=DEFAULT_CONFIG)
    sr.add_argument("--replica", type=int, required=True, help="replica index (seeds it)")
    sr.add_argument("--norm", help="the observation's norm.zarr (default under --results)")
    sr.add_argument("--results", default="results", help="results root")
    sr.add_argument("--out", help="output JSON (default {results}/{campaign}/sbc/replicas/"
                    "{replica}.json)")
    sr.set_defaults(func=cmd_sbc_replica)
    sk = sub.add_parser("sbc-ranks", help="rank histograms and KS p-values of a "
                        "calibration sweep -> JSON and PNG")
    sk.add_argument("--config", default=DEFAULT_CONFIG)
    sk.add_argument("--json", required=True, help="output JSON")
    sk.add_argument("--figure", required=True, help="output PNG of the rank histograms")
    sk.add_argument("replicas", nargs="+", help="replica records of gammadm sbc-replica")
    sk.set_defaults(func=cmd_sbc_ranks)
    w = sub.add_parser("warm-numba", help="compile the numba kernels into their cache once")
    w.add_argument("--config", default=DEFAULT_CONFIG)
    w.add_argument("--sentinel", help="file to touch when done")
    w.set_defaults(func=cmd_warm_numba)

    ip = sub.add_parser("install-profile",
                        help="install a workflow profile (e.g. slurm) as a global Snakemake profile")
    ip.add_argument("name", help="profile name, a folder of profiles/ (e.g. slurm)")
    ip.add_argument("--workflow-dir", help="the gammadm workflow checkout (default: here)")
    ip.add_argument("--dest", help="Snakemake's config folder (default: the user's)")
    ip.add_argument("--force", action="store_true", help="replace an installed profile")
    ip.set_defaults(func=cmd_install_profile)
    return p


def main(argv: list[str] | None = None) -> int:
    from .errors import InputError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except InputError as exc:  # config, data, IRF, spectrum, event-file and store errors
        print(f"gammadm {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
