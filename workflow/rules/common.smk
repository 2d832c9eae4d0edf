# Config access and input functions. The config is validated strictly against
# workflow/schemas/config.schema.yaml before any rule is built. kdcg is the installed package
# (scripts/setup.sh installs this checkout's, editable, into .venv).
import os
import sys
from pathlib import Path

from kdcg.config import (
    coerce_overrides,
    decides_otherwise,
    snapshot,
    snapshot_digest,
    validate as _validate_config,
    write_snapshot,
)
from kdcg.errors import InputError
from kdcg.naming import (
    ENSEMBLE,
    MODEL_REGEX,
    REPLICA_SPAN_REGEX,
    SEED_REGEX,
    TEACHER_PATTERN as TEACHER,
    TRAINED_MODEL_REGEX,
    TRAINING_JOB_REGEX,
    replica_span,
    span_replicas,
)
from kdcg.variants import batch_of_model, model_names, training_batch

_config_source = ", ".join(str(p) for p in workflow.configfiles) or "config"
if workflow.config_settings.config:
    _config_source += " + --config"
try:
    coerce_overrides(config, workflow.config_settings.config)
    _validate_config(config, _config_source)
except InputError as _err:
    sys.exit(f"kdcg config error: {_err}")


onstart:
    # before the first job: every program the planned jobs call is on PATH (conda envs bring their own)
    if "conda" not in str(workflow.deployment_settings.deployment_method):
        from kdcg.tools import describe_missing, missing_tools

        _missing = missing_tools(
            job.rule.name for job in workflow.dag.needrun_jobs()
        )
        if _missing:
            sys.exit(f"kdcg tool error: {describe_missing(_missing)}")


RESULTS = config["results_dir"]
if "--report" in sys.argv:
    # the report's front page (workflow/report/workflow.rst) reads it; no stage does
    from kdcg.report.front_page import front_page

    config["_report_front_page"] = front_page(
        config, [str(f) for f in workflow.configfiles], Path(workflow.basedir)
    )
AA = f"{RESULTS}/aa"
CG = f"{RESULTS}/cg"
MODELS = f"{RESULTS}/models"
LABELS = f"{RESULTS}/labels"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
MD = f"{RESULTS}/md"
ANALYSIS = f"{RESULTS}/analysis"
TABLES = f"{RESULTS}/tables"
FIGURES = f"{RESULTS}/figures"
GMX_STAGES = ["em", "nvt_equil", "nvt_prod"]


# Top-level config sections each stage reads; a stage reruns only when its own change.
CONFIG_SECTIONS = {
    "aa": ["system", "packmol", "aa_md"],
    "training": ["model", "prior", "training"],
    "md": ["system", "md", "training"],  # training: the split replicas start from
    "analysis": ["system", "analysis"],
    "findings": [
        "findings"
    ],  # read by the summary only: a new margin redoes no analysis
}
# a failed job shows its last log line (kdcg's one-line error) on the console
ON_ERROR = " > {log} 2>&1 || {{ tail -n 1 {log} >&2; exit 1; }}"


# One conda environment per tool family, for `--sdm conda` (paths relative to workflow/rules/).
ENV_GROMACS = "../../envs/gromacs.yaml"
ENV_PYTORCH = "../../envs/pytorch.yaml"
ENV_LAMMPS = "../../envs/lammps.yaml"
ENV_ANALYSIS = "../../envs/analysis.yaml"
# Jobs run the kdcg of this checkout, whichever environment (venv or conda) runs them. The
# path is relative to the working directory: an absolute one would change every job's code
# fingerprint when the checkout moves, and Snakemake would rerun everything.
KDCG_JOB = os.path.relpath(
    os.path.join(workflow.basedir, "workflow", "scripts", "kdcg_job.py")
)


def kdcg_shell(command):
    """A `kdcg ...` shell command logged to {log}, its one-line error shown on failure."""
    return f'python "{KDCG_JOB}" {command}{ON_ERROR}'


def stage_config(stage):
    """The sections of the merged config (file plus --config) that a stage's jobs read."""
    return snapshot(config, CONFIG_SECTIONS[stage])


def snapshot_file(stage):
    return f"{RESULTS}/config/{stage}.yaml"


def executing():
    """Whether Snakemake runs jobs now: not a dry run, --touch, --lint, --report, or any other
    reading of the rules (none of which may write under results_dir)."""
    return workflow.executor_plugin is not None and not (
        workflow.dryrun or workflow.touch
    )


_written_snapshots = set()


def config_file(stage="aa"):
    """Input function of a stage's config snapshot (results/config/<stage>.yaml), whose jobs
    read it; rule stage_config makes a missing one. In a run that executes jobs an existing one
    is rewritten, while Snakemake builds the DAG, where its content differs from the file's: the file's content decides, not Snakemake's records,
    which a copied or moved results folder (or a deleted .snakemake/) lacks. Its time stamp
    moves only when a key that decides the stage's outputs changed (kdcg.config.write_snapshot),
    so exactly that stage reruns. A dry run writes nothing: there the jobs' param config_keys
    (config_keys) shows the change, where Snakemake has records of the earlier run."""

    def snapshot_path(wildcards):
        if stage not in _written_snapshots:
            _written_snapshots.add(stage)
            if executing() and os.path.isfile(snapshot_file(stage)):
                write_snapshot(snapshot_file(stage), stage, stage_config(stage))
            elif decides_otherwise(snapshot_file(stage), stage, stage_config(stage)):
                print(
                    f"kdcg: {snapshot_file(stage)} holds other values of keys that decide the"
                    f" {stage} stage than this config: a run rewrites it and reruns that stage"
                    " (this dry run writes nothing; it lists those jobs only where Snakemake"
                    " has records of the earlier run)",
                    file=sys.stderr,
                )
        return snapshot_file(stage)

    return snapshot_path


def write_stage_config(stage, path, log):
    """Rule stage_config: the stage's snapshot, and a line saying so in its log."""
    write_snapshot(path, stage, stage_config(stage))
    Path(log).write_text(f"{path}: the sections {', '.join(CONFIG_SECTIONS[stage])}\n")


def config_keys(stage):
    """Digest of the config keys that decide a stage's outputs (kdcg.config.snapshot_digest)."""
    return snapshot_digest(stage, stage_config(stage))


def molecule_files():
    files = [config["system"]["forcefield"]]
    for mol in config["system"]["molecules"]:
        files += [mol["itp"], mol["structure"]]
    return files


def gmx_shell(stage, checkpoint=False):
    """Shell command of one GROMACS stage; the last log line reaches the console on failure."""
    cpt = " --checkpoint {input.checkpoint}" if checkpoint else ""
    return kdcg_shell(
        f"gromacs {stage} --config {{input.config}} --structure {{input.structure}}"
        f" --topology {{input.topology}} --stage-dir {AA}/{stage}{cpt} --threads {{threads}}"
    )


def teacher_seeds():
    return config["training"]["teacher_seeds"]


def student_variants():
    """The student variants this config trains (training.student_variants)."""
    return config["training"]["student_variants"]


# the files of a trained model and of an MD replica, by the rules' output keys
TRAINED_FILES = {"model": "model.pt", "metrics": "metrics.json", "mliap": "mliap.pt"}
REPLICA_FILES = {
    "result": "result.json",
    "trajectory": "trajectory.lammpstrj",
    "thermo": "thermo.csv",
}


def models_per_job():
    return config["training"]["models_per_job"]


def _training_job(name):
    return training_batch(name, teacher_seeds(), student_variants(), models_per_job())


def training_job_inputs(wildcards):
    """The labels a training job's models learn from (students), as {"labels": path}."""
    labels = _training_job(wildcards.batch).labels
    return {"labels": f"{LABELS}/{labels}.npz"} if labels else {}


def training_job_params(wildcards, input):
    """The models of one training job, in order, as `kdcg train` arguments; each trains in its
    run/ folder (rule trained_model publishes it)."""
    job = _training_job(wildcards.batch)
    runs = [f"{MODELS}/{name}/run" for name in job.model_names]
    return {
        "variants": " ".join(variant for _, variant, _ in job.models),
        "seeds": " ".join(str(seed) for _, _, seed in job.models),
        "labels": f"--labels {input.labels}" if job.labels else "",
        "out_dirs": " ".join(runs),
        "mliaps": " ".join(f"{run}/mliap.pt" for run in runs),
    }


def training_job_record(wildcards):
    """The record of the training job that trains this model."""
    job = batch_of_model(
        wildcards.model, teacher_seeds(), student_variants(), models_per_job()
    )
    return f"{MODELS}/jobs/{job.name}.json"


# Rules trained_model, md_replica and analyze_replica: a finished job's file, hard-linked (copied
# across file systems) from the job's work folder into the folder Snakemake knows it by, its time
# stamp set to now so that it is newer than the job's record. A shell loop, not a Python run:
# block: Snakemake would start a Python process that reads the whole workflow for each. The loop
# runs in a subshell so that its exit reaches ON_ERROR, which shows the one-line error.
PUBLISH_SHELL = (
    "(for f in {output}; do src={params.work}/$(basename $f);"
    " [ -f $src ] || {{ echo \"kdcg error: $src is gone, but its job's record {input} says the job"
    ' finished: run the job again (add --forcerun {params.job_rule})"; exit 1; }};'
    " ln -f $src $f 2> /dev/null || cp $src $f; touch $f; echo $src '->' $f; done)"
    + ON_ERROR
)


def md_models():
    """Every model that goes to MD: the trained ones and the teacher ensemble."""
    return [*model_names(teacher_seeds(), student_variants()), ENSEMBLE]


def model_targets():
    return [
        f"{MODELS}/{name}/{f}" for name in md_models() for f in ("model.pt", "mliap.pt")
    ]


def replica_batches():
    """Replica numbers grouped into jobs of md.replicas_per_job (one process pays the imports
    once for a whole batch on a laptop; one replica per job on a cluster)."""
    replicas = list(range(1, config["md"]["replicas"] + 1))
    k = config["md"]["replicas_per_job"]
    return [replicas[i : i + k] for i in range(0, len(replicas), k)]


# MD job memory, measured at the paper's size (1,000 beads, 8 replicas in one job, two runs of
# config/paper-smoke.yaml; docs/paper-scale.md): peaks of 3.3-7.0 GB for one model, 13.5 and
# 16.6 GB for the 8-member ensemble. Per replica and 1,000 beads, with a margin: 900 MB for one
# model, 2,200 MB for the ensemble, on a base of 1,000 MB.
MD_BASE_MB = 1000
MD_REPLICA_MB_PER_1000_BEADS = {"model": 900, "ensemble": 2200}


def md_job_mem_mb(wildcards):
    """Memory (MB) a job of md_replicas asks for: its replicas x the beads x one model's or the
    ensemble's per-replica figure, at least 2,000 MB."""
    beads = sum(mol["count"] for mol in config["system"]["molecules"])
    kind = "ensemble" if wildcards.model == ENSEMBLE else "model"
    per_replica = MD_REPLICA_MB_PER_1000_BEADS[kind] * beads / 1000
    return max(
        2000, int(MD_BASE_MB + len(span_replicas(wildcards.replicas)) * per_replica)
    )


def replica_job(replica):
    """The {replicas} wildcard of the job that runs this replica: its batch, or itself alone
    (a replica beyond md.replicas, named as a target)."""
    for batch in replica_batches():
        if replica in batch:
            return replica_span(batch)
    return str(replica)


def replica_job_record(kind):
    """Input function: the record of the md or analysis job that made this replica's files."""

    def record(wildcards):
        span = replica_job(int(wildcards.replica))
        return f"{MD}/{wildcards.model}/jobs/{kind}-{span}.json"

    return record


def analysis_work_folder(record, replica):
    """Where an analysis job leaves replica <r>'s analysis.json: <record without .json>/replica-<r>/
    (kdcg analyze --record)."""
    return f"{record[: -len('.json')]}/replica-{replica}"


def analysis_job_inputs(wildcards):
    """The MD files of the replicas one analysis job reads."""
    replicas = span_replicas(wildcards.replicas)
    return {
        key: replica_files(wildcards.model, replicas, name)
        for key, name in REPLICA_FILES.items()
    }


def replica_files(model, replicas, name="result.json"):
    return [f"{MD}/{model}/replica-{r}/{name}" for r in replicas]


def md_targets():
    return [
        f
        for model in md_models()
        for f in replica_files(model, range(1, config["md"]["replicas"] + 1))
    ]


# report categories in the paper's order


def summary_outputs():
    """Every table and figure, each with its caption in the Snakemake report."""
    from kdcg.report.figures import FIGURES as FIGURE_CATEGORIES
    from kdcg.report.tables import TABLES as TABLE_FILES

    out = {}
    for name in TABLE_FILES:
        stem = name.split(".")[0]
        out[f"table_{stem}"] = report(
            f"{TABLES}/{name}",
            caption=f"../report/table_{stem}.rst",
            category="9. Tables (CSV)",
        )
    for name in FIGURE_CATEGORIES:
        stem = name.split(".")[0]
        out[f"figure_{stem}"] = report(
            f"{FIGURES}/{name}",
            caption=f"../report/{stem}.rst",
            category=FIGURE_CATEGORIES[name],
        )
    return out


def analysis_targets():
    return [f.replace("result.json", "analysis.json") for f in md_targets()]


def summary_targets():
    from kdcg.report.tables import FIGURES as FIGURE_FILES, TABLES as TABLE_FILES

    return [f"{TABLES}/{t}" for t in TABLE_FILES] + [
        f"{FIGURES}/{f}" for f in FIGURE_FILES
    ]


def get_final_targets():
    return [
        f"{CG}/dataset.npz",
        f"{AA}/performance.tsv",
        f"{LABELS}/{ENSEMBLE}.npz",
        *model_targets(),
        *md_targets(),
        *analysis_targets(),
        *summary_targets(),
    ]
