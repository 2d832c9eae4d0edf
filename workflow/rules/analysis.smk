# Stage 5: structural validation (kdcg.analysis.distributions) and the study's tables, figures and report
# (kdcg.report.tables). Targets:
#   <results_dir>/analysis/aa_reference.json           every distribution of the mapped AA frames
#   <results_dir>/md/{model}/replica-{r}/analysis.json equilibration, distributions, TAE vs AA
# (rule analyze_replicas analyses the replicas of one MD job together and records them;
# rule analyze_replica, local, writes each one's file from that record)
#   <results_dir>/tables/*.csv, results/figures/*.png  (also in `snakemake --report`)


rule aa_reference:
    input:
        dataset=f"{CG}/dataset.npz",
        config=config_file("analysis"),
    output:
        f"{ANALYSIS}/aa_reference.json",
    log:
        f"{LOGS}/aa_reference.log",
    benchmark:
        f"{BENCH}/aa_reference.tsv"
    conda:
        ENV_ANALYSIS
    params:
        config_keys=config_keys("analysis"),
    shell:
        kdcg_shell(
            "analyze --config {input.config} --dataset {input.dataset} --out {output}"
        )


rule analyze_replicas:
    input:
        unpack(analysis_job_inputs),
        reference=f"{ANALYSIS}/aa_reference.json",
        config=config_file("analysis"),
    output:
        f"{MD}/{{model}}/jobs/analysis-{{replicas}}.json",
    log:
        f"{LOGS}/analyze-{{model}}-replicas-{{replicas}}.log",
    benchmark:
        f"{BENCH}/analyze-{{model}}-replicas-{{replicas}}.tsv"
    wildcard_constraints:
        model=MODEL_REGEX,
        replicas=REPLICA_SPAN_REGEX,
    conda:
        ENV_ANALYSIS
    params:
        config_keys=config_keys("analysis"),
        folders=lambda wildcards: " ".join(
            f"{MD}/{wildcards.model}/replica-{r}"
            for r in span_replicas(wildcards.replicas)
        ),
    shell:
        kdcg_shell(
            "analyze --config {input.config} --reference {input.reference}"
            " --replica-dirs {params.folders} --record {output}"
        )


rule analyze_replica:
    """A replica's analysis.json, from its job's work folder."""
    input:
        replica_job_record("analysis"),
    output:
        f"{MD}/{{model}}/replica-{{replica}}/analysis.json",
    log:
        f"{LOGS}/analyze_replica-{{model}}-{{replica}}.log",
    wildcard_constraints:
        model=MODEL_REGEX,
        replica=SEED_REGEX,
    localrule: True
    conda:
        ENV_ANALYSIS  # ln, cp and touch: any environment has them
    params:
        job_rule="analyze_replicas",
        work=lambda wildcards, input: analysis_work_folder(input[0], wildcards.replica),
    shell:
        PUBLISH_SHELL


rule summary:
    """Tables and figures of every model: TAE, performance, training, stability."""
    input:
        analysis_targets(),
        md_targets(),
        metrics=[f"{MODELS}/{m}/metrics.json" for m in md_models() if m != ENSEMBLE],
        reference=f"{ANALYSIS}/aa_reference.json",
        aa_performance=f"{AA}/performance.tsv",
        aa_energy=f"{AA}/energy.csv",
        config=config_file("findings"),
    output:
        **summary_outputs(),
    log:
        f"{LOGS}/summary.log",
    conda:
        ENV_ANALYSIS
    params:
        models=" ".join(md_models()),
        config_keys=config_keys("findings"),
    shell:
        kdcg_shell(
            f"summarize --results {RESULTS} --reference {{input.reference}} --config {{input.config}}"
            " --aa-performance {input.aa_performance} --aa-energy {input.aa_energy}"
            f" --tables {TABLES} --figures {FIGURES} {{params.models}}"
        )
