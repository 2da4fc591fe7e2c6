# Exposure, templates, spectra and J of one observation on its true grid, and their figures.


rule tabulate:
    # the models' figures come from the same job (they need no posterior, and building
    # the models once saves a process and its start-up)
    input:
        cfg=stage_config("tabulate"),
        data=DATA_OK,
    output:
        tables=directory(f"{R}/{{obs}}/tables.zarr"),
        figures=[f"{R}/{{obs}}/figures/{name}" for name in MODEL_FIGURES],
    params:
        figures=lambda w, output: os.path.dirname(output.figures[0]),
    priority: 2
    log:
        f"{R}/logs/tabulate/{{obs}}.log",
    conda:
        ENV
    shell:
        gammadm_command(
            "tabulate --config {input.cfg} --obs {wildcards.obs} --out {output.tables}"
            " --figures {params.figures}"
        )
