# Stage 4: CG MD in LAMMPS, md.replicas replicas of every model (kdcg.md.replicas). Targets:
#   <results_dir>/md/{model}/replica-{r}/result.json   status, step, reason, ns/day, ms/step
#   <results_dir>/md/{model}/replica-{r}/trajectory.lammpstrj, thermo.csv
# Replicas are grouped md.replicas_per_job to a job (one rule per group).


for _batch in replica_batches():

    rule:
        name:
            (
                f"md_replica_{_batch[0]}"
                if len(_batch) == 1
                else f"md_replicas_{_batch[0]}_to_{_batch[-1]}"
            )
        input:
            model=f"{MODELS}/{{model}}/model.pt",
            dataset=f"{CG}/dataset.npz",
            config=config_file("md"),
        output:
            *replica_files("{model}", _batch),
            *replica_files("{model}", _batch, "trajectory.lammpstrj"),
            *replica_files("{model}", _batch, "thermo.csv"),
        log:
            f"{LOGS}/md-{{model}}-replicas-{_batch[0]}-to-{_batch[-1]}.log",
        benchmark:
            f"{BENCH}/md-{{model}}-replicas-{_batch[0]}-to-{_batch[-1]}.tsv"
        wildcard_constraints:
            model=MODEL_REGEX,
        conda:
            ENV_LAMMPS
        threads: 1
        resources:
            runtime=24 * 60,
            mem_mb=8000,
        params:
            config_keys=config_keys("md"),
            replicas=" ".join(str(r) for r in _batch),
        shell:
            kdcg_shell(
                "md --model {input.model} --dataset {input.dataset} --config {input.config}"
                f" --replicas {{params.replicas}} --out-dir {MD}/{{wildcards.model}} --threads {{threads}}"
            )
