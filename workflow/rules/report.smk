# Figures and a text table of the finished campaign (corner plot, models, count maps and
# spectra with the fitted model, MC truth), registered for `snakemake --report`.


rule plot_models:
    # figures of the source models, drawn early (they need no posterior) so that they
    # do not wait for, or delay, the sampling
    input:
        cfg=stage_config("tabulate"),
        data=DATA_OK,
    output:
        [f"{R}/{{obs}}/figures/{name}" for name in MODEL_FIGURES],
    params:
        out=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{R}/logs/plot_models/{{obs}}.log",
    conda:
        ENV
    shell:
        gammadm_command(
            "plot-models --config {input.cfg} --obs {wildcards.obs} --out {params.out}"
        )


rule report:
    input:
        cfg=CAMPAIGN_CONFIG,
        posterior=posterior_outputs(),
        stores=all_products,
        events=expand(f"{R}/{{obs}}/events.fits", obs=OBS),
        # nu per recon bin of every component, and the model figures
        binned=expand(f"{DONE}/binned", obs=OBS),
        figures=expand(f"{R}/{{obs}}/figures/{{name}}", obs=OBS, name=MODEL_FIGURES),
        warm=ancient(NUMBA_WARM),
    output:
        report_outputs(wrap=True),
    params:
        # results/{campaign}/config.yaml -> results; report/summary.txt -> report
        results=lambda w, input: os.path.dirname(os.path.dirname(input.cfg)),
        out=lambda w, output: os.path.dirname(output[0]),
    log:
        f"{R}/logs/report.log",
    threads: 1
    conda:
        ENV
    shell:
        gammadm_command(
            "report --config {input.cfg} --results {params.results} --out {params.out}",
            numba_threads="{threads}",
        )
