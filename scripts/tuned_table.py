"""Tuned against published presets: one table of each method's Avg. Gap to Retrain with the flags main_tune.py
selected and with its published preset, paired by held-out trial, sparse against dense under the same two
ways of setting the flags, and a table of what each study selected.

    python scripts/tuned_table.py --tuned runs/fashionmnist/fashionmnist_resnet20s/tuned/random \\
        --preset runs/fashionmnist/fashionmnist_resnet20s/preset/random \\
        --retrain runs/fashionmnist/fashionmnist_resnet20s/unlearn/random/r*/retrain \\
        --studies runs/tuned --out runs/tuned/comparison

Writes {out}/comparison.md (the tables) and {out}/comparison.csv (the paired rows: every summary's mean,
std and 95% t-interval). Where the folders hold the dense model and a sparse one, a third table pairs each
method's sparse runs with its dense ones by trial, each side with its own flags at each sparsity (a tuned
method is tuned per sparsity), and {out}/sparsity.csv holds its rows. Only the trials that every side holds
(tuned, preset and the Retrain of the same trial) are compared; trial 1, on which the flags were selected,
belongs in none of the folders.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reporting import tuned  # noqa: E402
from reporting.collect import load_runs  # noqa: E402
from utils import UsageError, atomic_write_text, run_cli  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tuned", nargs="+", required=True, help="folders of the runs with the selected flags")
    parser.add_argument("--preset", nargs="+", required=True, help="folders of the runs with the published presets")
    parser.add_argument("--retrain", nargs="+", required=True, help="folders of the Retrain runs of the same trials")
    parser.add_argument("--studies", default=None, help="main_tune.py's folders, {scenario}/r{rate}/{method}/best.json")
    parser.add_argument("--out", required=True, help="folder for comparison.md and comparison.csv")
    return parser


def _runs(paths: list[str], flag: str) -> list[dict]:
    runs, problems = load_runs(paths)
    for problem in problems:
        print(f"{flag}: {problem}", file=sys.stderr)
    if not runs:
        raise UsageError(f"{flag} {' '.join(paths)}: no *_eval.json below it; give the folders the sweep wrote")
    return runs


def main(argv=None) -> list[dict]:
    args = build_parser().parse_args(argv)
    sides = {flag: _runs(getattr(args, flag), f"--{flag}") for flag in ("tuned", "preset", "retrain")}
    try:
        rows = tuned.compare(sides["tuned"], sides["preset"], sides["retrain"])
    except ValueError as err:
        raise UsageError(str(err)) from None
    if not rows:
        raise UsageError("no method has tuned, preset and Retrain runs of one trial; check the folders")
    text = "# Tuned against published presets\n\n" + tuned.NOTE + tuned.markdown(rows)
    yardstick = tuned.untouched(sides["preset"] + sides["tuned"], sides["retrain"])
    text += "\n" + tuned.untouched_text(yardstick) if yardstick else ""
    change = tuned.sparsity_change(sides["tuned"], sides["preset"], sides["retrain"])
    if change:
        text += "\n## Sparse against dense, each with its own flags\n\n" + tuned.SPARSITY_NOTE
        text += tuned.sparsity_markdown(change)
    if args.studies:
        found = tuned.selections(Path(args.studies))
        text += "\n## What tuning selected\n\n" + tuned.SELECTIONS_NOTE + tuned.selections_markdown(found)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(text, out / "comparison.md")
    atomic_write_text(tuned.to_csv(rows), out / "comparison.csv")
    if change:
        atomic_write_text(tuned.sparsity_csv(change), out / "sparsity.csv")
    print(text, end="")
    return rows


if __name__ == "__main__":
    run_cli(main, how=("--out", "nothing was written; rerun the same command"))
