"""The names of kdcg's models: one place builds them, parses them and gives Snakemake their
wildcard patterns. Rules, variants, findings, figures and the report read them here.

    teacher-<seed>                 a teacher (trained on the mapped all-atom forces)
    ensemble                       the teachers' ensemble (mean force on one shared pair list)
    student-<st variant>-<seed>    a single-teacher student, distilled from teacher-<seed>
    student-<se variant>           an ensemble student, distilled from the ensemble's labels

Results live under results/models/<name>/, results/labels/<name>.npz (teachers and the
ensemble) and results/md/<name>/replica-<r>/. Jobs that make several of them at once are named
by what they hold: training jobs (TRAINING_JOB_REGEX) and replica spans (replica_span).
"""

from __future__ import annotations

import re

from kdcg.errors import InputError

ENSEMBLE = "ensemble"
#: model families in the paper's order: teachers, ensemble, single-teacher and ensemble students
FAMILIES = ("T", "E", "S_T", "S_E")

# Snakemake wildcard patterns of the names ({seed} and {variant} are wildcards)
TEACHER_PATTERN = "teacher-{seed}"
SINGLE_TEACHER_STUDENT_PATTERN = "student-{variant}-{seed}"
ENSEMBLE_STUDENT_PATTERN = "student-{variant}"
#: regexes of the wildcards: a seed, and any model name
SEED_REGEX = r"\d+"
MODEL_REGEX = r"teacher-\d+|student-[a-z_]+(-\d+)?|ensemble"
#: a trained model (the ensemble is assembled from its teachers, not trained)
TRAINED_MODEL_REGEX = r"teacher-\d+|student-[a-z_]+(-\d+)?"
#: a training job (rule train_models): one model, named as the model, or a group of models
#: sharing their labels (kdcg.variants.training_batches)
TRAINING_JOB_REGEX = rf"{TRAINED_MODEL_REGEX}|teachers-\d+|students-of-teacher-\d+-\d+|ensemble-students-\d+"
#: the replicas of one MD or analysis job: "3" or "1-4" (first-last; kdcg.naming.replica_span)
REPLICA_SPAN_REGEX = r"\d+(-\d+)?"


def replica_span(replicas: list[int]) -> str:
    """A job's consecutive replicas as its {replicas} wildcard: [3] -> "3", [1, 2, 3, 4] -> "1-4"."""
    if list(replicas) != list(range(replicas[0], replicas[-1] + 1)):
        raise ValueError(f"replicas {replicas} are not consecutive")
    return str(replicas[0]) if len(replicas) == 1 else f"{replicas[0]}-{replicas[-1]}"


def span_replicas(span: str) -> list[int]:
    """The replicas of a {replicas} wildcard: "1-4" -> [1, 2, 3, 4]."""
    first, _, last = span.partition("-")
    return list(range(int(first), int(last or first) + 1))


def teacher_name(seed: int) -> str:
    return TEACHER_PATTERN.format(seed=seed)


def student_name(variant: str, teacher_seed: int | None = None) -> str:
    """A single-teacher student's name carries its teacher's seed; an ensemble student's none."""
    if teacher_seed is None:
        return ENSEMBLE_STUDENT_PATTERN.format(variant=variant)
    return SINGLE_TEACHER_STUDENT_PATTERN.format(variant=variant, seed=teacher_seed)


def classify(model: str) -> tuple[str, str, int | None]:
    """(family, variant, seed) of a model name: ("T", "teacher", 3), ("E", "ensemble", None),
    ("S_T", "st_ei_ft", 3), ("S_E", "se_ei_ft_faa", None)."""
    if model == ENSEMBLE:
        return "E", ENSEMBLE, None
    m = re.fullmatch(r"teacher-(\d+)", model)
    if m:
        return "T", "teacher", int(m.group(1))
    m = re.fullmatch(r"student-(st_[a-z_]+)-(\d+)", model)
    if m:
        return "S_T", m.group(1), int(m.group(2))
    m = re.fullmatch(r"student-(se_[a-z_]+)", model)
    if m:
        return "S_E", m.group(1), None
    raise InputError(None, f"model name {model!r} is not teacher-N, ensemble, student-st_*-N or student-se_*")
