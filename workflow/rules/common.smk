# Helpers shared by the stage rules: the validated campaign, its paths, and how a rule
# calls gammadm (through the interpreter running Snakemake, so an unactivated
# `.venv/bin/snakemake` works).
import hashlib
import os
import re
import shlex
import sys
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

try:
    from gammadm.config import ConfigError, validate_config
except ImportError:  # a checkout whose package is not installed in this interpreter
    sys.path.insert(0, str(Path(workflow.basedir) / "src"))
    from gammadm.config import ConfigError, validate_config
from gammadm.kernels import numba_cache_dir, warm_sentinel
from gammadm.models.plots import MODEL_FIGURES
from gammadm.report import report_files


# The package's checks first: one line naming the field, plus the cross-field rules a
# JSON schema cannot express (mixture sums, ranges); defaults filled in. Then the same
# schema the Snakemake way (workflow/schemas refers to the package's file).
try:
    config.update(validate_config(config))
except ConfigError as exc:
    raise WorkflowError(f"invalid campaign config: {exc}") from None
validate(config, "../schemas/config.schema.yaml")

CAMPAIGN = config["campaign"]
R = f"results/{CAMPAIGN}"
OBS = [o["name"] for o in config["observations"]]
N_NORM = config["normalisation"]["chunks"]
N_MARG = config["marginalisation"]["chunks"]
TASKS = config["sampler"]["tasks"]
# a calibration sweep (workflow/rules/sbc.smk) instead of one posterior
SBC = "sbc" in config
# the resolved config (defaults and --config overrides included) that every job reads
CAMPAIGN_CONFIG = f"{R}/config.yaml"
RESOLVED = yaml.safe_dump(dict(config), sort_keys=True)
DATA_OK = f"{R}/.done/fetch_data"
DONE = f"{R}/{{obs}}/.done"  # sentinels of store creators and chunk jobs
NUMBA_CACHE = numba_cache_dir()
# The cache's mark that it is warm (written by `gammadm warm-numba`), shared by all
# campaigns of the user: not a rule output, as Snakemake deletes a job's outputs before
# it runs the job, under the feet of kernel jobs of other campaigns running meanwhile.
# Named by a digest of the package's sources, so that changed code (a pulled commit of
# the same version) is warmed once by rule warm_numba, not compiled inside chunk jobs.
CACHE_WARM = str(warm_sentinel())
# the campaign's record that the cache was warm before its kernel jobs
NUMBA_WARM = f"{R}/.done/warm_numba"
ENV = "../../envs/gammadm.yaml"


wildcard_constraints:
    obs="|".join(re.escape(o) for o in OBS),
    i=r"\d+",


def _python() -> str:
    """The interpreter for gammadm: inside a conda env its own `python` (the package
    from this checkout's src/), else the one running Snakemake."""
    methods = {str(m).lower() for m in workflow.deployment_settings.deployment_method}
    if any("conda" in m for m in methods):
        return f"PYTHONPATH={shlex.quote(str(Path(workflow.basedir) / 'src'))} python"
    return shlex.quote(sys.executable)


GAMMADM = f"{_python()} -m gammadm.cli"


def gammadm_command(
    args: str, numba_threads: str | None = None, launch: str = ""
) -> str:
    """A rule's shell command: one gammadm subcommand (after an MPI launcher, if any),
    output to the rule's log. Jobs running numba kernels (numba_threads given) use the
    shared cache, warmed once per user and version, with numba threads = the job's
    CPUs ("{threads}")."""
    env = ""
    if numba_threads is not None:
        cache = shlex.quote(str(NUMBA_CACHE))
        env = f"NUMBA_CACHE_DIR={cache} NUMBA_NUM_THREADS={numba_threads} "
    return f"{env}{launch}{GAMMADM} {args} > {{log}} 2>&1"


# Kernel jobs of a small campaign are start-up bound (imports and model set-up ~3 s,
# kernels < 1 s for the seed's 500 events): they run 1-threaded, so that on a 2-core
# laptop normalisation overlaps the event and marginalisation jobs instead of queueing
# behind them for two free cores. Larger (or not known in advance: Poisson, DL3) event
# lists per marginalisation chunk get 2 threads.
SMALL_CHUNK_EVENTS = 20000


def kernel_threads() -> int:
    sim = config["simulation"]
    known = sim["mode"] != "poisson" and all(
        o["events"]["source"] == "simulate" for o in config["observations"]
    )
    return 1 if known and sim["n_events"] / N_MARG < SMALL_CHUNK_EVENTS else 2


KERNEL_THREADS = kernel_threads()


# the venv's mpiexec (PyPI MPICH) also when the venv is not on PATH
_venv_mpiexec = Path(sys.executable).parent / "mpiexec"
MPIEXEC = str(_venv_mpiexec) if _venv_mpiexec.exists() else "mpiexec"


# What each stage reads of the campaign. A stage's jobs read the resolved config from
# its own copy, rewritten (rule stage_config, Snakemake's params trigger) only when the
# digest of that part changes, so that a new sampler setting or prior range re-runs the
# sampling only, not hours of marginalisation. (A params trigger on the stage rules
# themselves would not fire: Snakemake does not check the provenance of jobs downstream
# of a job that already must run.) Paths are dotted; the DM spectra follow the mass prior.
_NOT_UPSTREAM = ["sampler", "likelihood", "upper_limits", "sbc"] + [
    f"priors.{k}" for k in config["priors"] if k != "mass_TeV"
]
STAGE_IGNORES = {
    "fetch_data": [
        "roi",
        "true_grid",
        "dark_matter",
        "backgrounds",
        "simulation",
        "mixture",
        "marginalisation",
        "normalisation",
        "priors",
    ]
    + _NOT_UPSTREAM,
    "tabulate": ["simulation", "mixture", "normalisation", "marginalisation.chunks"]
    + _NOT_UPSTREAM,
    "normalise": ["simulation", "mixture", "marginalisation.chunks"] + _NOT_UPSTREAM,
    "events": ["normalisation", "marginalisation.chunks"] + _NOT_UPSTREAM,
    "marginalise": ["normalisation"] + _NOT_UPSTREAM,
    # bin reads likelihood.binned
    "bin": ["normalisation"] + [p for p in _NOT_UPSTREAM if p != "likelihood"],
}


def stage_digest(stage: str) -> str:
    """Digest of the resolved campaign without the fields `stage` cannot depend on."""
    part = yaml.safe_load(RESOLVED)
    for path in STAGE_IGNORES.get(stage, []):
        *head, last = path.split(".")
        node = part
        for key in head:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return hashlib.sha256(yaml.safe_dump(part, sort_keys=True).encode()).hexdigest()[
        :16
    ]


def stage_config(stage: str) -> str:
    """The resolved config as the stage's jobs read it (see STAGE_IGNORES)."""
    return f"{R}/.config/{stage}.yaml"


wildcard_constraints:
    stage="|".join(STAGE_IGNORES),


def write_campaign_config(path: str, log: str, digest: str) -> None:
    """The resolved campaign for the jobs; it must read back as the same campaign."""
    Path(path).write_text(RESOLVED)
    if validate_config(yaml.safe_load(Path(path).read_text())) != dict(config):
        raise WorkflowError(f"{path} does not read back as the campaign")
    Path(log).write_text(f"{path}: campaign {CAMPAIGN} ({digest})\n")


def obs_config(obs: str) -> dict:
    return next(o for o in config["observations"] if o["name"] == obs)


def events_file(wildcards) -> str:
    """The observation's event list, simulated or ingested (`gammadm events`)."""
    return f"{R}/{wildcards.obs}/events.fits"


def dl3_input(wildcards) -> list[str]:
    """The DL3 file an observation ingests (none when its events are simulated)."""
    ev = obs_config(wildcards.obs)["events"]
    return [ev["file"]] if ev["source"] == "dl3" else []


def norm_products(obs: str) -> list[str]:
    """The chunk sentinels of an observation's norm.zarr: the store, complete."""
    return [f"{DONE.format(obs=obs)}/norm.{i}" for i in range(N_NORM)]


def observation_products(obs: str) -> list[str]:
    """Everything `sample` reads of one observation: its stores, complete."""
    done = DONE.format(obs=obs)
    return (
        norm_products(obs)
        + [f"{done}/marginals.{i}" for i in range(N_MARG)]
        # binned.zarr when the likelihood is binned for sure (auto decides at run time
        # from the event count; `gammadm sample` then names the missing store)
        + ([f"{done}/binned"] if config["likelihood"]["binned"] is True else [])
    )


def all_products(wildcards=None) -> list[str]:
    return [p for obs in OBS for p in observation_products(obs)]


def tables(wildcards=None) -> list[str]:
    """Every observation's tables.zarr (the report's input; `sample` does not read it)."""
    return [f"{R}/{obs}/tables.zarr" for obs in OBS]


def target_products() -> list[str]:
    """The chunk sentinels the default target requires: all of them and the tables, or,
    for a calibration sweep, those of norm.zarr (the one store its replicas share)."""
    if SBC:
        return [p for obs in OBS for p in norm_products(obs)]
    return all_products() + tables()


def posterior_dir(target: str) -> str:
    """Joint posterior: results/{campaign}/posterior; per observation: .../{obs}/posterior."""
    return f"{R}/posterior" if target == "joint" else f"{R}/{target}/posterior"


def posterior_outputs() -> list[str]:
    targets = ["joint"] + (OBS if len(OBS) > 1 else [])
    return [
        f"{posterior_dir(t)}/{name}"
        for t in targets
        for name in ("summary.json", "samples.npz", "corner.png")
    ]


REPORT = f"{R}/report"


def report_outputs(wrap: bool = False) -> list:
    """The report's files (`gammadm.report.report_files`); wrapped in Snakemake's
    report() with their category for `snakemake --report`."""
    out = []
    for path, category, sub in report_files(config):
        p = f"{REPORT}/{path}"
        if wrap and category:
            p = report(p, category=category, subcategory=sub)
        out.append(p)
    return out


# a calibration sweep's rank statistics and rank histograms (workflow/rules/sbc.smk)
SBC_DIR = f"{R}/sbc"
SBC_RANKS = f"{SBC_DIR}/ranks.json"
SBC_FIGURE = f"{SBC_DIR}/rank_histograms.png"


def final_outputs() -> list[str]:
    if SBC:
        return [SBC_RANKS, SBC_FIGURE]
    return posterior_outputs() + report_outputs()


def store_command(stage: str, store: str, step: str) -> str:
    """The shell command of a store's creator (step "--create") or of one chunk job
    (step "--chunk {wildcards.i}/n"): it writes only its own part, then touches its
    sentinel."""
    out = f"{R}/{{wildcards.obs}}/{store}.zarr"
    return gammadm_command(
        f"{stage} --config {{input.cfg}} --obs {{wildcards.obs}} --out {out}"
        f" {step} --sentinel {{output}}",
        numba_threads="{threads}",
    )


def sample_command(extra: str) -> str:
    """`gammadm sample`: serial with sampler.tasks = 1, else under the MPI launcher of
    the rule's resources (mpiexec locally; profiles/slurm sets srun --mpi=pmi2).
    numba gets 1 thread per rank."""
    return gammadm_command(
        f"sample --config {{input.cfg}} {extra} --out {{params.out}}",
        numba_threads="1",
        launch="{resources.mpi} -n {resources.tasks} " if TASKS > 1 else "",
    )
