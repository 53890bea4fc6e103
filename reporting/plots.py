"""The report's figures: the sparsity curves and the backdoor plot."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from reporting.collect import BACKDOOR_SETTING_FIELDS, METRICS, method_rank, scenario_title, setting_key
from utils import UsageError, save_figure


def _figure(n_panels: int, n_cols: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(n_panels / n_cols)
    fig, axes = plt.subplots(rows, n_cols, figsize=(5.0 * n_cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, axes.flat


PERCENT_RANGE = (0.0, 100.0)  # UA and MIA-Efficacy are percentages: no mean lies outside


def _method_lines(ax, rows: list[dict], metric: str) -> list:
    """One line per method variant (its row name), in table order, with its 95% t-interval over trials as a
    band where there are two trials or more, cut to the metric's range 0-100 (a t-interval of three
    trials near 100 reaches past it; the true mean cannot). Returns the bands drawn, as (x, low, high)."""
    bands = []
    names = sorted({(method_rank(row["method"]), row["name"]) for row in rows})
    for _, name in names:
        points = sorted(
            (row["sparsity"], row[f"{metric}_mean"], row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high"))
            for row in rows
            if row["name"] == name
        )
        x, y, low, high = zip(*points, strict=True)
        (line,) = ax.plot(x, y, marker="o", label=name)
        if all(value is not None for value in low + high):
            low, high = np.clip(low, *PERCENT_RANGE), np.clip(high, *PERCENT_RANGE)
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            bands.append((x, low, high))
    return bands


def plot_sparsity(rows: list[dict], metric: str, path) -> Path | None:
    """``metric`` (UA or MIA) vs sparsity, one line per method, one panel per (dataset, arch, scenario)."""
    titles = {short: title for short, _, title in METRICS}
    if metric not in titles:
        raise UsageError(f"unknown metric '{metric}'; choose from {', '.join(titles)}")
    by_setting = defaultdict(list)
    for row in rows:
        by_setting[setting_key(row)].append(row)
    if not by_setting:
        return None
    fig, axes = _figure(len(by_setting), min(3, len(by_setting)))
    for ax, setting_rows in zip(axes, by_setting.values(), strict=False):
        _method_lines(ax, setting_rows, metric)
        first = setting_rows[0]
        ax.set_title(f"{first['dataset']} {first['arch']}\n{scenario_title(first)}", fontsize=9)
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel(f"{titles[metric]} (%)")
        ax.set_ylim(PERCENT_RANGE[0] - 3, PERCENT_RANGE[1] + 3)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=120)


def plot_backdoor(rows: list[dict], path) -> Path | None:
    """ASR and SA after unlearning vs sparsity, one line per method, the model before unlearning dashed."""
    by_setting = defaultdict(list)
    for row in rows:
        by_setting[tuple(row[f] for f in BACKDOOR_SETTING_FIELDS)].append(row)
    if not by_setting:
        return None
    fig, axes = _figure(2 * len(by_setting), 2)
    axes = list(axes)
    for index, setting_rows in enumerate(by_setting.values()):
        first = setting_rows[0]
        for ax, metric in zip(axes[2 * index : 2 * index + 2], ("ASR", "SA"), strict=True):
            _method_lines(ax, setting_rows, f"{metric}_after")
            before = defaultdict(list)
            for row in setting_rows:
                before[row["sparsity"]].append(row[f"{metric}_before_mean"])
            x = sorted(before)
            ax.plot(x, [np.mean(before[s]) for s in x], "k--", label="before unlearning")
            ax.set_title(f"{first['dataset']} {first['arch']}: {metric} after unlearning", fontsize=9)
            ax.set_xlabel("sparsity (%)")
            ax.set_ylabel(f"{metric} (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=120)
