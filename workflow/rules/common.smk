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
    ENSEMBLE_STUDENT_PATTERN as SE_STUDENT,
    MODEL_REGEX,
    SEED_REGEX,
    SINGLE_TEACHER_STUDENT_PATTERN as ST_STUDENT,
    TEACHER_PATTERN as TEACHER,
)
from kdcg.variants import (
    ensemble_variants,
    model_names,
    single_teacher_variants,
    training_batches as _training_batches,
)

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


def student_seed(wildcards):
    """Each student's own seed (kdcg.variants.student_seed): from its variant and, for a
    single-teacher student, its teacher's seed."""
    from kdcg.variants import student_seed as _seed

    teacher = int(wildcards.seed) if "seed" in wildcards.keys() else None
    return _seed(wildcards.variant, teacher)


def train_shell(kind):
    """Shell command of `kdcg train`: kind teacher, student (single teacher) or
    ensemble_student; students take their seed from params.seed (student_seed)."""
    variant = "teacher" if kind == "teacher" else "{wildcards.variant}"
    seed_arg = "{wildcards.seed}" if kind == "teacher" else "{params.seed}"
    pattern = {
        "teacher": TEACHER,
        "student": ST_STUDENT,
        "ensemble_student": SE_STUDENT,
    }[kind]
    name = pattern.replace("{", "{wildcards.")
    labels = "" if kind == "teacher" else " --labels {input.labels}"
    return kdcg_shell(
        f"train {variant} --seed {seed_arg} --config {{input.config}} --dataset {{input.dataset}}"
        f" --prior {{input.prior}}{labels} --out-dir {MODELS}/{name} --mliap {{output.mliap}}"
        " --threads {threads}"
    )


def models_per_job():
    return config["training"]["models_per_job"]


def training_batches():
    """The training jobs when several models share one (kdcg.variants.training_batches)."""
    return _training_batches(teacher_seeds(), student_variants(), models_per_job())


def batch_model_files(batch, name):
    return [f"{MODELS}/{model}/{name}" for model in batch.model_names]


def train_batch_params(batch):
    """The models of one training job, in order, as `kdcg train` arguments."""
    return {
        "variants": " ".join(variant for _, variant, _ in batch.models),
        "seeds": " ".join(str(seed) for _, _, seed in batch.models),
        "labels_option": "--labels " if batch.labels else "",
    }


def model_folders(wildcards, output):
    """The model folders of a training job's outputs, in order."""
    return " ".join(os.path.dirname(path) for path in output.model)


# `kdcg train` for the models of one training job (train_batch_params)
TRAIN_BATCH_SHELL = kdcg_shell(
    "train {params.variants} --seed {params.seeds} --config {input.config} --dataset {input.dataset}"
    " --prior {input.prior} {params.labels_option}{input.labels} --out-dir {params.out_dirs}"
    " --mliap {output.mliap} --threads {threads}"
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
