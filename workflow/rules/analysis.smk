# Stage 5: structural validation (kdcg.analysis.distributions) and the study's tables, figures and report
# (kdcg.report.tables). Targets:
#   <results_dir>/analysis/aa_reference.json           every distribution of the mapped AA frames
#   <results_dir>/md/{model}/replica-{r}/analysis.json equilibration, distributions, TAE vs AA
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


for _batch in replica_batches():

    rule:
        name:
            (
                f"analyze_replica_{_batch[0]}"
                if len(_batch) == 1
                else f"analyze_replicas_{_batch[0]}_to_{_batch[-1]}"
            )
        input:
            results=replica_files("{model}", _batch),
            thermo=replica_files("{model}", _batch, "thermo.csv"),
            trajectories=replica_files("{model}", _batch, "trajectory.lammpstrj"),
            reference=f"{ANALYSIS}/aa_reference.json",
            config=config_file("analysis"),
        output:
            replica_files("{model}", _batch, "analysis.json"),
        log:
            f"{LOGS}/analyze-{{model}}-replicas-{_batch[0]}-to-{_batch[-1]}.log",
        benchmark:
            f"{BENCH}/analyze-{{model}}-replicas-{_batch[0]}-to-{_batch[-1]}.tsv"
        wildcard_constraints:
            model=MODEL_REGEX,
        conda:
            ENV_ANALYSIS
        params:
            config_keys=config_keys("analysis"),
            folders=" ".join(f"{MD}/{{model}}/replica-{r}" for r in _batch),
        shell:
            kdcg_shell(
                "analyze --config {input.config} --reference {input.reference}"
                " --replica-dirs {params.folders}"
            )


rule summary:
    """Tables and figures of every model: TAE, performance, training, stability."""
    input:
        analysis_targets(),
        md_targets(),
        metrics=[f"{MODELS}/{m}/metrics.json" for m in md_models() if m != ENSEMBLE],
        reference=f"{ANALYSIS}/aa_reference.json",
        aa_performance=f"{AA}/performance.tsv",
        aa_energy=f"{AA}/energy.csv",
    output:
        **summary_outputs(),
    log:
        f"{LOGS}/summary.log",
    conda:
        ENV_ANALYSIS
    params:
        models=" ".join(md_models()),
    shell:
        kdcg_shell(
            f"summarize --results {RESULTS} --reference {{input.reference}}"
            " --aa-performance {input.aa_performance} --aa-energy {input.aa_energy}"
            f" --tables {TABLES} --figures {FIGURES} {{params.models}}"
        )
