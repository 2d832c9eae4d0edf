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
