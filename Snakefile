# gammadm campaign: `snakemake -c2` runs config/config.yaml (campaign "seed") end to end;
# `snakemake --workflow-profile profiles/slurm` runs the same DAG on SLURM.
# Stages, stores and contracts: DESIGN.md; resources live in profiles/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/tabulate.smk"
include: "workflow/rules/normalise.smk"
include: "workflow/rules/events.smk"
include: "workflow/rules/marginalise.smk"
include: "workflow/rules/bin.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/report.smk"


if SBC:

    include: "workflow/rules/sbc.smk"


localrules:
    all,
    campaign_config,
    stage_config,
    fetch_data,
    warm_numba,
    normalise_create,
    marginalise_create,
    bayes_factor,
    bayes_factor_obs,


rule all:
    input:
        final_outputs(),
        # the chunk sentinels as well: Snakemake does not re-create a missing file whose
        # consumers are up to date, and a deleted sentinel must re-run its chunk job
        target_products(),
    default_target: True
