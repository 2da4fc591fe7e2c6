# Figures and a text table of the finished campaign (corner plot, models, count maps and
# spectra with the fitted model, MC truth), registered for `snakemake --report`.


rule report:
    input:
        cfg=CAMPAIGN_CONFIG,
        posterior=posterior_outputs(),
        stores=all_products,
        tables=tables,
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
