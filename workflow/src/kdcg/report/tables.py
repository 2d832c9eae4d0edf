"""Tables and figures of the whole study, from the files the earlier stages wrote.

Families, as in the paper: T (teachers), E (the teacher ensemble), S_T (students of single
teachers, one per teacher seed) and S_E (students of the ensemble labels). Every number in a
table or figure is read from a result file; unstable replicas are listed and marked, never
dropped silently.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from kdcg.report import figures
from kdcg.analysis import findings as _findings
from kdcg.cg import structure
from kdcg.analysis.distributions import QUANTITIES, load_json
from kdcg.errors import InputError
from kdcg.naming import classify
from kdcg.report.figures import FAMILIES, groups as _groups

log = logging.getLogger(__name__)

FIGURES = tuple(figures.FIGURES)
TABLES = ("tae.csv", "tae_summary.csv", "findings.csv", "performance.csv", "training.csv", "stability.csv")


#: what the tables and figures read of a replica's result.json
REPORT_RESULT_KEYS = ("replica", "status", "step", "time_ps")


#: a mean's column -> the column of its spread (SD or SE): the mean is given to the spread's digits
SPREAD_OF = {"tae_mean": "tae_std", "ns_per_day_mean": "ns_per_day_std", "a_mean": "a_se", "b_mean": "b_se"}
#: significant digits of a lone value: a p-value (raw or Holm) 2, everything else 3
SIGNIFICANT = {"p_value": 2, "p_holm": 2}


def spread_decimals(spread: float) -> int | None:
    """Decimals that keep two significant digits of a spread (None: print as a lone value)."""
    if spread is None or not math.isfinite(spread) or spread <= 0:
        return None
    return max(0, 1 - math.floor(math.log10(spread)))


def significant(value: float, digits: int) -> str:
    """``value`` to ``digits`` significant digits, in plain notation where it is short."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = digits - 1 - math.floor(math.log10(abs(value)))
    return f"{round(value, decimals):.{max(0, decimals)}f}" if -4 <= decimals <= 6 else f"{value:.{digits - 1}e}"


def format_row(header: list[str], row: list) -> list:
    """Numbers to the digits they mean: a spread to two significant digits and its mean to the
    same decimals; lone values to three significant digits (SIGNIFICANT)."""
    values = dict(zip(header, row))
    decimals = {mean: spread_decimals(values.get(spread)) for mean, spread in SPREAD_OF.items()}
    decimals.update({spread: decimals[mean] for mean, spread in SPREAD_OF.items()})
    out = []
    for key, v in zip(header, row):
        if v is None:
            out.append("")
        elif isinstance(v, float) and decimals.get(key) is not None and math.isfinite(v):
            out.append(f"{v:.{decimals[key]}f}")
        elif isinstance(v, float):
            out.append(significant(v, SIGNIFICANT.get(key, 3)))
        else:
            out.append(v)
    return out


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows:
            w.writerow(format_row(header, row))


def _mean_std(values) -> tuple[float | None, float | None, int]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return None, None, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def collect(results: Path, models: list[str]) -> dict:
    """Every replica's result and analysis, every model's metrics."""
    replicas, metrics = [], {}
    for model in models:
        family, variant, seed = classify(model)
        mfile = results / "models" / model / "metrics.json"
        if mfile.is_file():
            metrics[model] = load_json(mfile, "training metrics")
        folders = sorted((results / "md" / model).glob("replica-*"), key=lambda p: int(p.name.split("-")[1]))
        if not folders:
            raise InputError(results / "md" / model, "no MD replicas")
        for folder in folders:
            res = load_json(folder / "result.json", "replica result", REPORT_RESULT_KEYS)
            ana = load_json(folder / "analysis.json", "replica analysis")
            thermo = folder / "thermo.csv"
            replicas.append({"model": model, "family": family, "variant": variant, "seed": seed,
                             "replica": res["replica"], "result": res, "analysis": ana, "thermo": thermo,
                             "folder": folder})
    return {"replicas": replicas, "metrics": metrics}


def tables(data: dict, aa_performance: Path, out: Path, reference: dict, findings_config: dict | None = None) -> dict:
    reps = data["replicas"]
    # tae.csv: long format; a replica without distributions (unstable) keeps one row with its status
    rows, tae_rows = [], []
    for r in reps:
        status = r["result"]["status"]
        tae = r["analysis"].get("tae") or {}
        if not tae:
            rows.append([r["model"], r["family"], r["variant"], r["seed"], r["replica"], status, None, None, None])
        for q in QUANTITIES:
            for key, value in tae.get(q, {}).items():
                row = [r["model"], r["family"], r["variant"], r["seed"], r["replica"], status, q, key, value]
                rows.append(row)
                tae_rows.append(row)
    _write_csv(out / "tae.csv", ["model", "family", "variant", "seed", "replica", "status", "quantity", "key", "tae"], rows)
    # tae_summary.csv: over replicas (E, S_E) and over seeds x replicas (T, S_T); every
    # variant has its rows, with no mean where all its replicas were unstable
    groups = defaultdict(list)
    n_total, n_unstable, n_not_eq = defaultdict(int), defaultdict(int), defaultdict(int)
    for r in reps:
        n_total[(r["family"], r["variant"])] += 1
        n_unstable[(r["family"], r["variant"])] += r["result"]["status"] != "stable"
        n_not_eq[(r["family"], r["variant"])] += (r["analysis"].get("equilibration") or {}).get("equilibrated") is False
    for row in tae_rows:
        groups[(row[1], row[2], row[6], row[7])].append(row[8])
    summary = []
    for family, variant in _groups(reps):
        for q in QUANTITIES:
            for key in reference[q]:
                mean, std, n = _mean_std(groups.get((family, variant, q, key), []))
                summary.append([family, variant, q, key, mean, std, n, n_unstable[(family, variant)],
                                n_total[(family, variant)], n_not_eq[(family, variant)]])
    _write_csv(out / "tae_summary.csv", ["family", "variant", "quantity", "key", "tae_mean", "tae_std", "n_replicas",
                                         "n_unstable", "n_total", "n_not_equilibrated"], summary)
    # performance.csv: the paper's Table 4
    perf_rows = []
    if Path(aa_performance).is_file():
        with open(aa_performance) as fh:
            for rec in csv.DictReader(fh, delimiter="\t"):
                if rec.get("stage") == "nvt_prod":
                    perf_rows.append(["model", "all-atom (GROMACS)", "AA", "", 1, float(rec["ns_per_day"]), None, None])
    by_model = defaultdict(list)
    for r in reps:
        by_model[r["model"]].append(r)
    family_rates = defaultdict(list)
    for model, rs in by_model.items():
        rates = [x["result"].get("ns_per_day") for x in rs]
        ms = [x["result"].get("ms_per_step") for x in rs]
        mean, std, n = _mean_std(rates)
        perf_rows.append(["model", model, rs[0]["family"], rs[0]["variant"], n, mean, std, _mean_std(ms)[0]])
        family_rates[rs[0]["family"]] += [x for x in rates if x is not None]
    for family in FAMILIES:
        if family_rates[family]:
            mean, std, n = _mean_std(family_rates[family])
            perf_rows.append(["family", family, family, "", n, mean, std, None])
    _write_csv(out / "performance.csv", ["level", "name", "family", "variant", "n_replicas", "ns_per_day_mean",
                                         "ns_per_day_std", "ms_per_step_mean"], perf_rows)
    # training.csv
    train_rows = []
    for model, m in data["metrics"].items():
        family, variant, seed = classify(model)
        aa = m.get("test_forces_vs_aa", {})
        t = m.get("test_forces_vs_teacher", {})
        train_rows.append([model, family, variant, seed, aa.get("mae"), aa.get("rmse"), aa.get("r2"), t.get("mae"),
                           t.get("rmse"), t.get("r2"), m.get("epochs")])
    _write_csv(out / "training.csv", ["model", "family", "variant", "seed", "force_mae_vs_aa", "force_rmse_vs_aa",
                                      "force_r2_vs_aa", "force_mae_vs_teacher", "force_rmse_vs_teacher",
                                      "force_r2_vs_teacher", "epochs"], train_rows)
    # stability.csv
    species = sorted({s for r in reps for s in (r["analysis"].get("cdf_windows") or {}).get("drift", {})})
    stab = []
    for r in reps:
        res, ana = r["result"], r["analysis"]
        drift = (ana.get("cdf_windows") or {}).get("drift", {})
        eq = ana.get("equilibration") or {}
        stab.append([r["model"], r["family"], r["variant"], r["seed"], r["replica"], res["status"], res["step"],
                     res["time_ps"], res.get("reason"), eq.get("t_detected_ps"), eq.get("t_used_ps"), eq.get("equilibrated"),
                     *[(drift.get(s) or {}).get("drifting") for s in species],
                     *[x for s in species for x in _drift_detail(ana, s, reference)]])
    _write_csv(out / "stability.csv", ["model", "family", "variant", "seed", "replica", "status", "step", "time_ps",
                                       "reason", "t_equilibration_detected_ps", "t_equilibration_used_ps", "equilibrated",
                                       *[f"cdf_drift_{s}" for s in species],
                                       *[f"cdf_{c}_{s}" for s in species for c in DRIFT_DETAIL]], stab)
    # findings.csv (and .md): the comparisons that test the paper's five findings
    write_findings(out, _findings.findings(reps, _findings.equivalence_margins(findings_config or {}, reference)))
    return {"summary": summary}


# per species, beside each drift flag: the first-last TAE and its noise (what the flag compares),
# and how far the first and the last window sit from the all-atom CDF (drift towards or away from it)
DRIFT_DETAIL = ("tae_first_last", "tae_noise", "tae_aa_first", "tae_aa_last")


def _drift_detail(analysis: dict, species: str, reference: dict) -> list:
    windows = (analysis.get("cdf_windows") or {}).get("windows") or []
    drift = ((analysis.get("cdf_windows") or {}).get("drift") or {}).get(species) or {}
    aa = (reference.get("cdf") or {}).get(species)
    if not windows or aa is None:
        return [drift.get("tae_first_last"), drift.get("tae_noise"), None, None]
    dr = analysis["grids"]["cdf"]["dr_A"]
    return [drift.get("tae_first_last"), drift.get("tae_noise"),
            structure.tae(windows[0]["cdf"][species], aa, dr), structure.tae(windows[-1]["cdf"][species], aa, dr)]


def write_findings(out: Path, rows: list[dict]) -> None:
    """findings.csv and findings.md (kdcg.analysis.findings)."""
    _write_csv(out / "findings.csv", _findings.HEADER, _findings.csv_rows(rows))
    (out / "findings.md").write_text(_findings.markdown(rows))


def summarize(results: Path, models: list[str], reference_path: Path, aa_performance: Path, tables_dir: Path,
              figures_dir: Path, aa_energy: Path | None = None, findings_config: dict | None = None) -> None:
    """Every table and figure; ``findings_config``: the config's findings section (how the
    findings are judged; the default margin is the AA sampling noise)."""
    data = collect(Path(results), models)
    reference = load_json(reference_path, "AA reference")
    out = tables(data, aa_performance, Path(tables_dir), reference, findings_config)
    figures.draw_all(data, out["summary"], reference, Path(figures_dir), aa_energy)
    n_bad = sum(r["result"]["status"] != "stable" for r in data["replicas"])
    log.info("%d models, %d replicas (%d unstable): tables in %s, figures in %s", len(models), len(data["replicas"]),
             n_bad, tables_dir, figures_dir)
