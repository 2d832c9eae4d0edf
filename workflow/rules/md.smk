# Stage 4: CG MD in LAMMPS, md.replicas replicas of every model (kdcg.md.replicas). Targets:
#   <results_dir>/md/{model}/replica-{r}/result.json   status, step, reason, ns/day, ms/step
#   <results_dir>/md/{model}/replica-{r}/trajectory.lammpstrj, thermo.csv
# Rule md_replicas runs the replicas of one job ({replicas}: "3", or "1-4" with
# md.replicas_per_job 4) in their run/ folders and writes the job's record; rule md_replica,
# local, links a finished replica's files into its folder. The names hold at every scale.


rule md_replicas:
    input:
        model=f"{MODELS}/{{model}}/model.pt",
        dataset=f"{CG}/dataset.npz",
        config=config_file("md"),
    output:
        f"{MD}/{{model}}/jobs/md-{{replicas}}.json",
    log:
        f"{LOGS}/md-{{model}}-replicas-{{replicas}}.log",
    benchmark:
        f"{BENCH}/md-{{model}}-replicas-{{replicas}}.tsv"
    wildcard_constraints:
        model=MODEL_REGEX,
        replicas=REPLICA_SPAN_REGEX,
    conda:
        ENV_LAMMPS
    threads: 1
    resources:
        runtime=24 * 60,
        mem_mb=md_job_mem_mb,
    params:
        config_keys=config_keys("md"),
        replicas=lambda wildcards: " ".join(map(str, span_replicas(wildcards.replicas))),
    shell:
        kdcg_shell(
            "md --model {input.model} --dataset {input.dataset} --config {input.config}"
            f" --replicas {{params.replicas}} --out-dir {MD}/{{wildcards.model}} --record {{output}}"
            " --threads {threads}"
        )


rule md_replica:
    """A replica's files, linked from its run/ folder once its job has ended."""
    input:
        replica_job_record("md"),
    output:
        **{
            key: f"{MD}/{{model}}/replica-{{replica}}/{name}"
            for key, name in REPLICA_FILES.items()
        },
    log:
        f"{LOGS}/md_replica-{{model}}-{{replica}}.log",
    wildcard_constraints:
        model=MODEL_REGEX,
        replica=SEED_REGEX,
    localrule: True
    conda:
        ENV_ANALYSIS  # ln, cp and touch: any environment has them
    params:
        job_rule="md_replicas",
        work=f"{MD}/{{model}}/replica-{{replica}}/run",
    shell:
        PUBLISH_SHELL
