# IRF normalisation N and expected-count terms: norm.zarr is created by one local job,
# then chunk job i fills chunk i (normalisation.chunks jobs). With one chunk, that job
# creates the store itself (a process less on the seed's critical path).


rule normalise_create:
    input:
        cfg=stage_config("normalise"),
        data=DATA_OK,
        warm=ancient(NUMBA_WARM),
    output:
        f"{DONE}/norm.created",
    log:
        f"{R}/logs/normalise/{{obs}}.create.log",
    threads: 1
    conda:
        ENV
    shell:
        store_command("normalise", "norm", "--create")


rule normalise_chunk:
    input:
        cfg=stage_config("normalise"),
        created=[] if N_NORM == 1 else f"{DONE}/norm.created",
        data=DATA_OK,
        warm=ancient(NUMBA_WARM),
    output:
        f"{DONE}/norm.{{i}}",
    priority: 3
    log:
        f"{R}/logs/normalise/{{obs}}.{{i}}.log",
    threads: KERNEL_THREADS
    conda:
        ENV
    shell:
        store_command(
            "normalise",
            "norm",
            ("--create " if N_NORM == 1 else "") + f"--chunk {{wildcards.i}}/{N_NORM}",
        )
