"""Benchmark of the whole campaign: `snakemake -c2` on the seed campaign, warm, end to end.

Warm means: data fetched (resources/data verified), numba cache warmed (its sentinel
for these sources present) and the package's bytecode compiled, i.e. after one earlier
run. The workflow (Snakefile, workflow/, config/, profiles/, envs/) is copied into a
temporary directory with an empty results/, src/ and resources/data linked to this
checkout's; Snakemake runs there exactly as a user starts it (plain `snakemake -c2`,
profiles/default auto-loaded), with this checkout's src/ on PYTHONPATH. Prints the total
wall time and each job's time (from Snakemake's log timestamps, 1 s resolution) beside
GammaBayes 0.1.9's 580 s for the same scenario (PLATFORM.md), beside GammaBayes
re-measured on this kind of machine, and the goal of 29 s (PLATFORM.md).

Usage (from the project root)::

    python benchmarks/bench_campaign.py [--configfile config/config.yaml] [--keep DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GAMMABAYES_S = 580.0  # PLATFORM.md's anchor (one run)
# GammaBayes 0.1.9 re-measured on a machine of this kind on 2026-11-27 (the seed tutorial
# in its own venv, display calls dropped, two runs: the tutorial sets no seed, and its
# nested sampling took 120 s and 63 s on the two data sets); --gammabayes-seconds
# passes a figure of your own machine
GAMMABAYES_REMEASURED_S = (303.0, 246.0)
GOAL_S = 29.0
WORKFLOW = ("Snakefile", "workflow", "config", "profiles", "envs")


def _stamp(line: str) -> datetime | None:
    m = re.match(r"\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", line.strip())
    return datetime.strptime(m.group(1), "%a %b %d %H:%M:%S %Y") if m else None


def job_times(log: str) -> list[tuple[str, str, float]]:
    """(rule, wildcards, seconds) of each job finished in a Snakemake log: from the
    timestamp above its `rule`/`localrule` block to the one above `Finished jobid`."""
    started: dict[str, dict] = {}
    done = []
    now = job = None
    for line in log.splitlines():
        if (t := _stamp(line)) is not None:
            now = t
        elif m := re.match(r"(?:local)?rule (\w+):$", line):
            job = {"rule": m.group(1), "wildcards": "", "start": now}
        elif job and (m := re.match(r"\s+jobid: (\d+)$", line)):
            started[m.group(1)] = job
        elif job and (m := re.match(r"\s+wildcards: (.*)$", line)):
            job["wildcards"] = m.group(1)
        elif m := re.match(r"Finished jobid: (\d+)", line):
            job = started.pop(m.group(1))
            done.append((job["rule"], job["wildcards"], (now - job["start"]).total_seconds()))
            job = None
    return done


def slurm_probe_seconds() -> float | None:
    """Time of `scontrol show config` (capped at the plugin's 10 s), None without it."""
    if shutil.which("scontrol") is None:
        return None
    t0 = time.monotonic()
    try:
        subprocess.run(["scontrol", "show", "config"], capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        pass
    return time.monotonic() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", help="another campaign than config/config.yaml")
    p.add_argument("--keep", type=Path, help="run in this (new) directory and keep it")
    p.add_argument("--gammabayes-seconds", type=float, nargs="+",
                   default=list(GAMMABAYES_REMEASURED_S),
                   help="GammaBayes 0.1.9's wall time(s) for the seed tutorial on this "
                   "machine (default: the 2026-11-27 re-measurement)")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the campaign this many times (fresh copies); print the median")
    args = p.parse_args()

    sys.path.insert(0, str(ROOT / "src"))
    from gammadm.data import data_dir
    from gammadm.kernels import warm_sentinel

    data = data_dir()
    data = (data if data.is_absolute() else ROOT / data).resolve()
    warm = warm_sentinel()
    if not warm.exists():
        print(f"WARNING: {warm} is missing: the numba cache is cold, so this is not a "
              "warm figure (run once more)")

    if args.keep:
        args.keep.mkdir(parents=True)  # a new directory: results/ must start empty
    cmd = [str(Path(sys.executable).parent / "snakemake"), "-c2"]
    if args.configfile:
        cmd += ["--configfile", str(Path(args.configfile).resolve())]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("GAMMADM_DATA", None)  # the copy's resources/data, as on a user's checkout

    probe = slurm_probe_seconds()
    walls = []
    for i in range(args.repeat):  # each run in a fresh copy with an empty results/
        work = (args.keep / f"run{i}" if args.repeat > 1 else args.keep) if args.keep else \
            Path(tempfile.mkdtemp(prefix="bench-campaign-"))
        work.mkdir(parents=True, exist_ok=True)
        for name in WORKFLOW:
            src = ROOT / name
            (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
        (work / "src").symlink_to(ROOT / "src")  # the workflow's schema refers into it
        (work / "resources").mkdir()
        (work / "resources" / "data").symlink_to(data)
        t0 = time.monotonic()
        run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        walls.append(time.monotonic() - t0)
        log = run.stdout + run.stderr
        if run.returncode:
            sys.exit(f"snakemake failed (exit {run.returncode}) in {work}:\n{log[-4000:]}")
        if args.keep is None:
            shutil.rmtree(work)
    wall = float(np.median(walls))

    per_rule: dict[str, list[float]] = defaultdict(list)
    print(f"jobs of the last run (wall seconds, from Snakemake's log{' in ' + str(work) if args.keep else ''}):")
    for rule, wc, dt in job_times(log):
        per_rule[rule].append(dt)
        print(f"  {rule:20s} {wc:18s} {dt:5.0f} s")
    print("per rule (jobs, summed seconds; jobs may overlap on 2 cores):")
    for rule, times in sorted(per_rule.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {rule:20s} {len(times):3d} {sum(times):6.0f} s")
    if probe is not None:
        why = ("slurm.conf present but no controller answering: the call times out"
               if probe > 1.0 else "answered at once")
        print(f"of which Snakemake's start-up probe of SLURM (`scontrol show config`, run by "
              f"the slurm executor plugin on import): {probe:.1f} s on this machine ({why}; "
              "none without SLURM's client installed)")
    if len(walls) > 1:
        print(f"runs: {', '.join(f'{w:.1f}' for w in walls)} s; the median below")
    print(f"snakemake -c2, seed campaign, warm, end to end: {wall:.1f} s "
          f"(GammaBayes 0.1.9: {GAMMABAYES_S:.0f} s, {GAMMABAYES_S / wall:.1f}x; "
          f"goal <= {GOAL_S:.0f} s)")
    gb = args.gammabayes_seconds
    print(f"  against GammaBayes 0.1.9 re-measured on this kind of machine "
          f"({', '.join(f'{t:.0f}' for t in gb)} s): "
          f"{', '.join(f'{t / wall:.1f}x' for t in gb)} (the goal's 20x would be "
          f"<= {min(gb) / 20:.0f} s)")


if __name__ == "__main__":
    main()
