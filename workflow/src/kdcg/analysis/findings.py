"""The paper's five findings as tests with a verdict each (tables/findings.csv).

A replica's score for a quantity (rdf, adf, cdf) is its TAE averaged over the quantity's keys
(species pairs, triplets x cut-offs, species); a model's score is the mean of its stable
replicas' scores. Each row names its **unit**: "trained model" where the claim is about a
variant (a kind of model) and models are compared as such, "replica" where the row speaks only
about the models it names (their replicas measure those networks' MD noise, not the variant's
spread). Tests (kdcg.analysis.inference):

1. teachers differ by seed: the Alexander-Govern test over the teachers' replicas (unit:
   replica, within each model; robust to unequal variances); value: the SD of the seed means;
2. the ensemble beats its teachers: the prediction-interval t-test of the ensemble's score
   against the k teachers' (unit: trained model); separately, whether this ensemble beats the
   mean of these k teachers given replica noise (unit: replica);
3. S_E students match the ensemble (se_ei_ft_faa vs E: equivalence within the margin, TOST),
   S_E beats S_T with the same loss (se_ei_ft_faa vs st_ei_ft_faa over seeds, as in 2), and S_T
   students mirror their teachers (exact one-sided permutation test of Pearson's r over seeds);
4. teacher forces help: se_ei_ft_faa vs se_ei_faa, se_ei_ft vs se_ei_faa;
5. per-bead energies are the key target: se_ei_ft_faa vs se_ft_faa and vs se_e_ft_faa,
   se_e_ei_ft_faa vs se_e_ft_faa.
One model against one other (3a, 4, 5 as kdcg trains them: one model per S_E variant) is a
replica-unit test: it says whether these two networks differ, and nothing about the variants.
Holm's correction runs over every test of the table (every quantity; for an equivalence also
its test of a difference beyond the margin). Each verdict is reproduced, contradicted or not
resolved; "not resolved" carries the minimum detectable effect at 80 % power (mde_80: a
difference in TAE; for finding 1 the SD of seed means; for the mirror an r).

A negative difference means a lower TAE (closer to all-atom) for a. Comparisons whose models a
config did not train are left out.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kdcg.analysis import inference
from kdcg.analysis.distributions import QUANTITIES
from kdcg.errors import InputError
from kdcg.naming import ENSEMBLE, student_name, teacher_name

HEADER = ["finding", "claim", "comparison", "quantity", "unit", "a", "a_models", "a_replicas", "a_mean", "a_se",
          "a_unstable", "a_drifting", "b", "b_models", "b_replicas", "b_mean", "b_se", "b_unstable", "b_drifting",
          "test", "value", "margin", "p_value", "p_holm", "verdict", "mde_80"]
REPRODUCED, CONTRADICTED, NOT_RESOLVED = "reproduced", "contradicted", "not resolved"
MODEL_UNIT, REPLICA_UNIT = "trained model", "replica"


def replica_scores(replicas: list[dict]) -> list[dict]:
    """Per replica: model, family, variant, seed, stable, drifting and {quantity: mean TAE over keys}."""
    out = []
    for r in replicas:
        tae = r["analysis"].get("tae") or {}
        drift = (r["analysis"].get("cdf_windows") or {}).get("drift", {})
        scores = {q: float(np.mean(list(tae[q].values()))) for q in QUANTITIES if tae.get(q)}
        out.append({"model": r["model"], "family": r["family"], "variant": r["variant"], "seed": r["seed"],
                    "replica": r.get("replica"), "stable": r["result"]["status"] == "stable", "scores": scores,
                    "drifting": any((d or {}).get("drifting") for d in drift.values())})
    return out


def scores_from_tables(tae_csv: Path, stability_csv: Path) -> list[dict]:
    """replica_scores() from a run's tables/tae.csv and tables/stability.csv: a finished study is
    re-analysed without its MD."""
    def rows(path: Path) -> list[dict]:
        try:
            with open(path, newline="") as fh:
                return list(csv.DictReader(fh))
        except OSError as err:
            raise InputError(path, f"cannot be read: {err.strerror}") from None

    values = defaultdict(lambda: defaultdict(list))
    for row in rows(tae_csv):
        if row["tae"] not in ("", "None"):
            values[(row["model"], row["replica"])][row["quantity"]].append(float(row["tae"]))
    out = []
    for row in rows(stability_csv):
        key = (row["model"], row["replica"])
        drift = [v for k, v in row.items() if k.startswith("cdf_drift_")]
        out.append({"model": row["model"], "family": row["family"], "variant": row["variant"],
                    "seed": int(row["seed"]) if row["seed"] not in ("", "None") else None,
                    "replica": int(row["replica"]), "stable": row["status"] == "stable",
                    "scores": {q: float(np.mean(v)) for q, v in values[key].items()},
                    "drifting": any(v == "True" for v in drift)})
    if not out:
        raise InputError(stability_csv, "lists no replicas")
    return out


def equivalence_margins(findings_config: dict, reference: dict | None) -> dict[str, float]:
    """The equivalence margin per quantity (TAE units) the config fixed: the AA reference's own
    sampling noise averaged over the quantity's keys, or the fixed values."""
    how = findings_config.get("equivalence_margin", "aa_sampling_noise")
    if how == "fixed":
        if "fixed_margin_tae" not in findings_config:
            raise InputError(None, "config key 'findings.fixed_margin_tae' is needed when findings.equivalence_margin is fixed")
        return {q: float(findings_config["fixed_margin_tae"][q]) for q in QUANTITIES}
    noise = (reference or {}).get("sampling_noise_tae") or {}
    return {q: float(np.mean(list(noise[q].values()))) for q in QUANTITIES if noise.get(q)}


@dataclass
class Group:
    """Replicas of one or more models, by model."""

    name: str
    members: list[dict]
    quantity: str
    models: dict = field(init=False)

    def __post_init__(self):
        by_model = defaultdict(list)
        for m in self.members:
            if self.quantity in m["scores"]:
                by_model[m["model"]].append(m["scores"][self.quantity])
        self.models = {k: np.array(v) for k, v in sorted(by_model.items())}

    @property
    def model_means(self) -> np.ndarray:
        return np.array([v.mean() for v in self.models.values()])

    @property
    def replica_sets(self) -> list[np.ndarray]:
        return list(self.models.values())

    def describe(self, unit: str) -> list:
        """models, replicas, mean, standard error (in this unit), unstable, drifting."""
        means = self.model_means
        n_rep = sum(len(v) for v in self.models.values())
        mean = float(means.mean()) if len(means) else None
        se = None
        if unit == MODEL_UNIT and len(means) > 1:
            se = float(means.std(ddof=1) / np.sqrt(len(means)))
        elif unit == REPLICA_UNIT and means.size and all(len(v) > 1 for v in self.models.values()):
            se = float(np.sqrt(sum(v.var(ddof=1) / len(v) for v in self.models.values())) / len(self.models))
        return [len(self.models), n_rep, mean, se, sum(not m["stable"] for m in self.members),
                sum(bool(m["drifting"]) for m in self.members)]


def _row(finding, claim, comparison, quantity, unit, a: Group, b: Group | None, test="", value=None, margin=None,
         p=None, mde=None, kind="", p_beyond=None) -> dict:
    row = dict(zip(HEADER, [finding, claim, comparison, quantity, unit, a.name, *a.describe(unit),
                            b.name if b else None, *(b.describe(unit) if b else [None] * 6),
                            test, value, margin, p, None, "", mde]))
    row["_kind"], row["_p_beyond"] = kind, p_beyond
    return row


def _comparisons(finding, claim, comparison, q, a: Group, b: Group, kind: str, margin: float | None) -> list[dict]:
    """The tests of a vs b: at model level where both sides' model counts allow it (1 vs k:
    prediction interval; k vs m: Welch on means), at replica level where one side is a single
    model (these models only)."""
    rows = []
    ka, kb = len(a.models), len(b.models)
    if ka == 0 or kb == 0:
        return rows
    d = None
    if ka >= 2 and kb >= 2:
        d = inference.welch_on_means(a.model_means, b.model_means)
    elif ka == 1 and kb >= 2:
        d = inference.prediction_interval_test(float(a.model_means[0]), b.model_means)
    elif ka >= 2 and kb == 1:
        flipped = inference.prediction_interval_test(float(b.model_means[0]), a.model_means)
        d = flipped and inference.Difference(-flipped.value, flipped.se, flipped.df, flipped.p, flipped.test)
    if ka >= 2 or kb >= 2:
        rows.append(_test_row(finding, claim, comparison, q, MODEL_UNIT, a, b, d, kind, margin))
    if ka == 1:
        d = inference.replica_difference(a.replica_sets[0], b.replica_sets)
        rows.append(_test_row(finding, claim, f"{comparison}: these models", q, REPLICA_UNIT, a, b, d, kind, margin))
    return rows


def _test_row(finding, claim, comparison, q, unit, a, b, d, kind, margin) -> dict:
    if d is None:
        return _row(finding, claim, comparison, q, unit, a, b, "too few models or replicas", kind=kind)
    if kind == "equivalent" and margin is None:
        return _row(finding, claim, comparison, q, unit, a, b, f"no equivalence margin; {d.test}", d.value, kind=kind)
    if kind == "equivalent":
        p_equiv, p_beyond = inference.equivalence(d, margin)
        return _row(finding, claim, comparison, q, unit, a, b, f"TOST against +-margin; {d.test}", d.value, margin,
                    p_equiv, d.mde, kind, p_beyond)
    return _row(finding, claim, comparison, q, unit, a, b, d.test, d.value, None, d.p, d.mde, kind)


def findings(replicas: list[dict], margins: dict[str, float] | None = None, scored: bool = False) -> list[dict]:
    """Rows of tables/findings.csv (HEADER keys) for the models present; ``margins``: the
    equivalence margin per quantity (TAE units), fixed before the run; ``scored``: replicas are
    already replica_scores()."""
    scores = replicas if scored else replica_scores(replicas)
    margins = margins or {}
    by_model, by_variant = defaultdict(list), defaultdict(list)
    for s in scores:
        by_model[s["model"]].append(s)
        by_variant[s["variant"]].append(s)
    teacher_seeds = sorted({s["seed"] for s in scores if s["family"] == "T"})
    rows = []
    for q in QUANTITIES:
        if not any(q in s["scores"] for s in scores):
            continue  # every replica unstable: nothing to compare
        teachers = Group("teachers", by_variant["teacher"], q)
        # 1. teachers differ by seed
        if len(teachers.models) >= 2:
            res = inference.models_differ(teachers.replica_sets)
            rows.append(_row(1, "teachers differ by seed", "teacher seeds", q, REPLICA_UNIT, teachers, None,
                             "Alexander-Govern over seeds (replicas within each); value: SD of the seed means",
                             float(teachers.model_means.std(ddof=1)), None, res and res[0], res and res[1], "differ"))
            for k in teacher_seeds:
                rows.append(_row(1, "", "teacher of one seed", q, REPLICA_UNIT,
                                 Group(teacher_name(k), by_model[teacher_name(k)], q), None))
        ensemble = Group(ENSEMBLE, by_model.get(ENSEMBLE, []), q)
        # 2. the ensemble against its teachers
        rows += _comparisons(2, "the ensemble beats its teachers", "ensemble vs its teachers", q, ensemble,
                             teachers, "lower", None)
        # 3. S_E students match the ensemble; S_E beats S_T; S_T students mirror their teachers
        se = Group("se_ei_ft_faa", by_variant.get("se_ei_ft_faa", []), q)
        rows += _comparisons(3, "an S_E student matches the ensemble", "S_E student vs the ensemble", q, se,
                             ensemble, "equivalent", margins.get(q))
        for variant in sorted({s["variant"] for s in scores if s["family"] == "S_T"}):
            st = Group(variant, by_variant[variant], q)
            if variant == "st_ei_ft_faa":
                rows += _comparisons(3, "S_E beats S_T with the same loss", "S_E vs S_T student, same loss", q, se, st,
                                     "lower", None)
            seeds = [k for k in teacher_seeds if student_name(variant, k) in st.models and teacher_name(k) in teachers.models]
            x = [teachers.models[teacher_name(k)].mean() for k in seeds]
            y = [st.models[student_name(variant, k)].mean() for k in seeds]
            res = inference.mirror_test(np.array(x), np.array(y))
            rows.append(_row(3, "S_T students mirror their teachers", f"{variant} and its teachers over seeds", q,
                             MODEL_UNIT, st, teachers,
                             f"Pearson r of {len(seeds)} seed means, exact one-sided permutation test",
                             res and res[0], None, res and res[1], res and res[2], "mirror"))
            for k in teacher_seeds:
                rows.append(_row(3, "", "single-teacher student and its teacher, one seed", q, REPLICA_UNIT,
                                 Group(student_name(variant, k), by_model[student_name(variant, k)], q),
                                 Group(teacher_name(k), by_model[teacher_name(k)], q)))
        # 4. teacher forces help; 5. per-bead energies are the key target
        for finding, a, b, claim, comparison in (
                (4, "se_ei_ft_faa", "se_ei_faa", "teacher forces help", "with vs without teacher forces"),
                (4, "se_ei_ft", "se_ei_faa", "teacher forces help", "teacher forces vs AA forces (with e_i)"),
                (5, "se_ei_ft_faa", "se_ft_faa", "per-bead energies help", "per-bead energies vs no energy"),
                (5, "se_ei_ft_faa", "se_e_ft_faa", "per-bead energies beat the system energy",
                 "per-bead energies vs system energy"),
                (5, "se_e_ei_ft_faa", "se_e_ft_faa", "per-bead energies help with the system energy",
                 "system + per-bead energies vs system energy")):
            if by_variant.get(a) and by_variant.get(b):
                rows += _comparisons(finding, claim, comparison, q, Group(a, by_variant[a], q),
                                     Group(b, by_variant[b], q), "lower", None)
    return judge(rows)


def judge(rows: list[dict]) -> list[dict]:
    """Holm over every test of the table, then each test's verdict."""
    family = [(i, "p_value") for i, r in enumerate(rows) if r["p_value"] is not None]
    family += [(i, "_p_beyond") for i, r in enumerate(rows) if r.get("_p_beyond") is not None]
    adjusted = dict(zip(family, inference.holm([rows[i][key] for i, key in family])))
    for i, r in enumerate(rows):
        kind = r.pop("_kind")
        r.pop("_p_beyond")
        if not kind:
            continue
        r["p_holm"] = adjusted.get((i, "p_value"))
        beyond = adjusted.get((i, "_p_beyond"))
        significant = r["p_holm"] is not None and r["p_holm"] < inference.ALPHA
        verdict = NOT_RESOLVED
        if kind == "lower" and significant:
            verdict = REPRODUCED if r["value"] < 0 else CONTRADICTED
        elif kind in ("differ", "mirror") and significant:
            verdict = REPRODUCED
        elif kind == "equivalent":
            if significant:
                verdict = REPRODUCED
            elif beyond is not None and beyond < inference.ALPHA:
                verdict = CONTRADICTED
        r["verdict"] = verdict
        if verdict != NOT_RESOLVED:
            r["mde_80"] = None  # a resolved test needs no detectable effect
    return rows


def csv_rows(rows: list[dict]) -> list[list]:
    return [[r[k] for k in HEADER] for r in rows]


def markdown(rows: list[dict]) -> str:
    """findings.csv as a Markdown table: each test with its unit, counts, value, Holm p and verdict."""
    def group(r, side):
        if r[side] is None:
            return ""
        mean, se = r[f"{side}_mean"], r[f"{side}_se"]
        value = "—" if mean is None else (f"{mean:.3f} ± {se:.3f}" if se is not None else f"{mean:.3f}")
        return (f"{r[side]}: {value} ({r[f'{side}_models']} models, {r[f'{side}_replicas']} replicas; "
                f"{r[f'{side}_unstable']} unstable, {r[f'{side}_drifting']} drifting)")

    def num(x, spec):
        return "" if x is None else format(x, spec)

    lines = ["| # | claim | comparison | quantity | unit | a: mean ± SE | b: mean ± SE | test | value | margin | p | "
             "p (Holm) | verdict | MDE (80 %) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['finding']} | {r['claim']} | {r['comparison']} | {r['quantity']} | {r['unit']} | "
                     f"{group(r, 'a')} | {group(r, 'b')} | {r['test']} | {num(r['value'], '+.3f')} | "
                     f"{num(r['margin'], '.3f')} | {num(r['p_value'], '.2g')} | {num(r['p_holm'], '.2g')} | "
                     f"{r['verdict']} | {num(r['mde_80'], '.3f')} |")
    return "\n".join(lines) + "\n"
