"""Running this checkout's Snakemake workflow from tests: as users start it (the venv's
script, venv not activated), working in a temporary directory so nothing lands in the
repository, with this worktree's package first on the path of Snakemake and its jobs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"


def ci_config(tmp_path: Path, **changes) -> Path:
    """config/ci.yaml with some top-level sections updated, written to tmp_path."""
    cfg = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())
    for key, value in changes.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake_argv(workdir: Path, *args: str) -> list[str]:
    return [str(SNAKEMAKE), "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]


def snakemake_env(data_root: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of Snakemake and, inherited, of its jobs. data_root: the fetched
    data (a run in a temporary directory would otherwise look for resources/data there)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **extra}
    if data_root is not None:
        env["GAMMADM_DATA"] = str(data_root)
    return env


def run_snakemake(workdir: Path, *args: str, env: dict | None = None,
                  timeout: float = 300) -> subprocess.CompletedProcess:
    """Snakemake from the checkout, working in workdir; env: variables added to
    snakemake_env()."""
    return subprocess.run(snakemake_argv(workdir, *args), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**snakemake_env(), **(env or {})})


def dry_run_jobs(out: str) -> dict[str, list[dict]]:
    """Per rule, the jobs of a `--dry-run --printshellcmds` listing (or of a run's log):
    threads, resources (as a dict of strings), input files and the shell command."""
    jobs: dict[str, list[dict]] = {}
    job = None
    for line in out.splitlines():
        if m := re.match(r"\s*(?:local)?rule (\w+):$", line):
            job = {"threads": 1, "resources": {}, "input": [], "shell": None}
            jobs.setdefault(m.group(1), []).append(job)
        elif job is None:
            continue
        elif m := re.match(r"\s*input: (.*)$", line):
            job["input"] = m.group(1).split(", ")
        elif m := re.match(r"\s*threads: (\d+)$", line):
            job["threads"] = int(m.group(1))
        elif m := re.match(r"\s*resources: (.*)$", line):
            job["resources"] = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
        elif line.startswith("Shell command: "):
            job["shell"] = line[len("Shell command: "):]
    return jobs
