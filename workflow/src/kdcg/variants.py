"""The one table of model kinds: the teacher and the nine student variants of the paper
(Tables 2 and 3). Every stage reads it from here.

Each loss term is RMSE + MAE of its quantity (Eq. 4); the system-energy term is divided by
the number of beads. Weights: w_energy (system energy E from the teacher), w_bead_energy
(per-bead energies e_i from the teacher), w_teacher_forces (teacher forces F_T), w_aa_forces
(mapped all-atom forces F_AA).
"""

from __future__ import annotations

from dataclasses import dataclass

from kdcg.errors import InputError
from kdcg.naming import ENSEMBLE, classify, student_name, teacher_name


@dataclass(frozen=True)
class Variant:
    name: str
    teacher: str | None  # None for the teacher itself, "single" or "ensemble" for students
    w_energy: float
    w_bead_energy: float
    w_teacher_forces: float
    w_aa_forces: float

    @property
    def is_student(self) -> bool:
        return self.teacher is not None

    @property
    def weights(self) -> dict[str, float]:
        return {"energy": self.w_energy, "bead_energy": self.w_bead_energy,
                "teacher_forces": self.w_teacher_forces, "aa_forces": self.w_aa_forces}


TEACHER = Variant("teacher", None, 0.0, 0.0, 0.0, 1.0)

STUDENTS = {
    v.name: v
    for v in (
        Variant("st_ei_faa", "single", 0, 5, 0, 1),
        Variant("st_ei_ft", "single", 0, 5, 1, 0),
        Variant("st_ei_ft_faa", "single", 0, 5, 1, 2),
        Variant("se_ft_faa", "ensemble", 0, 0, 1, 2),
        Variant("se_ei_faa", "ensemble", 0, 5, 0, 1),
        Variant("se_ei_ft", "ensemble", 0, 5, 1, 0),
        Variant("se_ei_ft_faa", "ensemble", 0, 5, 1, 2),
        Variant("se_e_ft_faa", "ensemble", 5, 0, 1, 2),
        Variant("se_e_ei_ft_faa", "ensemble", 5, 5, 1, 2),
    )
}


def get_variant(name: str) -> Variant:
    if name == TEACHER.name:
        return TEACHER
    try:
        return STUDENTS[name]
    except KeyError:
        raise InputError(None, f"unknown model variant {name!r}; valid: teacher, {', '.join(STUDENTS)}") from None


def student_seed(variant: str, teacher_seed: int | None = None) -> int:
    """The seed of a student (initial weights and batch order), its own: derived from the
    variant and, for a single-teacher student, its teacher's seed, so that no student starts
    from its teacher's initial weights (nor from another student's). A 31-bit number drawn by
    numpy's SeedSequence from (teacher seed, or 0 for the ensemble; the variant's row in the
    table, 1-9)."""
    import numpy as np

    v = get_variant(variant)
    if not v.is_student:
        raise InputError(None, f"{variant} is not a student variant")
    if (v.teacher == "single") != (teacher_seed is not None):
        raise InputError(None, f"{variant}: a single-teacher student needs its teacher's seed, an ensemble student none")
    row = list(STUDENTS).index(variant) + 1
    return int(np.random.SeedSequence([int(teacher_seed or 0), row]).generate_state(1)[0] % (2**31 - 1))


def _chosen(chosen: list[str] | None) -> list[str]:
    """The variants a config trains (``training.student_variants``), in the table's order."""
    if chosen is None:
        return list(STUDENTS)
    unknown = sorted(set(chosen) - set(STUDENTS))
    if unknown:
        raise InputError(None, f"unknown student variant(s) {', '.join(unknown)}; valid: {', '.join(STUDENTS)}")
    return [n for n in STUDENTS if n in chosen]


def single_teacher_variants(chosen: list[str] | None = None) -> list[str]:
    return [n for n in _chosen(chosen) if STUDENTS[n].teacher == "single"]


def ensemble_variants(chosen: list[str] | None = None) -> list[str]:
    return [n for n in _chosen(chosen) if STUDENTS[n].teacher == "ensemble"]


def model_names(teacher_seeds: list[int], chosen: list[str] | None = None) -> list[str]:
    """Every trained model, as named in results/models/<name>/; ``chosen``: the student variants
    to train (all nine when None)."""
    names = [teacher_name(s) for s in teacher_seeds]
    names += [student_name(v, s) for v in single_teacher_variants(chosen) for s in teacher_seeds]
    names += [student_name(v) for v in ensemble_variants(chosen)]
    return names


@dataclass(frozen=True)
class TrainingBatch:
    """Models one `kdcg train` job trains one after another, sharing the job's imports and
    set-up (training.models_per_job); all of them read the same labels."""

    name: str  # the job's name: the {batch} wildcard of rule train_models (kdcg.naming)
    labels: str | None  # "teacher-<seed>" or "ensemble" (labels/<labels>.npz); None for teachers
    models: tuple[tuple[str, str, int], ...]  # (model name, variant, seed) in training order

    @property
    def model_names(self) -> list[str]:
        return [m[0] for m in self.models]


def model_batch(model: str) -> TrainingBatch:
    """A job of one model, named as the model (what one model per job means)."""
    family, variant, seed = classify(model)
    if family == "E":
        raise InputError(None, "the ensemble is built from its teachers (kdcg ensemble), not trained")
    if family == "T":
        return TrainingBatch(model, None, ((model, variant, seed),))
    labels = teacher_name(seed) if family == "S_T" else ENSEMBLE
    return TrainingBatch(model, labels, ((model, variant, student_seed(variant, seed)),))


def training_batches(teacher_seeds: list[int], chosen: list[str] | None, models_per_job: int) -> list[TrainingBatch]:
    """Every trained model of model_names(), in jobs of at most ``models_per_job`` models that
    share their labels: the teachers; the single-teacher students of one teacher; the ensemble
    students. A job of one model is named as its model (teacher-1); larger ones by their group
    (teachers-1, students-of-teacher-2-1, ensemble-students-1; kdcg.naming.TRAINING_JOB_REGEX)."""
    if models_per_job == 1:
        return [model_batch(m) for m in model_names(teacher_seeds, chosen)]

    def chunks(items: list) -> list[list]:
        return [items[i: i + models_per_job] for i in range(0, len(items), models_per_job)]

    batches = [TrainingBatch(f"teachers-{i}", None, tuple((teacher_name(s), TEACHER.name, s) for s in seeds))
               for i, seeds in enumerate(chunks(list(teacher_seeds)), start=1)]
    for s in teacher_seeds:
        batches += [TrainingBatch(f"students-of-teacher-{s}-{i}", teacher_name(s),
                                  tuple((student_name(v, s), v, student_seed(v, s)) for v in variants))
                    for i, variants in enumerate(chunks(single_teacher_variants(chosen)), start=1)]
    batches += [TrainingBatch(f"ensemble-students-{i}", ENSEMBLE, tuple((student_name(v), v, student_seed(v)) for v in variants))
                for i, variants in enumerate(chunks(ensemble_variants(chosen)), start=1)]
    return batches


def training_batch(name: str, teacher_seeds: list[int], chosen: list[str] | None, models_per_job: int) -> TrainingBatch:
    """The training job of this name: one of the config's (training_batches), or a job of one
    model named as the model (a model the config does not list, named as a target)."""
    for batch in training_batches(teacher_seeds, chosen, models_per_job):
        if batch.name == name:
            return batch
    return model_batch(name)


def batch_of_model(model: str, teacher_seeds: list[int], chosen: list[str] | None, models_per_job: int) -> TrainingBatch:
    """The training job that trains this model."""
    for batch in training_batches(teacher_seeds, chosen, models_per_job):
        if model in batch.model_names:
            return batch
    return model_batch(model)
