"""Tables and figures of the whole study, from the files the earlier stages wrote.

Families, as in the paper: T (teachers), E (the teacher ensemble), S_T (students of single
teachers, one per teacher seed) and S_E (students of the ensemble labels). Every number in a
table or figure is read from a result file; unstable replicas are listed and marked, never
dropped silently.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from .analysis import QUANTITIES, load_json
from .errors import InputError

log = logging.getLogger(__name__)

FAMILIES = ("T", "E", "S_T", "S_E")
FAMILY_COLOURS = {"T": "tab:blue", "E": "tab:orange", "S_T": "tab:green", "S_E": "tab:red"}
FIGURES = ("training.png", "tae_rdf.png", "tae_adf.png", "tae_cdf.png", "rdf.png", "adf.png", "cdf.png",
           "cdf_time.png", "energy.png", "stability.png")
TABLES = ("tae.csv", "tae_summary.csv", "performance.csv", "training.csv", "stability.csv")


def classify(model: str) -> tuple[str, str, int | None]:
    """(family, variant, seed) of a model name."""
    if model == "ensemble":
        return "E", "ensemble", None
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


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in rows:
            w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in row])


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
            res = load_json(folder / "result.json", "replica result")
            ana = load_json(folder / "analysis.json", "replica analysis")
            thermo = folder / "thermo.csv"
            replicas.append({"model": model, "family": family, "variant": variant, "seed": seed,
                             "replica": res["replica"], "result": res, "analysis": ana, "thermo": thermo})
    return {"replicas": replicas, "metrics": metrics}


def tables(data: dict, aa_performance: Path, out: Path, reference: dict) -> dict:
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
                     *[(drift.get(s) or {}).get("drifting") for s in species]])
    _write_csv(out / "stability.csv", ["model", "family", "variant", "seed", "replica", "status", "step", "time_ps",
                                       "reason", "t_equilibration_detected_ps", "t_equilibration_used_ps", "equilibrated",
                                       *[f"cdf_drift_{s}" for s in species]], stab)
    return {"summary": summary}


# --------------------------------------------------------------------------- figures


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _groups(reps) -> list[tuple[str, str]]:
    seen = []
    for r in sorted(reps, key=lambda r: (FAMILIES.index(r["family"]), r["variant"])):
        if (r["family"], r["variant"]) not in seen:
            seen.append((r["family"], r["variant"]))
    return seen


def fig_training(data, path):
    plt = _plt()
    models = list(data["metrics"])
    fig, axes = plt.subplots(1, 3, figsize=(max(8, 0.35 * len(models) + 4), 4.2), sharex=True)
    for ax, key, label in zip(axes, ("mae", "rmse", "r2"), ("force MAE (kcal/mol/Å)", "force RMSE (kcal/mol/Å)", "force R²")):
        vals = [data["metrics"][m].get("test_forces_vs_aa", {}).get(key, np.nan) for m in models]
        ax.bar(range(len(models)), vals, color=[FAMILY_COLOURS[classify(m)[0]] for m in models])
        ax.set_ylabel(label)
        ax.set_xticks(range(len(models)), models, rotation=90, fontsize=6)
    fig.suptitle("Test-split force errors against the mapped all-atom forces")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_tae(data, summary, quantity, path):
    plt = _plt()
    groups = _groups(data["replicas"])
    keys = list(dict.fromkeys(row[3] for row in summary if row[2] == quantity))
    table = {(row[0], row[1], row[3]): (row[4], row[5]) for row in summary if row[2] == quantity}
    unstable = {(row[0], row[1]): (row[7], row[8], row[9]) for row in summary}
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(keys) * max(1, len(groups)) / 6 + 4), 4.5))
    width = 0.8 / max(1, len(groups))
    for g, (family, variant) in enumerate(groups):
        means = [table.get((family, variant, k), (np.nan, 0))[0] for k in keys]
        stds = [table.get((family, variant, k), (0, 0))[1] for k in keys]
        means = [np.nan if m is None else m for m in means]
        stds = [0 if s is None else s for s in stds]
        bad, total, not_eq = unstable.get((family, variant), (0, 0, 0))
        notes = ([f"{bad}/{total} unstable"] if bad else []) + ([f"{not_eq}/{total} not equilibrated"] if not_eq else [])
        label = f"{family}: {variant}" + (f" ({', '.join(notes)})" if notes else "")
        shade = 0.35 + 0.65 * (g % 6) / 5 if family in ("S_T", "S_E") else 1.0
        x = np.arange(len(keys)) + g * width
        ax.bar(x, means, width, yerr=stds, capsize=2, label=label,
               color=FAMILY_COLOURS[family], alpha=shade, edgecolor="black", linewidth=0.3)
        for xi, m in zip(x, means):
            if not np.isfinite(m):  # no stable replica: say so where its bar would be
                ax.text(xi, 0, "unstable", rotation=90, ha="center", va="bottom", fontsize=5, color="red")
    ax.set_xticks(np.arange(len(keys)) + 0.4 - width / 2, keys, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"TAE of the {quantity.upper()} vs all-atom")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(f"{quantity.upper()} total absolute error: mean ± std over replicas (and teacher seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
    return labels


def fig_overlay(data, reference, quantity, path):
    plt = _plt()
    keys = list(reference[quantity])
    grid = reference["grids"][quantity]
    x = np.asarray(grid["r_A"] if "r_A" in grid else grid["theta_deg"])
    cols = min(3, len(keys))
    rows = int(np.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        ax.plot(x, reference[quantity][key], color="black", lw=2, label="all-atom")
        for family in FAMILIES:
            members = [r for r in data["replicas"] if r["family"] == family]
            curves = [r["analysis"][quantity][key] for r in members if quantity in r["analysis"]]
            if curves:
                ax.plot(x, np.mean(curves, axis=0), color=FAMILY_COLOURS[family], lw=1,
                        label=f"{family} ({len(curves)} of {len(members)} stable)")
            elif members:  # listed, with nothing to draw
                ax.plot([], [], color=FAMILY_COLOURS[family], lw=1, ls=":", label=f"{family} (0 of {len(members)} stable)")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("θ (deg)" if quantity == "adf" else "r (Å)")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle({"rdf": "Radial distribution functions", "adf": "Angular distribution functions",
                  "cdf": "Cluster (single-linkage merge distance) distributions"}[quantity] + ", mean over stable replicas")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_cdf_time(data, reference, path):
    """Time-resolved CDFs (the paper's Fig. 7) of the first stable replica of each family."""
    plt = _plt()
    species = list(reference["cdf"])
    x = np.asarray(reference["grids"]["cdf"]["r_A"])
    chosen = []
    for family in FAMILIES:
        members = [r for r in data["replicas"] if r["family"] == family]
        stable = [r for r in members if r["analysis"].get("cdf_windows")]
        if stable:
            chosen.append(stable[0])
        elif members:  # a row that says so, rather than no row
            chosen.append({"family": family, "unstable": len(members)})
    fig, axes = plt.subplots(max(1, len(chosen)), len(species), figsize=(4 * len(species), 2.8 * max(1, len(chosen))),
                             squeeze=False)
    cmap = plt.get_cmap("viridis")
    for row, r in zip(axes, chosen):
        if "unstable" in r:
            for ax in row:
                ax.text(0.5, 0.5, f"{r['family']}: no stable replica ({r['unstable']} unstable)", ha="center",
                        va="center", color="red", transform=ax.transAxes)
                ax.set_xlabel("merge distance (Å)")
            continue
        wins = r["analysis"]["cdf_windows"]
        for ax, s in zip(row, species):
            ax.plot(x, reference["cdf"][s], color="black", lw=2, label="all-atom")
            for k, w in enumerate(wins["windows"]):
                ax.plot(x, w["cdf"][s], color=cmap(k / max(1, len(wins["windows"]) - 1)), lw=1,
                        label=f"{w['t_start_ps']:.1f}-{w['t_end_ps']:.1f} ps")
            d = wins["drift"][s]
            ax.set_title(f"{r['model']} r{r['replica']} {s}: " + ("DRIFTING" if d["drifting"] else "steady")
                         + f" (TAE first-last {d['tae_first_last']:.2f})", fontsize=8, color="red" if d["drifting"] else "black")
            ax.set_xlabel("merge distance (Å)")
    if chosen:
        axes[0, 0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_energy(data, path):
    from .analysis import read_thermo

    plt = _plt()
    fig, axes = plt.subplots(1, len(FAMILIES), figsize=(4.5 * len(FAMILIES), 3.5), squeeze=False)
    for ax, family in zip(axes[0], FAMILIES):
        configured = None
        for r in data["replicas"]:
            if r["family"] != family or not r["thermo"].is_file() or r["thermo"].stat().st_size == 0:
                continue
            th = read_thermo(r["thermo"])
            stable = r["result"]["status"] == "stable"
            # relative to the first value: models carry arbitrary energy zeros
            line, = ax.plot(th["time_ps"], th["potential_kcal_mol"] - th["potential_kcal_mol"][0], lw=0.6,
                            color=None if stable else "red")
            eq = r["analysis"].get("equilibration")
            if eq:
                ax.axvline(eq["t_detected_ps"], color=line.get_color(), ls="--", lw=0.5)
                configured = eq["t_configured_ps"]
            if not stable and len(th["time_ps"]):
                ax.plot(th["time_ps"][-1], th["potential_kcal_mol"][-1] - th["potential_kcal_mol"][0], "x", color="red", ms=8)
        if configured is not None:
            ax.axvline(configured, color="black", lw=1.0)
        ax.set_title(f"{family}: potential energy (black: configured equilibration, dashed: pymbar's; red x: unstable)",
                     fontsize=6)
        ax.set_xlabel("t (ps)")
        ax.set_ylabel("PE − PE(t=0) (kcal/mol)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def fig_stability(data, path):
    plt = _plt()
    models = list(dict.fromkeys(r["model"] for r in data["replicas"]))
    n_rep = max(r["replica"] for r in data["replicas"])
    grid = np.full((len(models), n_rep), np.nan)
    for r in data["replicas"]:
        grid[models.index(r["model"]), r["replica"] - 1] = r["result"]["status"] == "stable"
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * n_rep, 1.0 + 0.22 * len(models)))
    from matplotlib.colors import ListedColormap

    ax.imshow(grid, cmap=ListedColormap(["tab:red", "tab:green"]), vmin=0, vmax=1, aspect="auto")
    for i, j in zip(*np.nonzero(grid == 0)):
        ax.text(j, i, "✗", ha="center", va="center", color="white", fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=6)
    ax.set_xticks(range(n_rep), [str(k + 1) for k in range(n_rep)])
    ax.set_xlabel("replica")
    n_bad = int((grid == 0).sum())
    ax.set_title(f"MD stability: green stable, red unstable ({n_bad} of {int(np.isfinite(grid).sum())})", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summarize(results: Path, models: list[str], reference_path: Path, aa_performance: Path, tables_dir: Path,
              figures_dir: Path) -> None:
    data = collect(Path(results), models)
    reference = load_json(reference_path, "AA reference")
    out = tables(data, aa_performance, Path(tables_dir), reference)
    figs = Path(figures_dir)
    figs.mkdir(parents=True, exist_ok=True)
    fig_training(data, figs / "training.png")
    for q in QUANTITIES:
        fig_tae(data, out["summary"], q, figs / f"tae_{q}.png")
        fig_overlay(data, reference, q, figs / f"{q}.png")
    fig_cdf_time(data, reference, figs / "cdf_time.png")
    fig_energy(data, figs / "energy.png")
    fig_stability(data, figs / "stability.png")
    n_bad = sum(r["result"]["status"] != "stable" for r in data["replicas"])
    log.info("%d models, %d replicas (%d unstable): tables in %s, figures in %s", len(models), len(data["replicas"]),
             n_bad, tables_dir, figures_dir)
