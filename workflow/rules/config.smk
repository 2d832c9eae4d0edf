# Stage 0: the config snapshot each stage's jobs read, results/config/<stage>.yaml. A run
# writes it while Snakemake builds the DAG (common.smk: config_file); this rule names its
# maker for a dry run, which writes nothing.


localrules:
    stage_config,


rule stage_config:
    output:
        f"{RESULTS}/config/{{stage}}.yaml",
    log:
        f"{LOGS}/config-{{stage}}.log",
    wildcard_constraints:
        stage="|".join(CONFIG_SECTIONS),
    run:
        write_stage_config(wildcards.stage, output[0], log[0])
