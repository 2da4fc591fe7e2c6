# Simulation-based calibration (campaigns with an `sbc` section, e.g. config/sbc.yaml):
# one job per replica (draw from the priors, simulate, marginalise, sample, rank; all
# replicas share the observation's norm.zarr), then the rank histograms and KS tests of
# all replicas, registered for `snakemake --report`.


wildcard_constraints:
    replica=r"\d+",


rule sbc_replica:
    input:
        cfg=CAMPAIGN_CONFIG,
        norm=norm_products(OBS[0]),  # fractions mode: one observation
        warm=ancient(NUMBA_WARM),
    output:
        f"{SBC_DIR}/replicas/{{replica}}.json",
    params:
        norm=f"{R}/{OBS[0]}/norm.zarr",
    log:
        f"{R}/logs/sbc/{{replica}}.log",
    threads: 1
    conda:
        ENV
    shell:
        gammadm_command(
            "sbc-replica --config {input.cfg} --replica {wildcards.replica}"
            " --norm {params.norm} --out {output}",
            numba_threads="{threads}",
        )


rule sbc_ranks:
    input:
        cfg=CAMPAIGN_CONFIG,
        replicas=expand(
            rules.sbc_replica.output[0], replica=range(config["sbc"]["replicas"])
        ),
    output:
        ranks=SBC_RANKS,
        figure=report(SBC_FIGURE, category="SBC", subcategory="rank histograms"),
    log:
        f"{R}/logs/sbc/ranks.log",
    conda:
        ENV
    shell:
        gammadm_command(
            "sbc-ranks --config {input.cfg} --json {output.ranks}"
            " --figure {output.figure} {input.replicas}"
        )
