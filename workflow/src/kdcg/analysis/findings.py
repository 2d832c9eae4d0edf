"""The paper's five findings as numbers: the comparisons that test each one, from the replicas'
TAEs (tables/findings.csv).

A replica's score for a quantity (rdf, adf, cdf) is its TAE averaged over the quantity's keys
(species pairs, triplets x cut-offs, species). A group of replicas (a model, a family, a seed)
is summarised by the mean score, its standard error over replicas and the counts of unstable
replicas (no score) and of replicas whose time-resolved CDF drifts for any species. The
comparisons, one set per finding of the paper:

1. teachers differ by seed: the spread (max - min) of the seeds' mean scores, and a one-way
   ANOVA over seeds (p: the chance of that spread if all seeds sampled the same distribution);
2. the ensemble beats its teachers: E minus all teacher replicas pooled (Welch's t-test);
3. S_E students match the ensemble, S_T students mirror their teachers: se_ei_ft_faa minus E
   (Welch), and the Pearson correlation over seeds of each single-teacher variant's seed means
   with its teachers' seed means;
4. teacher forces help: se_ei_ft_faa minus se_ei_faa (and se_ei_ft minus se_ei_faa), Welch;
5. per-bead energies are the key target: se_ei_ft_faa minus se_ft_faa (no energy) and minus
   se_e_ft_faa (system energy only), Welch.

A negative difference means a lower TAE (closer to all-atom) for the first group. Comparisons
whose models a config did not train are left out.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy import stats

from kdcg.analysis.distributions import QUANTITIES
from kdcg.naming import ENSEMBLE, student_name, teacher_name

HEADER = ["finding", "comparison", "quantity", "a", "a_mean", "a_se", "a_n", "a_unstable", "a_drifting",
          "b", "b_mean", "b_se", "b_n", "b_unstable", "b_drifting", "statistic", "value", "p_value"]


def replica_scores(replicas: list[dict]) -> list[dict]:
    """Per replica: model, family, variant, seed, stable, drifting and {quantity: mean TAE over keys}."""
    out = []
    for r in replicas:
        tae = r["analysis"].get("tae") or {}
        drift = (r["analysis"].get("cdf_windows") or {}).get("drift", {})
        scores = {q: float(np.mean(list(tae[q].values()))) for q in QUANTITIES if tae.get(q)}
        out.append({"model": r["model"], "family": r["family"], "variant": r["variant"], "seed": r["seed"],
                    "stable": r["result"]["status"] == "stable", "scores": scores,
                    "drifting": any((d or {}).get("drifting") for d in drift.values())})
    return out


def group_stats(members: list[dict], quantity: str) -> dict:
    values = np.array([m["scores"][quantity] for m in members if quantity in m["scores"]], dtype=float)
    n = len(values)
    return {"mean": float(values.mean()) if n else None,
            "se": float(values.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
            "n": n, "values": values,
            "unstable": sum(not m["stable"] for m in members),
            "drifting": sum(bool(m["drifting"]) for m in members)}


def welch(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sided p of Welch's t-test; None with fewer than 2 values on a side."""
    if len(a) < 2 or len(b) < 2:
        return None
    p = stats.ttest_ind(a, b, equal_var=False).pvalue
    return float(p) if np.isfinite(p) else None


def _row(finding, comparison, quantity, a_name, a, b_name, b, statistic, value, p) -> list:
    b = b or {}
    return [finding, comparison, quantity, a_name, a["mean"], a["se"], a["n"], a["unstable"], a["drifting"],
            b_name, b.get("mean"), b.get("se"), b.get("n"), b.get("unstable"), b.get("drifting"), statistic, value, p]


def _difference(finding, comparison, quantity, a_name, a, b_name, b) -> list:
    diff = a["mean"] - b["mean"] if a["mean"] is not None and b["mean"] is not None else None
    return _row(finding, comparison, quantity, a_name, a, b_name, b, "difference a - b (Welch t-test)", diff,
                welch(a["values"], b["values"]))


def findings(replicas: list[dict]) -> list[list]:
    """Rows of tables/findings.csv (HEADER) for the models present."""
    scores = replica_scores(replicas)
    by_model, by_variant = defaultdict(list), defaultdict(list)
    for s in scores:
        by_model[s["model"]].append(s)
        by_variant[s["variant"]].append(s)
    teachers = {s["seed"]: [x for x in scores if x["family"] == "T" and x["seed"] == s["seed"]]
                for s in scores if s["family"] == "T"}
    rows = []
    for q in QUANTITIES:
        if not any(q in s["scores"] for s in scores):
            continue  # every replica unstable: nothing to compare
        # 1. teachers differ by seed
        if len(teachers) >= 2:
            per_seed = {k: group_stats(v, q) for k, v in sorted(teachers.items())}
            means = [g["mean"] for g in per_seed.values() if g["mean"] is not None]
            groups = [g["values"] for g in per_seed.values() if len(g["values"]) >= 2]
            p = None
            if len(groups) >= 2:
                p = float(stats.f_oneway(*groups).pvalue)
            pooled = group_stats(by_variant["teacher"], q)
            rows.append(_row(1, "teachers differ by seed", q, f"teachers ({len(per_seed)} seeds)",
                             pooled, None, None, "spread of seed means, max - min (one-way ANOVA over seeds)",
                             float(max(means) - min(means)) if len(means) >= 2 else None, p))
            for k, g in per_seed.items():
                rows.append(_row(1, "teacher of one seed", q, teacher_name(k), g, None, None, "", None, None))
        # 2. the ensemble against its teachers
        if by_model.get(ENSEMBLE) and by_variant.get("teacher"):
            rows.append(_difference(2, "ensemble vs its teachers", q, ENSEMBLE, group_stats(by_model[ENSEMBLE], q),
                                    "teachers (all seeds)", group_stats(by_variant["teacher"], q)))
        # 3. S_E students match the ensemble; S_T students mirror their teachers
        if by_variant.get("se_ei_ft_faa") and by_model.get(ENSEMBLE):
            rows.append(_difference(3, "S_E student vs the ensemble", q, "se_ei_ft_faa",
                                    group_stats(by_variant["se_ei_ft_faa"], q), ENSEMBLE,
                                    group_stats(by_model[ENSEMBLE], q)))
        for variant in sorted({s["variant"] for s in scores if s["family"] == "S_T"}):
            seeds = sorted({s["seed"] for s in by_variant[variant]} & set(teachers))
            st = [group_stats([s for s in by_variant[variant] if s["seed"] == k], q)["mean"] for k in seeds]
            tt = [group_stats(teachers[k], q)["mean"] for k in seeds]
            pairs = [(a, b) for a, b in zip(st, tt) if a is not None and b is not None]
            r = p = None
            if len(pairs) >= 3:
                res = stats.pearsonr(*zip(*pairs))
                r, p = float(res.statistic), float(res.pvalue)
            for k in seeds:
                rows.append(_row(3, "single-teacher student and its teacher, one seed", q, student_name(variant, k),
                                 group_stats([s for s in by_variant[variant] if s["seed"] == k], q), teacher_name(k),
                                 group_stats(teachers[k], q), "", None, None))
            rows.append(_row(3, "S_T students mirror their teachers", q, f"{variant} (per seed)",
                             group_stats(by_variant[variant], q), "its teachers (per seed)",
                             group_stats([s for k in seeds for s in teachers[k]], q),
                             f"Pearson r of seed means over {len(pairs)} seeds", r, p))
            if by_variant.get("se_ei_ft_faa") and variant == "st_ei_ft_faa":
                rows.append(_difference(3, "S_E vs S_T student, same loss", q, "se_ei_ft_faa",
                                        group_stats(by_variant["se_ei_ft_faa"], q), variant,
                                        group_stats(by_variant[variant], q)))
        # 4. teacher forces help; 5. per-bead energies are the key target
        for finding, a, b, comparison in (
                (4, "se_ei_ft_faa", "se_ei_faa", "with vs without teacher forces"),
                (4, "se_ei_ft", "se_ei_faa", "teacher forces vs AA forces (with e_i)"),
                (5, "se_ei_ft_faa", "se_ft_faa", "per-bead energies vs no energy"),
                (5, "se_ei_ft_faa", "se_e_ft_faa", "per-bead energies vs system energy"),
                (5, "se_e_ei_ft_faa", "se_e_ft_faa", "system + per-bead energies vs system energy")):
            if by_variant.get(a) and by_variant.get(b):
                rows.append(_difference(finding, comparison, q, a, group_stats(by_variant[a], q), b,
                                        group_stats(by_variant[b], q)))
    return rows


def markdown(rows: list[list]) -> str:
    """findings.csv as a Markdown table: means +- standard errors, differences with p."""
    def fmt(mean, se):
        if mean is None:
            return "—"
        return f"{mean:.3f} ± {se:.3f}" if se is not None else f"{mean:.3f}"

    lines = ["| # | comparison | quantity | a: mean TAE ± SE (n; unstable, drifting) | b | statistic | value | p |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = dict(zip(HEADER, r))
        a = f"{d['a']}: {fmt(d['a_mean'], d['a_se'])} ({d['a_n']}; {d['a_unstable']}, {d['a_drifting']})"
        b = "" if d["b"] is None else f"{d['b']}: {fmt(d['b_mean'], d['b_se'])} ({d['b_n']}; {d['b_unstable']}, {d['b_drifting']})"
        value = "" if d["value"] is None else f"{d['value']:+.3f}"
        p = "" if d["p_value"] is None else f"{d['p_value']:.2g}"
        lines.append(f"| {d['finding']} | {d['comparison']} | {d['quantity']} | {a} | {b} | {d['statistic']} | {value} | {p} |")
    return "\n".join(lines) + "\n"
