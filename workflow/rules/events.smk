# One observation's event list (GADF DL3): simulated from the campaign's model.
# Observations with events.source = dl3 use their own file instead (see events_file).


rule events:
    input:
        cfg=CAMPAIGN_CONFIG,
        data=DATA_OK,
        warm=ancient(NUMBA_WARM),
    output:
        f"{R}/{{obs}}/events.fits",
    log:
        f"{R}/logs/events/{{obs}}.log",
    threads: 1
    conda:
        ENV
    shell:
        gammadm_command(
            "simulate --config {input.cfg} --obs {wildcards.obs} --out {output}",
            numba_threads="{threads}",
        )
