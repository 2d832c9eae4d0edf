# Stage 3: teachers (mapped AA forces), their labels, the ensemble labels, and the nine
# distilled student variants (kdcg.variants). Every model has its own target file:
#   <results_dir>/models/teacher-{seed}/model.pt
#   <results_dir>/models/student-{st variant}-{teacher seed}/model.pt
#   <results_dir>/models/student-{se variant}/model.pt
#   <results_dir>/models/ensemble/model.pt  (all teachers, one shared pair list, mean force)
# Each also as a LAMMPS ML-IAP unified file, mliap.pt, next to model.pt. Rule train_models
# trains the models of one job (its {batch}: one model, named as the model, on a cluster; with
# training.models_per_job > 1 on a laptop, that many sharing their labels) in each model's
# run/ folder and writes the job's record; rule trained_model, local, links a finished model's
# files into its folder. The rule names are the same at every scale; naming one model's file
# builds its job.


rule cg_prior:
    """The repulsive prior, computed once so that every teacher and student shares it."""
    input:
        dataset=f"{CG}/dataset.npz",
        config=config_file("training"),
    output:
        f"{MODELS}/prior.json",
    log:
        f"{LOGS}/cg_prior.log",
    conda:
        ENV_PYTORCH
    params:
        config_keys=config_keys("training"),
    shell:
        kdcg_shell(
            "prior --config {input.config} --dataset {input.dataset} --out {output}"
        )


rule train_models:
    input:
        unpack(training_job_inputs),
        dataset=f"{CG}/dataset.npz",
        prior=f"{MODELS}/prior.json",
        config=config_file("training"),
    output:
        f"{MODELS}/jobs/{{batch}}.json",
    log:
        f"{LOGS}/train-{{batch}}.log",
    benchmark:
        f"{BENCH}/train-{{batch}}.tsv"
    wildcard_constraints:
        batch=TRAINING_JOB_REGEX,
    conda:
        ENV_PYTORCH
    threads: 1
    resources:
        runtime=24 * 60,
        mem_mb=8000,
    params:
        config_keys=config_keys("training"),
        job=training_job_params,
    shell:
        kdcg_shell(
            "train {params.job[variants]} --seed {params.job[seeds]} --config {input.config}"
            " --dataset {input.dataset} --prior {input.prior} {params.job[labels]}"
            " --out-dir {params.job[out_dirs]} --mliap {params.job[mliaps]} --record {output}"
            " --threads {threads}"
        )


rule trained_model:
    """A trained model's files, linked from its run/ folder once its job has finished."""
    input:
        training_job_record,
    output:
        **{key: f"{MODELS}/{{model}}/{name}" for key, name in TRAINED_FILES.items()},
    log:
        f"{LOGS}/trained_model-{{model}}.log",
    wildcard_constraints:
        model=TRAINED_MODEL_REGEX,
    localrule: True
    conda:
        ENV_ANALYSIS  # ln, cp and touch: any environment has them
    params:
        job_rule="train_models",
        work=f"{MODELS}/{{model}}/run",
    shell:
        PUBLISH_SHELL


rule teacher_labels:
    input:
        model=f"{MODELS}/{TEACHER}/model.pt",
        dataset=f"{CG}/dataset.npz",
    output:
        f"{LABELS}/{TEACHER}.npz",
    log:
        f"{LOGS}/teacher_labels-{{seed}}.log",
    wildcard_constraints:
        seed=SEED_REGEX,
    conda:
        ENV_PYTORCH
    threads: 1  # bit-reproducible labels (kdcg label --threads)
    shell:
        kdcg_shell(
            "label --model {input.model} --dataset {input.dataset} --out {output}"
            " --threads {threads}"
        )


rule ensemble_labels:
    input:
        labels=expand(f"{LABELS}/{TEACHER}.npz", seed=teacher_seeds()),
        dataset=f"{CG}/dataset.npz",
    output:
        f"{LABELS}/{ENSEMBLE}.npz",
    log:
        f"{LOGS}/ensemble_labels.log",
    conda:
        ENV_PYTORCH
    shell:
        kdcg_shell(
            "ensemble-labels --dataset {input.dataset} --out {output} {input.labels}"
        )


rule ensemble_model:
    """The teacher ensemble as one model: every teacher on one shared pair list, mean force."""
    input:
        expand(f"{MODELS}/{TEACHER}/model.pt", seed=teacher_seeds()),
    output:
        model=f"{MODELS}/{ENSEMBLE}/model.pt",
        mliap=f"{MODELS}/{ENSEMBLE}/mliap.pt",
    log:
        f"{LOGS}/ensemble_model.log",
    conda:
        ENV_PYTORCH
    shell:
        kdcg_shell("ensemble --out {output.model} --mliap {output.mliap} {input}")
