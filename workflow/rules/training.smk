# Stage 3: teachers (mapped AA forces), their labels, the ensemble labels, and the nine
# distilled student variants (kdcg.variants). Every model has its own target file:
#   <results_dir>/models/teacher-{seed}/model.pt
#   <results_dir>/models/student-{st variant}-{teacher seed}/model.pt
#   <results_dir>/models/student-{se variant}/model.pt
#   <results_dir>/models/ensemble/model.pt  (all teachers, one shared pair list, mean force)
# Each also as a LAMMPS ML-IAP unified file, mliap.pt, next to model.pt. With
# training.models_per_job > 1 (a laptop) the models sharing their labels train in jobs of that
# many (rules teachers_<i>, students_of_teacher_<seed>_<i>, ensemble_students_<i>): naming one
# model's file builds its job.


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


if models_per_job() == 1:
    # one model per job (a cluster)

    rule teacher:
        input:
            dataset=f"{CG}/dataset.npz",
            prior=f"{MODELS}/prior.json",
            config=config_file("training"),
        output:
            model=f"{MODELS}/{TEACHER}/model.pt",
            metrics=f"{MODELS}/{TEACHER}/metrics.json",
            mliap=f"{MODELS}/{TEACHER}/mliap.pt",
        log:
            f"{LOGS}/{TEACHER}.log",
        benchmark:
            f"{BENCH}/{TEACHER}.tsv"
        wildcard_constraints:
            seed=SEED_REGEX,
        conda:
            ENV_PYTORCH
        threads: 1
        resources:
            runtime=24 * 60,
            mem_mb=8000,
        params:
            config_keys=config_keys("training"),
        shell:
            train_shell("teacher")

    rule student_single_teacher:
        input:
            dataset=f"{CG}/dataset.npz",
            prior=f"{MODELS}/prior.json",
            labels=f"{LABELS}/{TEACHER}.npz",
            config=config_file("training"),
        output:
            model=f"{MODELS}/{ST_STUDENT}/model.pt",
            metrics=f"{MODELS}/{ST_STUDENT}/metrics.json",
            mliap=f"{MODELS}/{ST_STUDENT}/mliap.pt",
        log:
            f"{LOGS}/{ST_STUDENT}.log",
        benchmark:
            f"{BENCH}/{ST_STUDENT}.tsv"
        wildcard_constraints:
            variant="|".join(single_teacher_variants(student_variants())),
            seed=SEED_REGEX,
        conda:
            ENV_PYTORCH
        threads: 1
        resources:
            runtime=24 * 60,
            mem_mb=8000,
        params:
            config_keys=config_keys("training"),
            seed=student_seed,
        shell:
            train_shell("student")

    rule student_ensemble:
        input:
            dataset=f"{CG}/dataset.npz",
            prior=f"{MODELS}/prior.json",
            labels=f"{LABELS}/{ENSEMBLE}.npz",
            config=config_file("training"),
        output:
            model=f"{MODELS}/{SE_STUDENT}/model.pt",
            metrics=f"{MODELS}/{SE_STUDENT}/metrics.json",
            mliap=f"{MODELS}/{SE_STUDENT}/mliap.pt",
        log:
            f"{LOGS}/{SE_STUDENT}.log",
        benchmark:
            f"{BENCH}/{SE_STUDENT}.tsv"
        wildcard_constraints:
            variant="|".join(ensemble_variants(student_variants())),
        conda:
            ENV_PYTORCH
        threads: 1
        resources:
            runtime=24 * 60,
            mem_mb=8000,
        params:
            config_keys=config_keys("training"),
            seed=student_seed,
        shell:
            train_shell("ensemble_student")

else:
    # training.models_per_job > 1: the models of one label group in jobs of that many
    for _job_models in training_batches():

        rule:
            name:
                _job_models.name
            input:
                dataset=f"{CG}/dataset.npz",
                prior=f"{MODELS}/prior.json",
                config=config_file("training"),
                labels=(
                    [f"{LABELS}/{_job_models.labels}.npz"]
                    if _job_models.labels
                    else []
                ),
            output:
                model=batch_model_files(_job_models, "model.pt"),
                metrics=batch_model_files(_job_models, "metrics.json"),
                mliap=batch_model_files(_job_models, "mliap.pt"),
            log:
                f"{LOGS}/{_job_models.name}.log",
            benchmark:
                f"{BENCH}/{_job_models.name}.tsv"
            conda:
                ENV_PYTORCH
            threads: 1
            resources:
                runtime=24 * 60,
                mem_mb=8000,
            params:
                **train_batch_params(_job_models),
                config_keys=config_keys("training"),
                # bound now: a shell directive is evaluated again when the job runs, when the
                # loop variable holds the last batch
                out_dirs=model_folders,
            shell:
                TRAIN_BATCH_SHELL


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
