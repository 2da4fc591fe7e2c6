# Per-event marginals: marginals.zarr is created by one local job after reading the
# event list (event-axis chunk length ceil(n / chunks)), then chunk job i fills chunk i.
# With one chunk, that job creates the store itself.


rule marginalise_create:
    input:
        cfg=stage_config("marginalise"),
        events=events_file,
        warm=ancient(NUMBA_WARM),
    output:
        f"{DONE}/marginals.created",
    log:
        f"{R}/logs/marginalise/{{obs}}.create.log",
    threads: 1
    conda:
        ENV
    shell:
        store_command("marginalise", "marginals", "--events {input.events} --create")


rule marginalise_chunk:
    input:
        cfg=stage_config("marginalise"),
        created=[] if N_MARG == 1 else f"{DONE}/marginals.created",
        events=events_file,
        warm=ancient(NUMBA_WARM),
    output:
        f"{DONE}/marginals.{{i}}",
    priority: 4
    log:
        f"{R}/logs/marginalise/{{obs}}.{{i}}.log",
    threads: KERNEL_THREADS
    conda:
        ENV
    shell:
        store_command(
            "marginalise",
            "marginals",
            ("--events {input.events} --create " if N_MARG == 1 else "")
            + f"--chunk {{wildcards.i}}/{N_MARG}",
        )
