# Stage 0: the config snapshot each stage's jobs read, results/config/<stage>.yaml: made by
# this rule where it is missing; a run rewrites an existing one while Snakemake plans its jobs
# (common.smk: config_file), so that a changed key reruns exactly its stage.


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
