"""The statistical tests behind the findings, each for one design (kdcg.analysis.findings says
which unit each finding's test uses).

A claim about a variant (a kind of model) has trained models as its unit: the replicas of a
model estimate that model's mean and nothing more. So
- one model against k models (the ensemble against its teachers): the prediction-interval
  t-test, t = (x - mean_k) / (s_k sqrt(1 + 1/k)), df k - 1: is x where a k + 1-th model of the
  other kind would fall?
- k models against m models (k, m >= 2): Welch's t-test on the model means;
- one model against one model: no test about the variants; the replicas test only whether
  these two networks differ (replica_difference);
- models differ (teacher seeds): the Alexander-Govern test over each model's replicas, robust
  to unequal variances;
- one variant mirrors another over seeds: a permutation test of Pearson's r (one-sided, r > 0),
  exact over every pairing of up to 8 seeds;
- "matches": two one-sided tests (TOST) against a margin fixed before the run.
Every p is two-sided unless said; Holm's step-down correction runs over the declared family.
The minimum detectable effect is the difference a test of this size finds with 80 % power at
alpha 0.05.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.8
#: the mirror's permutation test lists every pairing up to 8 seeds (8! = 40,320), beyond that
#: it samples this many with a fixed seed
EXACT_PAIRINGS_MAX = 40_320
SAMPLED_PAIRINGS = 20_000


@dataclass(frozen=True)
class Difference:
    """A difference a - b with its standard error and degrees of freedom."""

    value: float
    se: float
    df: float
    p: float
    test: str

    @property
    def mde(self) -> float:
        return minimum_detectable_difference(self.se, self.df)


def minimum_detectable_difference(se: float, df: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The |difference| a two-sided t-test with this standard error and df detects with this power."""
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * se)


def _t_difference(value: float, se: float, df: float, test: str) -> Difference | None:
    if not (se > 0 and df > 0 and np.isfinite(se)):
        return None
    p = float(2 * stats.t.sf(abs(value) / se, df))
    return Difference(float(value), float(se), float(df), p, test)


def prediction_interval_test(x: float, others: np.ndarray) -> Difference | None:
    """One model's mean x against the means of k >= 2 other models (df k - 1)."""
    others = np.asarray(others, dtype=float)
    k = len(others)
    if k < 2:
        return None
    se = others.std(ddof=1) * math.sqrt(1 + 1 / k)
    return _t_difference(x - others.mean(), se, k - 1, f"prediction-interval t-test, 1 model vs {k} (df {k - 1})")


def _welch_satterthwaite(value: float, parts: list[float], dofs: list[int], test: str) -> Difference | None:
    """A difference whose variance is a sum of independent parts (s^2/n each, with its df)."""
    var = sum(parts)
    if var <= 0:
        return None
    df = var**2 / sum(v**2 / d for v, d in zip(parts, dofs) if v > 0)
    return _t_difference(value, math.sqrt(var), df, test)


def welch_on_means(a: np.ndarray, b: np.ndarray) -> Difference | None:
    """k model means against m model means (k, m >= 2): Welch's t-test."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return None
    return _welch_satterthwaite(a.mean() - b.mean(), [a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)],
                                [len(a) - 1, len(b) - 1], f"Welch t-test on model means, {len(a)} vs {len(b)} models")


def replica_difference(a: np.ndarray, b_models: list[np.ndarray]) -> Difference | None:
    """One model's replica mean against the mean of k models' replica means, given replica
    noise only (these models as they are, no model-to-model variation): SE^2 = s_a^2/n_a +
    sum_i s_i^2/n_i / k^2, Welch-Satterthwaite df; Welch's t-test when k is 1."""
    a = np.asarray(a, dtype=float)
    b_models = [np.asarray(b, dtype=float) for b in b_models]
    if len(a) < 2 or not b_models or any(len(b) < 2 for b in b_models):
        return None
    k = len(b_models)
    parts = [a.var(ddof=1) / len(a)] + [b.var(ddof=1) / len(b) / k**2 for b in b_models]
    dofs = [len(a) - 1] + [len(b) - 1 for b in b_models]
    value = a.mean() - np.mean([b.mean() for b in b_models])
    what = "Welch t-test on replicas, these 2 models" if k == 1 else f"t-test on replicas, 1 model vs the mean of these {k}"
    return _welch_satterthwaite(value, parts, dofs, what)


def models_differ(groups: list[np.ndarray]) -> tuple[float, float] | None:
    """(p, minimum detectable SD of the model means) of the Alexander-Govern test over >= 2
    models' replicas (>= 2 each)."""
    groups = [np.asarray(g, dtype=float) for g in groups if len(g) >= 2]
    if len(groups) < 2:
        return None
    p = float(stats.alexandergovern(*groups).pvalue)
    return p, minimum_detectable_spread(groups)


def minimum_detectable_spread(groups: list[np.ndarray], alpha: float = ALPHA, power: float = POWER) -> float:
    """The SD of the true model means (divisor k) that a one-way F test over these k groups
    (their mean size, their pooled within-group SD) finds with this power."""
    k = len(groups)
    n = float(np.mean([len(g) for g in groups]))
    n_total = sum(len(g) for g in groups)
    within = math.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / (n_total - k))
    if within == 0:
        return 0.0
    crit = stats.f.ppf(1 - alpha, k - 1, n_total - k)

    def shortfall(sd_between: float) -> float:
        return float(stats.ncf.sf(crit, k - 1, n_total - k, n * k * sd_between**2 / within**2)) - power

    hi = within
    while shortfall(hi) < 0:
        hi *= 2
    return float(optimize.brentq(shortfall, 0.0, hi, xtol=1e-10 * within))


def mirror_test(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float | None] | None:
    """(r, p, minimum detectable r) for "y rises with x" over k >= 3 paired seeds: Pearson's r,
    its one-sided permutation p (every pairing of the k seeds; sampled beyond 8) and the r detectable with
    80 % power (Fisher's z; None for k = 3)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    k = len(x)
    if k < 3 or x.std() == 0 or y.std() == 0:
        return None
    r = float(np.corrcoef(x, y)[0, 1])
    if math.factorial(k) <= EXACT_PAIRINGS_MAX:
        rs = np.array([np.corrcoef(x, y[list(perm)])[0, 1] for perm in permutations(range(k))])
        p = float(np.mean(rs >= r - 1e-12))
    else:  # too many pairings to list: a fixed-seed sample of them, p counting the observed one
        rng = np.random.default_rng(0)
        rs = np.array([np.corrcoef(x, rng.permutation(y))[0, 1] for _ in range(SAMPLED_PAIRINGS)])
        p = float((np.sum(rs >= r - 1e-12) + 1) / (SAMPLED_PAIRINGS + 1))
    mde = None
    if k > 3:
        mde = float(np.tanh((stats.norm.ppf(1 - ALPHA) + stats.norm.ppf(POWER)) / math.sqrt(k - 3)))
    return r, p, mde


def equivalence(d: Difference, margin: float) -> tuple[float, float]:
    """(p of equivalence, p of a difference beyond the margin) for a difference against +-margin:
    TOST (the larger of the two one-sided p's), and the one-sided test of |difference| > margin."""
    p_low = stats.t.sf((d.value + margin) / d.se, d.df)  # H0: difference <= -margin
    p_high = stats.t.cdf((d.value - margin) / d.se, d.df)  # H0: difference >= +margin
    p_beyond = stats.t.sf((abs(d.value) - margin) / d.se, d.df)  # H0: |difference| <= margin
    return float(max(p_low, p_high)), float(p_beyond)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
