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


rule fetch_data:
    input:
        cfg=CAMPAIGN_CONFIG,
    output:
        touch(DATA_OK),
    log:
        f"{R}/logs/fetch_data.log",
    conda:
        ENV
    shell:
        gammadm_command("fetch-data --config {input.cfg}")


rule warm_numba:
    # once per user and package version (the output lives in the cache, not in results/);
    # ancient inputs: a new campaign does not warm again
    input:
        cfg=ancient(CAMPAIGN_CONFIG),
        data=ancient(DATA_OK),
    output:
        NUMBA_WARM,
    log:
        f"{R}/logs/warm_numba.log",
    threads: 2
    conda:
        ENV
    shell:
        gammadm_command(
            "warm-numba --config {input.cfg} --sentinel {output}",
            numba_threads="{threads}",
        )
