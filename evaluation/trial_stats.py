"""Statistics over independent trials: a mean with its 95% t-interval, and a paired difference with a verdict.

Numbers in, numbers out (scipy's Student t; nothing hand-written). With one trial there is no spread:
the std and the interval are None, never 0.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

LEVEL = 0.95


def summary(values) -> dict:
    """mean, sample std (ddof 1), and the 95% t-interval of the mean (n − 1 degrees of freedom)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci_low": None, "ci_high": None}
    std = float(values.std(ddof=1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def paired_change(before, after) -> dict:
    """``after − before`` paired by trial: its mean, 95% t-interval and a verdict on a gap's change.

    "shrinks" when the whole interval is below 0, "grows" when it is above 0, else "inconclusive"
    (always so with fewer than two trials).
    """
    before, after = np.asarray(before, dtype=float), np.asarray(after, dtype=float)
    if before.shape != after.shape:
        raise ValueError(f"paired values differ in number: {before.shape} and {after.shape}")
    result = summary(after - before)
    if result["ci_high"] is not None and result["ci_high"] < 0:
        result["verdict"] = "shrinks"
    elif result["ci_low"] is not None and result["ci_low"] > 0:
        result["verdict"] = "grows"
    else:
        result["verdict"] = "inconclusive"
    return result
