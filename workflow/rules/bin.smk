# Binned mode (likelihood.binned: true): expected counts per recon bin and the counts
# histogram of the event list, in one job (binned.zarr is small: ~20 MB for the seed).


rule bin:
    input:
        cfg=stage_config("bin"),
        events=events_file,
        warm=ancient(NUMBA_WARM),
    output:
        f"{DONE}/binned",
    log:
        f"{R}/logs/bin/{{obs}}.log",
    threads: 2
    conda:
        ENV
    shell:
        store_command("bin", "binned", "--events {input.events}")
