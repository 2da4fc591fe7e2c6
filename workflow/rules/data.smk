# The campaign's resolved config, the published data, and the numba cache.


rule campaign_config:
    output:
        CAMPAIGN_CONFIG,
    params:
        # a change of any field (also by --config) reruns the campaign's stages
        resolved=yaml.safe_dump(dict(config), sort_keys=True),
    log:
        f"{R}/logs/campaign_config.log",
    run:
        Path(output[0]).write_text(params.resolved)
        shell(gammadm_command("validate {output}"))


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
