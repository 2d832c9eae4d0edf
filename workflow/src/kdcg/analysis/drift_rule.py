"""The pilot's decision rule (docs/pilot.md), applied to a finished run's stability table.

The unit is the trained model. A replica drifts when the time-resolved CDF of any of the named
species is flagged (its first and last windows differ by more than ``analysis.cdf_drift_tae``
and more than twice their noise: kdcg.analysis.distributions) or when the replica went unstable.
A model drifts when at least ``replicas_needed`` of its replicas drift. The instability appears
for a family (the teachers, by default) when at least ``models_needed`` of its models drift.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from kdcg.errors import InputError
from kdcg.files import write_table_csv


@dataclass(frozen=True)
class ModelDrift:
    model: str
    family: str
    replicas: int
    drifting: int  # replicas whose CDFs are flagged or that went unstable
    unstable: int
    flagged: dict[str, int]  # species -> replicas flagged for it
    drifts: bool


def read_stability(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise InputError(path, f"cannot be read: {err.strerror}") from None
    if not rows:
        raise InputError(path, "lists no replicas")
    return rows


def model_drift(rows: list[dict], species: list[str], replicas_needed: int, path: Path | None = None) -> list[ModelDrift]:
    """Per model, in the table's order: how many replicas drift, and whether the model does."""
    for s in species:
        if f"cdf_drift_{s}" not in rows[0]:
            have = sorted(k[len("cdf_drift_"):] for k in rows[0] if k.startswith("cdf_drift_"))
            raise InputError(path, f"has no drift flags for species {s!r} (it has {', '.join(have) or 'none'})")
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    out = []
    for model, reps in by_model.items():
        flagged = {s: sum(r[f"cdf_drift_{s}"] == "True" for r in reps) for s in species}
        unstable = sum(r["status"] != "stable" for r in reps)
        drifting = sum(r["status"] != "stable" or any(r[f"cdf_drift_{s}"] == "True" for s in species) for r in reps)
        out.append(ModelDrift(model, reps[0]["family"], len(reps), drifting, unstable, flagged,
                              drifting >= replicas_needed))
    return out


def family_verdict(models: list[ModelDrift], family: str, models_needed: int) -> dict:
    """Whether the instability appears for a family: at least models_needed of its models drift."""
    members = [m for m in models if m.family == family]
    n = sum(m.drifts for m in members)
    return {"family": family, "models": len(members), "drifting_models": n, "models_needed": models_needed,
            "appears": bool(members) and n >= models_needed}


def write_table(models: list[ModelDrift], species: list[str], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "family", "replicas", "drifting_replicas", "unstable_replicas",
                    *[f"flagged_{s}" for s in species], "model_drifts"])
        for m in models:
            w.writerow([m.model, m.family, m.replicas, m.drifting, m.unstable, *[m.flagged[s] for s in species],
                        m.drifts])


SUMMARY_HEADER = ["family", "models", "drifting_models", "fraction", "ci95_low", "ci95_high", "fisher_p_vs_teachers",
                  "same_verdict_as_own_teacher"]


def family_summary(models: list[ModelDrift]) -> list[dict]:
    """Per family (T, E, S_T, S_E; those present): how many models drift, the fraction with its
    exact (Clopper-Pearson) 95 % interval, Fisher's exact two-sided p of its drift count against
    the teachers' (the unit is the model: with one ensemble the smallest p is 1/(k + 1)), and for
    single-teacher students how many share their own teacher's verdict."""
    from scipy import stats

    from kdcg.naming import FAMILIES, classify, teacher_name

    by_name = {m.model: m for m in models}
    teachers = [m for m in models if m.family == "T"]
    t_drift = sum(m.drifts for m in teachers)
    rows = []
    for family in FAMILIES:
        members = [m for m in models if m.family == family]
        if not members:
            continue
        n, k = len(members), sum(m.drifts for m in members)
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
        fisher = None
        if family != "T" and teachers:
            fisher = float(stats.fisher_exact([[k, n - k], [t_drift, len(teachers) - t_drift]]).pvalue)
        same = None
        if family == "S_T":
            pairs = [(m, by_name.get(teacher_name(classify(m.model)[2]))) for m in members]
            same = f"{sum(t is not None and t.drifts == m.drifts for m, t in pairs)} of {len(pairs)}"
        rows.append({"family": family, "models": n, "drifting_models": k, "fraction": k / n,
                     "ci95_low": float(ci.low), "ci95_high": float(ci.high), "fisher_p_vs_teachers": fisher,
                     "same_verdict_as_own_teacher": same})
    return rows


def write_summary(rows: list[dict], out: Path) -> None:
    write_table_csv(out, SUMMARY_HEADER, rows, ".3g")
