# One observation's event list (GADF DL3): simulated from the campaign's model, or, with
# events.source = dl3, the events of its DL3 file inside the ROI and the GTIs.


rule events:
    input:
        cfg=stage_config("events"),
        data=DATA_OK,
        warm=ancient(NUMBA_WARM),
        dl3=dl3_input,
    output:
        f"{R}/{{obs}}/events.fits",
    priority: 4
    log:
        f"{R}/logs/events/{{obs}}.log",
    threads: 1
    conda:
        ENV
    shell:
        gammadm_command(
            "events --config {input.cfg} --obs {wildcards.obs} --out {output}",
            numba_threads="{threads}",
        )
