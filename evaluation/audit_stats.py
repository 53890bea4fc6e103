"""Per-example statistics of an unlearning audit: numpy in, numbers out (docs/usage.md, "main_audit.py").

Each forget example has a score φ = log(p_y / (1 - p_y)) under each of many models: side A (the
unlearning method's runs) and side B (Retrain's runs). Two ways to tell the sides apart per example:

- ``lira_accuracy``: a likelihood-ratio test with a Gaussian fitted to each side (U-LiRA, Hayes et
  al. 2024), evaluated leave-one-model-out. 0.5 means indistinguishable, 1 means always told apart.
- ``epsilon_estimate``: the NeurIPS 2023 unlearning challenge's ε from the best threshold's
  false-positive and false-negative rates, with the rates replaced by Clopper-Pearson upper bounds
  so that a handful of models cannot claim a large ε by luck.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.stats import beta

DELTA = 1e-5  # the δ of (ε, δ): much less than 1/|D|, as usual
ALPHA = 0.05  # the rates are the upper ends of two-sided 95% Clopper-Pearson intervals
MIN_VAR = 1e-6  # a deterministic method (e.g. raw) gives identical models: a zero variance is floored
QUANTILES = (0.1, 0.5, 0.9)
_CHUNK = 256  # examples per block of the threshold sweep: bounds its (examples, thresholds, models) arrays


def scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """φ = log(p_y / (1 - p_y)) = z_y - logsumexp(z_j, j ≠ y), which stays finite where p_y rounds to 1."""
    logits = np.asarray(logits, dtype=np.float64)
    rows = np.arange(len(labels))
    others = logits.copy()
    others[rows, labels] = -np.inf
    return logits[rows, labels] - logsumexp(others, axis=1)


def gaussian_log_ratio(x, mean_a, var_a, mean_b, var_b):
    """log N(x; mean_a, var_a) - log N(x; mean_b, var_b): positive means x looks like side A."""
    return 0.5 * (np.log(var_b) - np.log(var_a)) - (x - mean_a) ** 2 / (2 * var_a) + (x - mean_b) ** 2 / (2 * var_b)


def _fit(scores: np.ndarray, fallback_var=None):
    """Per-example mean and unbiased variance over models (axis 0); one model borrows ``fallback_var``."""
    mean = scores.mean(axis=0)
    var = scores.var(axis=0, ddof=1) if len(scores) > 1 else fallback_var
    return mean, np.maximum(var if var is not None else MIN_VAR, MIN_VAR)


def lira_accuracy(side_a: np.ndarray, side_b: np.ndarray) -> np.ndarray:
    """Per-example attack accuracy: the fraction of held-out models classified to their own side.

    ``side_a`` (models_a, examples) and ``side_b`` (models_b, examples) hold φ. Each model in turn is
    held out, a Gaussian is fitted to the rest of its side and one to the whole other side, and the
    model goes to the side of the larger likelihood (a tie counts as half right).
    """
    if len(side_a) < 2 or len(side_b) < 2:
        raise ValueError(f"leave-one-model-out needs >= 2 models per side, got {len(side_a)} and {len(side_b)}")
    correct = np.zeros(side_a.shape[1])
    for own, other in ((side_a, side_b), (side_b, side_a)):
        mean_other, var_other = _fit(other)
        for held_out in range(len(own)):
            mean_own, var_own = _fit(np.delete(own, held_out, axis=0), fallback_var=var_other)
            ratio = gaussian_log_ratio(own[held_out], mean_own, var_own, mean_other, var_other)
            correct += (ratio > 0) + 0.5 * (ratio == 0)
    return correct / (len(side_a) + len(side_b))


def clopper_pearson_upper(errors, trials: int, alpha: float = ALPHA) -> np.ndarray:
    """Upper end of the two-sided (1 - alpha) Clopper-Pearson interval of a rate errors / trials."""
    errors = np.asarray(errors)
    upper = beta.ppf(1 - alpha / 2, errors + 1, np.maximum(trials - errors, 1))
    return np.where(errors >= trials, 1.0, upper)


def epsilon_of_rates(fpr, fnr, delta: float = DELTA) -> np.ndarray:
    """max(log((1 - δ - FPR) / FNR), log((1 - δ - FNR) / FPR)), -inf where neither numerator is positive."""
    with np.errstate(divide="ignore", invalid="ignore"):
        first = np.where(1 - delta - fpr > 0, np.log(np.maximum(1 - delta - fpr, 1e-300) / fnr), -np.inf)
        second = np.where(1 - delta - fnr > 0, np.log(np.maximum(1 - delta - fnr, 1e-300) / fpr), -np.inf)
    return np.maximum(first, second)


def epsilon_estimate(side_a: np.ndarray, side_b: np.ndarray, delta=DELTA, alpha=ALPHA) -> np.ndarray:
    """Per-example ε >= 0: the best over thresholds (every observed φ, both directions) of ``epsilon_of_rates``
    with FPR (side B flagged as A) and FNR (side A missed) replaced by their Clopper-Pearson upper bounds."""
    count_a, count_b = len(side_a), len(side_b)
    best = np.zeros(side_a.shape[1])
    for start in range(0, side_a.shape[1], _CHUNK):
        a, b = side_a[:, start : start + _CHUNK].T, side_b[:, start : start + _CHUNK].T  # (examples, models)
        thresholds = np.concatenate([a, b], axis=1)[:, :, None]
        a_above = (a[:, None, :] > thresholds).sum(-1)
        b_above = (b[:, None, :] > thresholds).sum(-1)
        # "A when φ > t" and "A when φ <= t": which side scores higher is not known in advance
        for missed_a, flagged_b in ((count_a - a_above, b_above), (a_above, count_b - b_above)):
            fpr = clopper_pearson_upper(flagged_b, count_b, alpha)
            fnr = clopper_pearson_upper(missed_a, count_a, alpha)
            eps = epsilon_of_rates(fpr, fnr, delta).max(axis=1)
            best[start : start + _CHUNK] = np.maximum(best[start : start + _CHUNK], eps)
    return best


def largest_epsilon(count_a: int, count_b: int, delta=DELTA, alpha=ALPHA) -> float:
    """The ε of perfectly separated sides: the most that this many models can show."""
    fpr, fnr = clopper_pearson_upper(0, count_b, alpha), clopper_pearson_upper(0, count_a, alpha)
    return float(max(epsilon_of_rates(fpr, fnr, delta), 0.0))


def summary(values: np.ndarray) -> dict:
    """Mean and quantiles over the forget set."""
    values = np.asarray(values, dtype=np.float64)
    out = {"mean": float(values.mean())}
    out.update({f"q{round(100 * q)}": float(np.quantile(values, q)) for q in QUANTILES})
    return out
