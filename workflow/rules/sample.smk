# Nested sampling (dynesty) of all observations jointly, of each observation alone
# (multi-observation campaigns), and of the background-only model for the Bayes factor.
# The signal and background-only runs are independent jobs (side by side on 2 cores); a
# local job joins their evidences into summary.json.
# With sampler.tasks > 1 the job runs under MPI: resources tasks and mpi (the launcher),
# threads = tasks so that a local run reserves a core per rank.


BAYES_FACTOR = gammadm_command(
    "bayes-factor --signal {input.signal} --bkg-only {input.bkg} --out {output}"
)


rule sample_bkg_only:
    input:
        cfg=CAMPAIGN_CONFIG,
        stores=all_products,
        warm=ancient(NUMBA_WARM),
    output:
        f"{posterior_dir('joint')}/bkg_only/evidence.json",
    params:
        out=lambda w, output: os.path.dirname(output[0]),
    priority: 5
    log:
        f"{R}/logs/sample/bkg_only.log",
    threads: TASKS
    resources:
        tasks=TASKS,
        mpi=MPIEXEC,
    conda:
        ENV
    shell:
        sample_command("--background-only")


rule sample:
    input:
        cfg=CAMPAIGN_CONFIG,
        stores=all_products,
        warm=ancient(NUMBA_WARM),
    output:
        f"{posterior_dir('joint')}/signal.json",
        f"{posterior_dir('joint')}/samples.npz",
        f"{posterior_dir('joint')}/corner.png",
    params:
        out=lambda w, output: os.path.dirname(output[0]),
    priority: 6
    log:
        f"{R}/logs/sample/joint.log",
    threads: TASKS
    resources:
        tasks=TASKS,
        mpi=MPIEXEC,
    conda:
        ENV
    shell:
        sample_command("--summary-name signal.json")


rule sample_bkg_only_obs:
    input:
        cfg=CAMPAIGN_CONFIG,
        stores=lambda w: observation_products(w.obs),
        warm=ancient(NUMBA_WARM),
    output:
        f"{R}/{{obs}}/posterior/bkg_only/evidence.json",
    params:
        out=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{R}/logs/sample/{{obs}}.bkg_only.log",
    threads: TASKS
    resources:
        tasks=TASKS,
        mpi=MPIEXEC,
    conda:
        ENV
    shell:
        sample_command("--obs {wildcards.obs} --background-only")


rule sample_obs:
    input:
        cfg=CAMPAIGN_CONFIG,
        stores=lambda w: observation_products(w.obs),
        warm=ancient(NUMBA_WARM),
    output:
        f"{R}/{{obs}}/posterior/signal.json",
        f"{R}/{{obs}}/posterior/samples.npz",
        f"{R}/{{obs}}/posterior/corner.png",
    params:
        out=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{R}/logs/sample/{{obs}}.log",
    threads: TASKS
    resources:
        tasks=TASKS,
        mpi=MPIEXEC,
    conda:
        ENV
    shell:
        sample_command("--obs {wildcards.obs} --summary-name signal.json")


rule bayes_factor:
    input:
        signal=rules.sample.output[0],
        bkg=rules.sample_bkg_only.output[0],
    output:
        f"{posterior_dir('joint')}/summary.json",
    log:
        f"{R}/logs/sample/bayes_factor.log",
    conda:
        ENV
    shell:
        BAYES_FACTOR


rule bayes_factor_obs:
    input:
        signal=rules.sample_obs.output[0],
        bkg=rules.sample_bkg_only_obs.output[0],
    output:
        f"{R}/{{obs}}/posterior/summary.json",
    log:
        f"{R}/logs/sample/{{obs}}.bayes_factor.log",
    conda:
        ENV
    shell:
        BAYES_FACTOR
