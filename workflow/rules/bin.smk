# Expected counts per recon bin and the counts histogram of the event list, in one job
# (binned.zarr is small: ~20 MB for the seed): the likelihood's data in binned mode
# (likelihood.binned), the report's model maps and spectra in every campaign.


rule bin:
    input:
        cfg=stage_config("bin"),
        events=events_file,
        warm=ancient(NUMBA_WARM),
    output:
        f"{DONE}/binned",
    log:
        f"{R}/logs/bin/{{obs}}.log",
    # one thread when it only serves the report, so that it runs beside the (serial)
    # sampling on a 2-core laptop
    threads: 2 if config["likelihood"]["binned"] is True else 1
    conda:
        ENV
    shell:
        store_command("bin", "binned", "--events {input.events}")
