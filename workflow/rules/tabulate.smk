# Exposure, templates, spectra and J of one observation on its true grid.


rule tabulate:
    input:
        cfg=stage_config("tabulate"),
        data=DATA_OK,
    output:
        directory(f"{R}/{{obs}}/tables.zarr"),
    priority: 2
    log:
        f"{R}/logs/tabulate/{{obs}}.log",
    conda:
        ENV
    shell:
        gammadm_command(
            "tabulate --config {input.cfg} --obs {wildcards.obs} --out {output}"
        )
