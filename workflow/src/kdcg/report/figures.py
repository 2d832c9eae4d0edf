"""The study's figures, in the paper's order, from the data ``kdcg.report.tables.collect`` gathers.

Every number drawn is read from a result file; a model or replica that could not give a
number (unstable, not computed) is named in the figure rather than left out. Energies are
drawn relative to a first value or with per-species means removed: models carry arbitrary
energy zeros.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from kdcg.analysis.distributions import QUANTITIES
from kdcg.naming import classify
from kdcg.variants import STUDENTS

log = logging.getLogger(__name__)

FAMILIES = ("T", "E", "S_T", "S_E")
FAMILY_COLOURS = {"T": "tab:blue", "E": "tab:orange", "S_T": "tab:green", "S_E": "tab:red"}
SPECIES_COLOURS = ("tab:purple", "tab:green", "tab:orange", "tab:blue", "tab:brown", "tab:pink")
QUANTITY_TITLES = {"rdf": "RDF", "adf": "ADF", "cdf": "CDF"}
QUANTITY_UNITS = {"rdf": "Å", "adf": "1", "cdf": "1"}  # sum |Δ| dx: g(r) dr, P(θ) dθ, p(r) dr
BASELINE_LABEL = "all-atom sampling noise (TAE of its two halves)"


def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=120)
    plt().close(fig)


def _grid(n: int, cols: int = 3, w: float = 4.2, h: float = 3.2):
    cols = max(1, min(cols, n))
    rows = int(np.ceil(n / cols))
    fig, axes = plt().subplots(rows, cols, figsize=(w * cols, h * rows), squeeze=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    return fig, list(axes.flat)[:n]


def groups(replicas) -> list[tuple[str, str]]:
    """(family, variant) in the paper's order: teachers, ensemble, S_T, S_E."""
    seen = []
    for r in sorted(replicas, key=lambda r: (FAMILIES.index(r["family"]), r["variant"])):
        if (r["family"], r["variant"]) not in seen:
            seen.append((r["family"], r["variant"]))
    return seen


def group_label(family: str, variant: str) -> str:
    return {"teacher": "T", "ensemble": "E"}.get(variant, f"{family} {variant[3:]}")


# --------------------------------------------------------------------------- Fig. 2


def snapshot_models(replicas) -> list[dict]:
    """Replica 1 of the first teacher, of the ensemble and of one S_E student (se_ei_ft_faa
    when present: per-bead energies and both forces), those that exist."""
    chosen = []
    teachers = sorted((r for r in replicas if r["family"] == "T"), key=lambda r: (r["seed"], r["replica"]))
    ensemble = sorted((r for r in replicas if r["family"] == "E"), key=lambda r: r["replica"])
    students = sorted((r for r in replicas if r["family"] == "S_E"),
                      key=lambda r: (r["variant"] != "se_ei_ft_faa", list(STUDENTS).index(r["variant"]), r["replica"]))
    for pool in (teachers, ensemble, students):
        if pool:
            chosen.append(pool[0])
    return chosen


def last_frame(replica: dict, species_names: list[str]) -> dict | None:
    """Positions wrapped into the box (A), species, box edges and time of the trajectory's last frame."""
    from kdcg.analysis.distributions import read_trajectory
    from kdcg.errors import InputError

    path = replica["folder"] / "trajectory.lammpstrj"
    try:
        traj = read_trajectory(path, species_names=species_names, dt_fs=replica["result"].get("timestep_fs"))
    except InputError as err:
        log.warning("no snapshot of %s replica %d: %s", replica["model"], replica["replica"], err)
        return None
    edges = np.diag(traj["cells"][-1])
    return {"R": np.mod(traj["R"][-1], edges), "species": np.asarray(traj["species"]), "edges": edges,
            "time_ps": float(traj["time_ps"][-1]) if traj.get("time_ps") is not None else None}


def fig_snapshots(data: dict, species_names: list[str], path: Path) -> list[str]:
    """The paper's Fig. 2: the CG box at the end of a run, beads coloured by species."""
    chosen = [(r, last_frame(r, species_names)) for r in snapshot_models(data["replicas"])]
    chosen = [(r, f) for r, f in chosen if f is not None]
    fig = plt().figure(figsize=(4.6 * max(1, len(chosen)), 4.8))
    titles = []
    for k, (r, frame) in enumerate(chosen):
        ax = fig.add_subplot(1, len(chosen), k + 1, projection="3d")
        for s, name in enumerate(species_names):
            sel = frame["species"] == s + 1
            ax.scatter(*frame["R"][sel].T, s=14, color=SPECIES_COLOURS[s % len(SPECIES_COLOURS)], label=name,
                       depthshade=True, edgecolors="none")
        ex, ey, ez = frame["edges"]
        for a, b in (((0, 0, 0), (ex, 0, 0)), ((0, 0, 0), (0, ey, 0)), ((0, 0, 0), (0, 0, ez)),
                     ((ex, ey, ez), (0, ey, ez)), ((ex, ey, ez), (ex, 0, ez)), ((ex, ey, ez), (ex, ey, 0))):
            ax.plot(*zip(a, b), color="grey", lw=0.5)
        ax.set_xlabel("x (Å)", fontsize=7)
        ax.set_ylabel("y (Å)", fontsize=7)
        ax.set_zlabel("z (Å)", fontsize=7, labelpad=-2)
        ax.set_box_aspect(None, zoom=0.85)
        ax.tick_params(labelsize=6)
        when = f"t = {frame['time_ps']:.1f} ps" if frame["time_ps"] is not None else "last frame"
        title = f"{r['model']} replica {r['replica']}, {when} ({r['result']['status']})"
        ax.set_title(title, fontsize=8, color="black" if r["result"]["status"] == "stable" else "red")
        titles.append(title)
        if k == 0:
            ax.legend(fontsize=7, loc="upper left")
    if not chosen:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no trajectory to show", ha="center", va="center", transform=ax.transAxes)
        ax.axis("off")
    fig.suptitle("CG boxes at the end of their runs (beads wrapped into the box)", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return titles


# --------------------------------------------------------------------------- Fig. 3 and training


def _force_metric(metrics: dict, key: str) -> float:
    v = metrics.get("test_forces_vs_aa", {}).get(key)
    return np.nan if v is None else float(v)


def fig_training(data: dict, path: Path) -> None:
    """Test-split force errors of every model against the mapped AA forces."""

    models = list(data["metrics"])
    fig, axes = plt().subplots(1, 3, figsize=(max(8, 0.35 * len(models) + 4), 4.2), sharex=True)
    for ax, key, label in zip(axes, ("mae", "rmse", "r2"),
                              ("force MAE (kcal/mol/Å)", "force RMSE (kcal/mol/Å)", "force R² (1)")):
        vals = [_force_metric(data["metrics"][m], key) for m in models]
        ax.bar(range(len(models)), vals, color=[FAMILY_COLOURS[classify(m)[0]] for m in models])
        ax.set_ylabel(label)
        ax.set_xticks(range(len(models)), models, rotation=90, fontsize=6)
    fig.suptitle("Test-split force errors against the mapped all-atom forces")
    fig.tight_layout()
    _save(fig, path)


def teacher_rdfs(data: dict, key: str) -> dict[int, tuple[np.ndarray, int, int]]:
    """Per teacher seed: the RDF ``key`` averaged over its replicas that have one, with the
    count of those and of all its replicas."""
    out = {}
    for seed in sorted({r["seed"] for r in data["replicas"] if r["family"] == "T"}):
        members = [r for r in data["replicas"] if r["family"] == "T" and r["seed"] == seed]
        curves = [r["analysis"]["rdf"][key] for r in members if "rdf" in r["analysis"]]
        out[seed] = (np.mean(curves, axis=0) if curves else None, len(curves), len(members))
    return out


def fig_teachers(data: dict, reference: dict, path: Path) -> None:
    """The paper's Fig. 3: each teacher seed's test force errors, and each seed's RDFs in CG MD
    against all-atom (Teacher 1 vs Teacher 8 in the paper)."""

    teachers = sorted((m for m in data["metrics"] if classify(m)[0] == "T"), key=lambda m: classify(m)[2])
    seeds = [classify(m)[2] for m in teachers]
    keys = list(reference["rdf"])
    r_A = np.asarray(reference["grids"]["rdf"]["r_A"])
    fig, axes = _grid(3 + len(keys))
    cmap = plt().get_cmap("tab10")
    for ax, key, label in zip(axes[:3], ("mae", "rmse", "r2"),
                              ("force MAE (kcal/mol/Å)", "force RMSE (kcal/mol/Å)", "force R² (1)")):
        vals = [_force_metric(data["metrics"][m], key) for m in teachers]
        bars = ax.bar(range(len(seeds)), vals, color=[cmap(k % 10) for k in range(len(seeds))])
        ax.bar_label(bars, fmt="%.3g", fontsize=6)
        ax.set_xticks(range(len(seeds)), [f"seed {s}" for s in seeds], fontsize=7, rotation=45)
        ax.set_ylabel(label)
        ax.set_title(f"teachers' test-split {key.upper() if key != 'r2' else 'R²'} vs AA forces", fontsize=8)
    for ax, key in zip(axes[3:], keys):
        ax.plot(r_A, reference["rdf"][key], color="black", lw=2, label="all-atom")
        for k, (seed, (g, n, total)) in enumerate(teacher_rdfs(data, key).items()):
            if g is None:
                ax.plot([], [], color=cmap(k % 10), ls=":", label=f"teacher {seed} (0 of {total} stable)")
            else:
                ax.plot(r_A, g, color=cmap(k % 10), lw=1, label=f"teacher {seed} ({n} of {total} replicas)")
        ax.set_xlabel("r (Å)")
        ax.set_ylabel("g(r)")
        ax.set_title(f"{key} RDF per teacher seed (CG MD)", fontsize=8)
    if len(axes) > 3:
        axes[3].legend(fontsize=6)
    fig.suptitle("Teachers by seed: force errors on the test split, and structure in CG MD", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def fig_loss(data: dict, path: Path) -> dict[str, int]:
    """Training and validation loss per epoch of every model (one panel per family). Returns the
    number of curves drawn per family."""

    families = [f for f in ("T", "S_T", "S_E") if any(classify(m)[0] == f for m in data["metrics"])]
    fig, axes = _grid(max(1, len(families)), cols=3, w=5.0, h=3.8)
    cmap = plt().get_cmap("tab10")
    drawn = {}
    for ax, family in zip(axes, families):
        models = [m for m in data["metrics"] if classify(m)[0] == family]
        variants = list(dict.fromkeys(classify(m)[1] for m in models))
        labelled = set()
        drawn[family] = 0
        for m in models:
            history = data["metrics"][m].get("loss_history") or []
            if not history:
                continue
            _, variant, seed = classify(m)
            colour = cmap((variants.index(variant) if family != "T" else (seed or 0)) % 10)
            epochs = [h["epoch"] + 1 for h in history]
            name = variant if family != "T" else m
            ax.plot(epochs, [h["train"] for h in history], color=colour, lw=1,
                    label=None if name in labelled else name)
            ax.plot(epochs, [h["valid"] for h in history], color=colour, lw=1, ls="--")
            labelled.add(name)
            drawn[family] += 1
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (RMSE + MAE per term, weighted)")
        ax.set_title(f"{family}: {drawn[family]} models (solid train, dashed validation)", fontsize=8)
        if drawn[family]:
            ax.legend(fontsize=6)
    fig.suptitle("Loss per epoch", fontsize=10)
    fig.tight_layout()
    _save(fig, path)
    return drawn


# --------------------------------------------------------------------------- Figs. 4-6, 8: TAE


def _mean_std(values):
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return np.nan, 0.0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def _tae_axes(ax, reference: dict, quantity: str, key: str, x, labels, tops) -> None:
    """Bar labels, units, title, and the all-atom sampling noise of this key as a dashed line.
    ``tops``: each bar's mean + std; the axis ends above the highest (and above the noise line),
    with room for the legend, so that no bar or error bar is cut off."""
    noise = (reference.get("sampling_noise_tae") or {}).get(quantity, {}).get(key)
    if noise is not None:
        ax.axhline(noise, color="black", ls="--", lw=0.8, label=BASELINE_LABEL)
    highest = np.nanmax(np.append(np.asarray(tops, dtype=float), noise or 0.0))  # 0 when nothing is finite
    if highest > 0:
        ax.set_ylim(0.0, 1.18 * highest)
    ax.set_xticks(x, labels, rotation=90, fontsize=6)
    ax.set_ylabel(f"TAE of the {QUANTITY_TITLES[quantity]} ({QUANTITY_UNITS[quantity]})")
    ax.set_title(key, fontsize=8)


def fig_tae(data: dict, summary: list, reference: dict, quantity: str, path: Path) -> list[str]:
    """TAE against all-atom: one panel per key, one labelled bar per variant (mean ± std over
    replicas, and seeds for T and S_T), the all-atom reference's sampling noise as a dashed line.
    Returns the bar labels, which carry the unstable and not-equilibrated counts."""
    keys = list(reference[quantity])
    order = groups(data["replicas"])
    table = {(row[0], row[1], row[3]): (row[4], row[5]) for row in summary if row[2] == quantity}
    counts = {(row[0], row[1]): (row[7], row[8], row[9]) for row in summary}
    labels = []
    for family, variant in order:
        bad, total, not_eq = counts.get((family, variant), (0, 0, 0))
        notes = ([f"{bad}/{total} unstable"] if bad else []) + ([f"{not_eq}/{total} not eq."] if not_eq else [])
        labels.append(group_label(family, variant) + (f"\n({', '.join(notes)})" if notes else ""))
    fig, axes = _grid(len(keys), cols=3, w=max(4.2, 0.45 * len(order) + 1.5), h=3.6)
    x = np.arange(len(order))
    for ax, key in zip(axes, keys):
        means = [table.get((f, v, key), (None, None)) for f, v in order]
        m = np.array([np.nan if a is None else a for a, _ in means])
        s = np.array([0.0 if b is None else b for _, b in means])
        ax.bar(x, m, yerr=s, capsize=2, color=[FAMILY_COLOURS[f] for f, _ in order], edgecolor="black", linewidth=0.3)
        for xi, mi in zip(x, m):
            if not np.isfinite(mi):  # no stable replica: say so where its bar would be
                ax.text(xi, 0, "unstable", rotation=90, ha="center", va="bottom", fontsize=6, color="red")
        _tae_axes(ax, reference, quantity, key, x, labels, m + s)
    _finish_tae_figure(fig, axes, reference, quantity, "total absolute error against all-atom, mean ± std over "
                       "replicas (and teacher seeds for T, S_T)", path)
    return labels


def per_model_tae(data: dict, quantity: str, key: str, models: list[str]) -> list[tuple[float, float, int, int]]:
    """Per model: TAE mean, std over its stable replicas, their count and its replica count."""
    out = []
    for model in models:
        members = [r for r in data["replicas"] if r["model"] == model]
        values = [(r["analysis"].get("tae") or {}).get(quantity, {}).get(key) for r in members]
        values = [v for v in values if v is not None]
        mean, std = _mean_std(values)
        out.append((mean, std, len(values), len(members)))
    return out


def fig_tae_per_seed(data: dict, reference: dict, quantity: str, path: Path) -> list[str]:
    """The SI's per-seed TAE bars (S11, S12, S37, S38): every teacher and every single-teacher
    student by seed, mean ± std over its replicas, with the all-atom sampling noise."""

    seeded = sorted({r["model"] for r in data["replicas"] if r["family"] in ("T", "S_T")},
                    key=lambda m: (FAMILIES.index(classify(m)[0]), classify(m)[1], classify(m)[2]))
    keys = list(reference[quantity])
    fig, axes = _grid(len(keys), cols=3, w=max(4.2, 0.3 * len(seeded) + 1.5), h=3.6)
    variants = list(dict.fromkeys(classify(m)[1] for m in seeded))
    cmap = plt().get_cmap("tab10")
    labels = [m.replace("student-", "") for m in seeded]
    for ax, key in zip(axes, keys):
        stats = per_model_tae(data, quantity, key, seeded)
        x = np.arange(len(seeded))
        ax.bar(x, [s[0] for s in stats], yerr=[s[1] for s in stats], capsize=2, edgecolor="black", linewidth=0.3,
               color=[cmap(variants.index(classify(m)[1]) % 10) for m in seeded])
        for xi, (mean, _, n, total) in zip(x, stats):
            if not np.isfinite(mean):
                ax.text(xi, 0, f"0/{total} stable", rotation=90, ha="center", va="bottom", fontsize=6, color="red")
        _tae_axes(ax, reference, quantity, key, x, labels, [mean + std for mean, std, _, _ in stats])
    if not seeded:
        for ax in axes:
            ax.text(0.5, 0.5, "no seeded models", ha="center", va="center", transform=ax.transAxes)
    _finish_tae_figure(fig, axes, reference, quantity, "TAE per seed: teachers and single-teacher students, "
                       "mean ± std over replicas", path)
    return labels


def _finish_tae_figure(fig, axes, reference, quantity, title, path) -> None:
    """The sampling-noise baseline's legend, the title and the PNG of a TAE figure."""
    if axes and (reference.get("sampling_noise_tae") or {}).get(quantity):
        axes[0].legend(fontsize=6, loc="upper left")  # the baseline's entry
    fig.suptitle(f"{QUANTITY_TITLES[quantity]} {title}", fontsize=9)
    fig.tight_layout()
    _save(fig, path)


# --------------------------------------------------------------------------- distributions


def fig_overlay(data: dict, reference: dict, quantity: str, path: Path) -> None:
    keys = list(reference[quantity])
    grid = reference["grids"][quantity]
    x = np.asarray(grid["r_A"] if "r_A" in grid else grid["theta_deg"])
    fig, axes = _grid(len(keys))
    for ax, key in zip(axes, keys):
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
        ax.set_xlabel("θ (deg)" if quantity == "adf" else ("merge distance (Å)" if quantity == "cdf" else "r (Å)"))
        ax.set_ylabel({"rdf": "g(r)", "adf": "P(θ) (1/deg)", "cdf": "density (1/Å)"}[quantity])
    axes[0].legend(fontsize=7)
    fig.suptitle({"rdf": "Radial distribution functions", "adf": "Angular distribution functions",
                  "cdf": "Cluster (single-linkage merge distance) distributions"}[quantity] + ", mean over stable replicas")
    fig.tight_layout()
    _save(fig, path)


# --------------------------------------------------------------------------- Fig. 7, S2


def drift_verdicts(members: list[dict], species: str) -> dict:
    """Over all replicas of a family: how many drift in this species' CDF, how many are steady,
    and how many have no time-resolved CDF at all (too short or unstable before the first window)."""
    drifting = steady = missing = 0
    for r in members:
        d = ((r["analysis"].get("cdf_windows") or {}).get("drift") or {}).get(species)
        if d is None:
            missing += 1
        elif d["drifting"]:
            drifting += 1
        else:
            steady += 1
    return {"drifting": drifting, "steady": steady, "no_cdf": missing, "total": len(members)}


def fig_cdf_time(data: dict, reference: dict, path: Path) -> list[str]:
    """Time-resolved CDFs per species (columns) for every family (rows): one replica each, the
    one that drifts furthest where any of the family's drifts (else the first stable one with
    windows), titled with the drift verdict of all the family's replicas. Returns the titles."""
    species = list(reference["cdf"])
    x = np.asarray(reference["grids"]["cdf"]["r_A"])
    rows = []
    for family in FAMILIES:
        members = [r for r in data["replicas"] if r["family"] == family]
        if not members:
            continue
        with_windows = [r for r in members if r["analysis"].get("cdf_windows")]
        def drift(r) -> float:  # the replica's largest first-to-last CDF TAE over drifting species
            return max((d["tae_first_last"] for d in r["analysis"]["cdf_windows"]["drift"].values()
                        if d and d.get("drifting")), default=-1.0)

        with_windows.sort(key=lambda r: (-drift(r), r["result"]["status"] != "stable"))
        rows.append((family, members, with_windows[0] if with_windows else None))
    fig, axes = plt().subplots(max(1, len(rows)), len(species), figsize=(4 * len(species), 2.9 * max(1, len(rows))),
                               squeeze=False)
    cmap = plt().get_cmap("viridis")
    titles = []
    for row_axes, (family, members, rep) in zip(axes, rows):
        for ax, s in zip(row_axes, species):
            v = drift_verdicts(members, s)
            verdict = f"{family}, {s}: drifting in {v['drifting']} of {v['total']} replicas" + (
                f" ({v['no_cdf']} without CDF windows)" if v["no_cdf"] else "")
            ax.plot(x, reference["cdf"][s], color="black", lw=2, label="all-atom")
            if rep is None:
                ax.text(0.5, 0.5, "no replica with CDF windows", ha="center", va="center", color="red",
                        transform=ax.transAxes)
            else:
                wins = rep["analysis"]["cdf_windows"]
                for k, w in enumerate(wins["windows"]):
                    ax.plot(x, w["cdf"][s], color=cmap(k / max(1, len(wins["windows"]) - 1)), lw=1,
                            label=f"{w['t_start_ps']:.1f}-{w['t_end_ps']:.1f} ps")
                d = wins["drift"][s]
                verdict += (f"\nshown: {rep['model']} r{rep['replica']}, " + ("DRIFTING" if d["drifting"] else "steady")
                            + f" (TAE first-last {d['tae_first_last']:.2f})")
            ax.set_title(verdict, fontsize=7, color="red" if v["drifting"] else "black")
            ax.set_xlabel("merge distance (Å)")
            ax.set_ylabel("density (1/Å)")
            titles.append(verdict)
        row_axes[0].legend(fontsize=6)
    fig.tight_layout()
    _save(fig, path)
    return titles


# --------------------------------------------------------------------------- Fig. S1


def read_aa_energy(path: Path | None) -> dict[str, dict[str, np.ndarray]]:
    """Per GROMACS stage: time (ps) and potential (kcal/mol) from ``kdcg aa-energy``'s CSV."""
    if path is None or not Path(path).is_file():
        return {}
    out: dict[str, dict[str, list]] = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            s = out.setdefault(row["stage"], {"time_ps": [], "potential_kcal_mol": []})
            s["time_ps"].append(float(row["time_ps"]))
            s["potential_kcal_mol"].append(float(row["potential_kcal_mol"]))
    return {k: {q: np.asarray(v) for q, v in s.items()} for k, s in out.items()}


def fig_energy(data: dict, path: Path, aa_energy: Path | None = None) -> None:
    """The paper's Fig. S1: potential energy relative to its first value, per family, with the
    configured (solid black) and detected (dashed) equilibration times; the all-atom
    equilibration and production first."""
    from kdcg.analysis.distributions import read_thermo

    aa = read_aa_energy(aa_energy)
    panels = (["AA"] if aa else []) + list(FAMILIES)
    fig, axes = plt().subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, family in zip(axes[0], panels):
        if family == "AA":
            offset, first = 0.0, None
            for stage in ("nvt_equil", "nvt_prod"):
                if stage not in aa:
                    continue
                t, pe = aa[stage]["time_ps"], aa[stage]["potential_kcal_mol"]
                first = pe[0] if first is None else first
                ax.plot(t - t[0] + offset, pe - first, lw=0.7, label={"nvt_equil": "NVT equilibration",
                                                                      "nvt_prod": "NVT production"}[stage])
                offset += t[-1] - t[0]
            ax.set_title("all-atom (GROMACS)", fontsize=8)
            ax.legend(fontsize=6)
            ax.set_xlabel("t (ps)")
            ax.set_ylabel("PE − PE(t=0) (kcal/mol)")
            continue
        configured = None
        for r in data["replicas"]:
            if r["family"] != family or not r["thermo"].is_file() or r["thermo"].stat().st_size == 0:
                continue
            th = read_thermo(r["thermo"])
            stable = r["result"]["status"] == "stable"
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
        ax.set_title(f"{family}: CG MD (black: configured equilibration, dashed: pymbar's; red x: unstable)", fontsize=6)
        ax.set_xlabel("t (ps)")
        ax.set_ylabel("PE − PE(t=0) (kcal/mol)")
    fig.tight_layout()
    _save(fig, path)


# --------------------------------------------------------------------------- Fig. S3


def energy_agreement(data: dict) -> list[dict]:
    """Per student variant: R² of per-bead and of system energies against its teacher's labels
    (per-species means removed), mean ± std over seeds for S_T."""

    rows = []
    by_variant: dict[tuple[str, str], list] = {}
    for model, m in data["metrics"].items():
        family, variant, _ = classify(model)
        if family in ("S_T", "S_E"):
            by_variant.setdefault((family, variant), []).append(m.get("test_energies_vs_teacher_offset_free"))
    for (family, variant), records in sorted(by_variant.items(), key=lambda kv: (FAMILIES.index(kv[0][0]), kv[0][1])):
        have = [r for r in records if r]
        bead = _mean_std([r["bead_energies"]["r2"] for r in have])
        system = _mean_std([r["energy"]["r2"] for r in have])
        rows.append({"family": family, "variant": variant, "n_models": len(records), "n_with_metrics": len(have),
                     "bead_r2": bead, "energy_r2": system})
    return rows


def fig_energy_r2(data: dict, path: Path) -> list[dict]:
    """The paper's Fig. S3: students' energies against their teachers' labels on the test split."""
    rows = energy_agreement(data)
    fig, axes = plt().subplots(1, 2, figsize=(max(8, 0.8 * len(rows) + 4), 4.2), squeeze=False)
    x = np.arange(len(rows))
    names = [f"{r['family']} {r['variant'][3:]}" + (f"\n({r['n_with_metrics']}/{r['n_models']} computed)"
                                                    if r["n_with_metrics"] < r["n_models"] else "") for r in rows]
    for ax, key, title in zip(axes[0], ("bead_r2", "energy_r2"),
                              ("per-bead energies e_i (per-species mean removed)", "system energy E (mean removed)")):
        means = [r[key][0] for r in rows]
        bars = ax.bar(x, means, yerr=[r[key][1] for r in rows], capsize=2, edgecolor="black", linewidth=0.3,
                      color=[FAMILY_COLOURS[r["family"]] for r in rows])
        ax.bar_label(bars, fmt="%.2f", fontsize=6)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xticks(x, names, rotation=90, fontsize=7)
        ax.set_ylabel("R² against the teacher's labels (1)")
        ax.set_title(title, fontsize=8)
    fig.suptitle("Students' energies against their teachers' labels, test split (S_T: mean ± std over seeds)",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return rows


# --------------------------------------------------------------------------- stability


def fig_stability(data: dict, path: Path) -> None:
    from matplotlib.colors import ListedColormap

    models = list(dict.fromkeys(r["model"] for r in data["replicas"]))
    n_rep = max(r["replica"] for r in data["replicas"])
    grid = np.full((len(models), n_rep), np.nan)
    for r in data["replicas"]:
        grid[models.index(r["model"]), r["replica"] - 1] = r["result"]["status"] == "stable"
    # wide enough for the title's two lines beside a few replicas
    fig, ax = plt().subplots(figsize=(max(3.2, 1.2 + 0.45 * n_rep), 1.2 + 0.22 * len(models)))
    ax.imshow(grid, cmap=ListedColormap(["tab:red", "tab:green"]), vmin=0, vmax=1, aspect="auto")
    for i, j in zip(*np.nonzero(grid == 0)):
        ax.text(j, i, "✗", ha="center", va="center", color="white", fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=6)
    ax.set_xticks(range(n_rep), [str(k + 1) for k in range(n_rep)])
    ax.set_xlabel("replica")
    n_bad = int((grid == 0).sum())
    ax.set_title(f"MD stability: green stable, red unstable\n({n_bad} of {int(np.isfinite(grid).sum())} replicas unstable)",
                 fontsize=8)
    fig.tight_layout()
    _save(fig, path)


#: every figure, in the paper's order, with the report section it belongs to
FIGURES = {
    "snapshots.png": "1. CG boxes after MD (Fig. 2)",
    "teachers.png": "2. Training (Fig. 3)",
    "loss.png": "2. Training (Fig. 3)",
    "training.png": "2. Training (Fig. 3)",
    **{f"tae_{q}.png": "3. TAE against all-atom (Figs. 4-6, 8)" for q in QUANTITIES},
    **{f"tae_{q}_per_seed.png": "3. TAE against all-atom (Figs. 4-6, 8)" for q in QUANTITIES},
    **{f"{q}.png": "4. Distributions against all-atom" for q in QUANTITIES},
    "cdf_time.png": "5. Time-resolved CDFs (Fig. 7, S2)",
    "energy.png": "6. Potential energy (Fig. S1)",
    "energy_r2.png": "7. Students' energies (Fig. S3)",
    "stability.png": "8. MD stability",
}


def draw_all(data: dict, summary: list, reference: dict, figures_dir: Path, aa_energy: Path | None = None) -> None:
    figs = Path(figures_dir)
    figs.mkdir(parents=True, exist_ok=True)
    fig_snapshots(data, list(reference["species_names"]), figs / "snapshots.png")
    fig_teachers(data, reference, figs / "teachers.png")
    fig_loss(data, figs / "loss.png")
    fig_training(data, figs / "training.png")
    for q in QUANTITIES:
        fig_tae(data, summary, reference, q, figs / f"tae_{q}.png")
        fig_tae_per_seed(data, reference, q, figs / f"tae_{q}_per_seed.png")
        fig_overlay(data, reference, q, figs / f"{q}.png")
    fig_cdf_time(data, reference, figs / "cdf_time.png")
    fig_energy(data, figs / "energy.png", aa_energy)
    fig_energy_r2(data, figs / "energy_r2.png")
    fig_stability(data, figs / "stability.png")
