"""How many trained models each finding's test needs (80 % power, alpha 0.05), planned from a
finished run's tables (issue 33: the main study's number of teacher seeds).

The unit is the trained model, as in kdcg.analysis.findings; a model's score for a quantity is
the mean over its stable replicas of the replica's TAE averaged over the quantity's keys. The
run's estimates (a difference between model means, the SD of the teachers' means) are taken
as the true values, so these are planning figures from one run, not properties of the
variants. Designs:

- finding 1, teachers differ by seed: the one-way F test over k teachers with this run's
  replicas per model, within-model SD and SD of the seed means (the Alexander-Govern test kdcg
  runs has about this power when the variances are equal);
- finding 2 (and 3b for S_E against S_T), one model against k: the prediction-interval t-test.
  Its statistic is noncentral t (df k - 1, noncentrality d / sqrt(1 + 1/k), d the difference
  over the SD of the k models' means), so its power tends to P(|Z + d| > z) as k grows: when
  that limit is under 80 % no number of teachers resolves the finding with one ensemble;
- the same finding with m ensembles (or S_E students) against m teachers: a two-sample t-test on
  model means, the second kind's model-to-model SD taken equal to the teachers' (no run has
  trained two ensembles, so nothing measures it; equal is the cautious choice when the SD of
  the one kind is the smaller);
- the same finding as drift counts: m teachers against m ensembles, Fisher's exact test on how
  many drift (kdcg drift-rule), exact over both binomials at the run's drift fractions;
- finding 3c, S_T students mirror their teachers: Pearson's r over k seeds, one-sided, Fisher's
  z (k = 3 + ((z_alpha + z_power) / atanh r)^2).

Counts are searched up to MAX_MODELS; None means "more than that", or "none" where a limit says so.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from kdcg.analysis.distributions import QUANTITIES
from kdcg.analysis.inference import ALPHA, POWER
from kdcg.errors import InputError
from kdcg.files import write_table_csv
from kdcg.naming import ENSEMBLE, student_name

MAX_MODELS = 200
#: Fisher's exact power is enumerated over both binomials; beyond this many per arm the search stops
MAX_MODELS_EXACT = 60
S_E = "se_ei_ft_faa"
S_T = "st_ei_ft_faa"
HEADER = ["finding", "quantity", "design", "effect", "sd_models", "d", "models_now", "power_now", "models_needed",
          "note"]


def prediction_interval_power(d: float, k: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided prediction-interval t-test of one model against k (k >= 2) for a
    true difference of d model-to-model SDs."""
    crit = stats.t.ppf(1 - alpha / 2, k - 1)
    ncp = abs(d) / math.sqrt(1 + 1 / k)
    return float(stats.nct.sf(crit, k - 1, ncp) + stats.nct.cdf(-crit, k - 1, ncp))


def prediction_interval_limit(d: float, alpha: float = ALPHA) -> float:
    """The prediction-interval test's power as k grows without bound: P(|Z + d| > z_(alpha/2))."""
    z = stats.norm.ppf(1 - alpha / 2)
    return float(stats.norm.sf(z - abs(d)) + stats.norm.cdf(-z - abs(d)))


def two_sample_power(d: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided two-sample t-test with n models per arm, equal SDs, difference d SDs."""
    df = 2 * n - 2
    crit = stats.t.ppf(1 - alpha / 2, df)
    ncp = abs(d) / math.sqrt(2 / n)
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


def fisher_power(p_a: float, p_b: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided Fisher exact test of two drift fractions, n models per arm, exact."""
    k = np.arange(n + 1)
    wa, wb = stats.binom.pmf(k, n, p_a), stats.binom.pmf(k, n, p_b)
    power = 0.0
    for a in k:
        if wa[a] < 1e-12:
            continue
        for b in k:
            if wb[b] < 1e-12:
                continue
            if stats.fisher_exact([[a, n - a], [b, n - b]]).pvalue <= alpha:
                power += wa[a] * wb[b]
    return float(power)


def seeds_differ_power(sd_between: float, sd_within: float, replicas: int, k: int, alpha: float = ALPHA) -> float:
    """Power of the one-way F test over k models with this many replicas each."""
    df1, df2 = k - 1, k * (replicas - 1)
    crit = stats.f.ppf(1 - alpha, df1, df2)
    nc = replicas * k * sd_between**2 / sd_within**2
    # scipy's noncentral F is wrong at noncentrality 0 (its sf comes out negative): the central F there
    return float(stats.ncf.sf(crit, df1, df2, nc) if nc > 0 else stats.f.sf(crit, df1, df2))


def smallest(power_of, start: int, stop: int = MAX_MODELS, power: float = POWER) -> int | None:
    """The smallest count in [start, stop] whose power reaches the target (power rises with the count)."""
    for n in range(start, stop + 1):
        if power_of(n) >= power:
            return n
    return None


def mirror_models_needed(r: float, alpha: float = ALPHA, power: float = POWER) -> int | None:
    """Seeds a one-sided test of r > 0 needs (Fisher's z); None for r <= 0."""
    if not r > 0:
        return None
    if r >= 1:
        return 4
    return int(math.ceil(3 + ((stats.norm.ppf(1 - alpha) + stats.norm.ppf(power)) / math.atanh(r)) ** 2))


@dataclass
class RunScores:
    """Per model: its family, variant, seed, {quantity: model score} and {quantity: replica scores}."""

    models: dict[str, dict]

    def of_variant(self, variant: str) -> list[dict]:
        return [m for m in self.models.values() if m["variant"] == variant]


def read_scores(tae_csv: Path) -> RunScores:
    """Model scores from a run's tables/tae.csv (stable replicas only)."""
    try:
        with open(tae_csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise InputError(tae_csv, f"cannot be read: {err.strerror}") from None
    need = {"model", "family", "variant", "seed", "replica", "status", "quantity", "tae"}
    if not rows or not need <= set(rows[0]):
        raise InputError(tae_csv, f"is not a tae.csv table (columns {', '.join(sorted(need))} needed)")
    keys: dict[tuple, list[float]] = defaultdict(list)
    info: dict[str, dict] = {}
    for row in rows:
        if row["status"] != "stable" or row["tae"] in ("", "nan"):
            continue
        keys[(row["model"], row["quantity"], row["replica"])].append(float(row["tae"]))
        info.setdefault(row["model"], {"model": row["model"], "family": row["family"], "variant": row["variant"],
                                       "seed": row["seed"], "replicas": defaultdict(list)})
    for (model, quantity, _replica), values in keys.items():
        info[model]["replicas"][quantity].append(float(np.mean(values)))
    for m in info.values():
        m["score"] = {q: float(np.mean(v)) for q, v in m["replicas"].items()}
    return RunScores(info)


def read_drift(drift_rule_csv: Path) -> dict[str, bool]:
    """model -> whether it drifts (kdcg drift-rule's table)."""
    try:
        with open(drift_rule_csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise InputError(drift_rule_csv, f"cannot be read: {err.strerror}") from None
    if not rows or "model_drifts" not in rows[0]:
        raise InputError(drift_rule_csv, "is not a drift_rule.csv table (kdcg drift-rule writes one)")
    return {r["model"]: r["model_drifts"] == "True" for r in rows}


def _one_against_k(finding: str, quantity: str, one: float, others: np.ndarray, what: str, other: str) -> list[dict]:
    k = len(others)
    sd = float(others.std(ddof=1))
    effect = float(others.mean() - one)
    d = effect / sd if sd > 0 else math.inf
    limit = prediction_interval_limit(d)
    needed = smallest(lambda n: prediction_interval_power(d, n), 2)
    note = (f"power tends to {limit:.2f} as {other}s are added: no number resolves it with one {what}"
            if limit < POWER else ("" if needed else f"more than {MAX_MODELS}"))
    rows = [{"finding": finding, "quantity": quantity, "design": f"1 {what} vs k {other}s (prediction interval)",
             "effect": effect, "sd_models": sd, "d": d, "models_now": k,
             "power_now": prediction_interval_power(d, k), "models_needed": needed, "note": note}]
    per_arm = smallest(lambda n: two_sample_power(d, n), 2)
    rows.append({"finding": finding, "quantity": quantity,
                 "design": f"m {what}s vs m {other}s (t-test on model means, equal SDs)", "effect": effect,
                 "sd_models": sd, "d": d, "models_now": 1, "power_now": math.nan, "models_needed": per_arm,
                 "note": f"per arm{'' if per_arm else f' (more than {MAX_MODELS})'}; the {what}s' "
                         f"model-to-model SD taken equal to the {other}s'"})
    return rows


def plan(scores: RunScores, drift: dict[str, bool] | None = None) -> list[dict]:
    """The power rows of a run: findings 1, 2, 3b, 3c per quantity, and 2 as drift counts."""
    rows: list[dict] = []
    teachers = sorted(scores.of_variant("teacher"), key=lambda m: int(m["seed"]))
    ensemble = scores.models.get(ENSEMBLE)
    s_e = scores.models.get(student_name(S_E))
    s_t = {m["seed"]: m for m in scores.of_variant(S_T)}
    for q in QUANTITIES:
        t_models = [m for m in teachers if q in m["score"]]
        if len(t_models) >= 2:
            groups = [np.asarray(m["replicas"][q]) for m in t_models]
            n_rep = int(round(np.mean([len(g) for g in groups])))
            n_total = sum(len(g) for g in groups)
            within = math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / (n_total - len(groups)))
            between = float(np.std([g.mean() for g in groups]))  # divisor k, as the F test's noncentrality
            rows.append({"finding": "1", "quantity": q, "design": "k teachers, their replicas (one-way F)",
                         "effect": between, "sd_models": within, "d": between / within if within else math.inf,
                         "models_now": len(groups),
                         "power_now": seeds_differ_power(between, within, n_rep, len(groups)),
                         "models_needed": smallest(lambda k: seeds_differ_power(between, within, n_rep, k), 2),
                         "note": f"effect: SD of the seed means; sd_models: within-model SD over {n_rep} replicas"})
            means = np.array([m["score"][q] for m in t_models])
            if ensemble and q in ensemble["score"]:
                rows += _one_against_k("2", q, ensemble["score"][q], means, "ensemble", "teacher")
        st_models = [s_t[k] for k in sorted(s_t, key=int) if q in s_t[k]["score"]]
        if s_e and q in s_e["score"] and len(st_models) >= 2:
            rows += _one_against_k("3b", q, s_e["score"][q], np.array([m["score"][q] for m in st_models]),
                                   "S_E student", "S_T student")
        paired = [(m["score"][q], s_t[m["seed"]]["score"][q]) for m in t_models
                  if m["seed"] in s_t and q in s_t[m["seed"]]["score"]]
        if len(paired) >= 3:
            x, y = np.array(paired).T
            r = float(np.corrcoef(x, y)[0, 1])
            rows.append({"finding": "3c", "quantity": q, "design": "k seeds, teacher vs its S_T (Pearson r, one-sided)",
                         "effect": r, "sd_models": math.nan, "d": math.nan, "models_now": len(paired),
                         "power_now": math.nan, "models_needed": mirror_models_needed(r),
                         "note": "effect: r; Fisher's z"})
    if drift is not None and ENSEMBLE in drift:
        t_flags = [drift[m["model"]] for m in teachers if m["model"] in drift]
        if t_flags:
            p_t, p_e = float(np.mean(t_flags)), float(drift[ENSEMBLE])
            needed = None if p_t == p_e else smallest(lambda n: fisher_power(p_t, p_e, n), 2, MAX_MODELS_EXACT)
            more = "none: the same fraction" if p_t == p_e else (f"more than {MAX_MODELS_EXACT}" if needed is None else "")
            rows.append({"finding": "2", "quantity": "drift", "design": "m teachers vs m ensembles (Fisher exact on drift counts)",
                         "effect": p_t - p_e, "sd_models": math.nan, "d": math.nan, "models_now": len(t_flags),
                         "power_now": math.nan, "models_needed": needed,
                         "note": f"per arm{'; ' + more if more else ''}; drift fractions {p_t:.2f} (teachers, "
                                 f"{sum(t_flags)} of {len(t_flags)}) and {p_e:.0f} (the one ensemble) taken as true"})
    return rows


def write_table(rows: list[dict], out: Path) -> None:
    write_table_csv(out, HEADER, rows)
