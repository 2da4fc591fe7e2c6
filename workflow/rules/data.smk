# The campaign's resolved config, the published data, and the numba cache.


rule campaign_config:
    output:
        CAMPAIGN_CONFIG,
    params:
        # a change of any field (also by --config) reruns the campaign's stages
        digest=hashlib.sha256(RESOLVED.encode()).hexdigest()[:16],
    log:
        f"{R}/logs/campaign_config.log",
    run:
        write_campaign_config(output[0], log[0], params.digest)


rule stage_config:
    # rewritten when the part of the campaign its stage reads changes
    output:
        f"{R}/.config/{{stage}}.yaml",
    params:
        digest=lambda w: stage_digest(w.stage),
    log:
        f"{R}/logs/stage_config/{{stage}}.log",
    run:
        write_campaign_config(output[0], log[0], params.digest)


rule fetch_data:
    input:
        cfg=stage_config("fetch_data"),
    output:
        touch(DATA_OK),
    log:
        f"{R}/logs/fetch_data.log",
    conda:
        ENV
    shell:
        gammadm_command("fetch-data --config {input.cfg}")


rule warm_numba:
    # compiles only when the cache (per user and package version) is not warm yet, so a
    # new campaign costs no second warm-up; ancient inputs: a changed campaign does not
    # warm again; the params re-run it for a new package version (a new cache)
    input:
        cfg=ancient(CAMPAIGN_CONFIG),
        data=ancient(DATA_OK),
    output:
        touch(NUMBA_WARM),
    params:
        cache=CACHE_WARM,
    priority: 10
    log:
        f"{R}/logs/warm_numba.log",
    threads: 2
    conda:
        ENV
    shell:
        "if [ -e {params.cache:q} ]; then echo numba cache already warm: {params.cache:q}"
        " > {log}; else "
        +gammadm_command(
            "warm-numba --config {input.cfg} --sentinel {params.cache:q}",
            numba_threads="{threads}",
        )
        +"; fi"
