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


def read_stability_tables(paths: list[Path]) -> list[dict]:
    """The replica rows of several runs' stability tables, in the order given: the models of
    one experiment run in parts (the same frames and settings, different seeds). A model in two
    tables, or tables with different columns, is refused."""
    rows: list[dict] = []
    seen: dict[str, Path] = {}
    for path in paths:
        part = read_stability(path)
        if rows and list(part[0]) != list(rows[0]):
            raise InputError(path, f"has other columns than {paths[0]}")
        for model in _by_model(part):
            if model in seen:
                raise InputError(path, f"lists {model}, which {seen[model]} lists too")
            seen[model] = path
        rows += part
    return rows


def _by_model(rows: list[dict]) -> dict[str, list[dict]]:
    """A stability table's replica rows per model, in the table's order."""
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    return by_model


def model_drift(rows: list[dict], species: list[str], replicas_needed: int, path: Path | None = None) -> list[ModelDrift]:
    """Per model, in the table's order: how many replicas drift, and whether the model does."""
    for s in species:
        if f"cdf_drift_{s}" not in rows[0]:
            have = sorted(k[len("cdf_drift_"):] for k in rows[0] if k.startswith("cdf_drift_"))
            raise InputError(path, f"has no drift flags for species {s!r} (it has {', '.join(have) or 'none'})")
    by_model = _by_model(rows)
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
                  "same_verdict_as_own_teacher", "fisher_p_follows_own_teacher"]


def family_summary(models: list[ModelDrift]) -> list[dict]:
    """Per family (T, E, S_T, S_E; those present): how many models drift, the fraction with its
    exact (Clopper-Pearson) 95 % interval, Fisher's exact two-sided p of its drift count against
    the teachers' (the unit is the model: with one ensemble the smallest p is 1/(k + 1)), and for
    single-teacher students how many share their own teacher's verdict, with Fisher's exact
    one-sided p that a student drifts more often where its teacher drifts (the 2 x 2 table of
    teacher / student verdicts over the seeds; 8 agreeing seeds with 5 drifting give 1/56)."""
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
        same = follows = None
        if family == "S_T":
            pairs = [(m, by_name.get(teacher_name(classify(m.model)[2]))) for m in members]
            same = f"{sum(t is not None and t.drifts == m.drifts for m, t in pairs)} of {len(pairs)}"
            known = [(t.drifts, m.drifts) for m, t in pairs if t is not None]
            if known:
                table = [[sum(t and s for t, s in known), sum(t and not s for t, s in known)],
                         [sum(s and not t for t, s in known), sum(not t and not s for t, s in known)]]
                follows = float(stats.fisher_exact(table, alternative="greater").pvalue)
        rows.append({"family": family, "models": n, "drifting_models": k, "fraction": k / n,
                     "ci95_low": float(ci.low), "ci95_high": float(ci.high), "fisher_p_vs_teachers": fisher,
                     "same_verdict_as_own_teacher": same, "fisher_p_follows_own_teacher": follows})
    return rows


def write_summary(rows: list[dict], out: Path) -> None:
    write_table_csv(out, SUMMARY_HEADER, rows, ".3g")


def _span(values: list[float], spec: str = ".2f") -> str:
    """min-max of a replica quantity ("—" when none is finite), one figure when they round alike."""
    vals = [v for v in values if v == v]
    if not vals:
        return "—"
    lo, hi = format(min(vals), spec), format(max(vals), spec)
    return lo if lo == hi else f"{lo}–{hi}"


def _floats(reps: list[dict], column: str) -> list[float]:
    return [float(r[column]) if r.get(column) not in (None, "") else float("nan") for r in reps]


def markdown(rows: list[dict], models: list[ModelDrift], species: list[str], epochs: dict[str, str] | None = None) -> str:
    """The rule's verdicts as Markdown, one row per model with the replica figures behind them:
    replicas flagged per species, each species' first-last window TAE and its noise (ranges over
    the replicas), the mean TAE to all-atom of the first and the last window, pymbar's detected
    equilibration (ps); then, for single-teacher students, each beside its own teacher."""
    from kdcg.naming import classify, teacher_name

    by_model = _by_model(rows)
    epochs = epochs or {}
    head = ["model", "epochs", "replicas", "unstable", "flagged " + " / ".join(species)]
    for s in species:
        head += [f"{s} first-last TAE", f"{s} noise", f"{s} vs AA, first → last window"]
    head += ["pymbar equilibration (ps)", "drifts"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in models:
        reps = by_model[m.model]
        cells = [m.model, epochs.get(m.model, "—"), str(m.replicas), str(m.unstable),
                 " / ".join(str(m.flagged[s]) for s in species)]
        for s in species:
            first, last = _floats(reps, f"cdf_tae_aa_first_{s}"), _floats(reps, f"cdf_tae_aa_last_{s}")
            pairs = [(a, b) for a, b in zip(first, last) if a == a and b == b]
            means = (f"{sum(a for a, _ in pairs) / len(pairs):.2f} → {sum(b for _, b in pairs) / len(pairs):.2f}"
                     if pairs else "—")
            cells += [_span(_floats(reps, f"cdf_tae_first_last_{s}")), _span(_floats(reps, f"cdf_tae_noise_{s}")), means]
        cells += [_span(_floats(reps, "t_equilibration_detected_ps"), ".0f"), "yes" if m.drifts else "no"]
        lines.append("| " + " | ".join(cells) + " |")
    by_name = {m.model: m for m in models}
    students = [m for m in models if m.family == "S_T"]
    if students:
        lines += ["", "| single-teacher student | drifts | its teacher | drifts | same verdict |", "|---|---|---|---|---|"]
        for m in students:
            t = by_name.get(teacher_name(classify(m.model)[2]))
            t_drifts = "—" if t is None else ("yes" if t.drifts else "no")
            same = "—" if t is None else ("yes" if t.drifts == m.drifts else "no")
            lines.append(f"| {m.model} | {'yes' if m.drifts else 'no'} | {t.model if t else '—'} | {t_drifts} | {same} |")
    return "\n".join(lines) + "\n"


def read_epochs(path: Path) -> dict[str, str]:
    """model -> epochs trained, from a run's training.csv ({} when the file is absent)."""
    if not path.exists():
        return {}
    with open(path, newline="") as fh:
        return {r["model"]: r["epochs"] for r in csv.DictReader(fh) if r.get("epochs")}
