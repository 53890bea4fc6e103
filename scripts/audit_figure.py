"""One picture of several per-example audits (main_audit.py's *_audit.json): for each, the mean attack
accuracy on the forget set, on the test-set control and the noise floor, as grouped bars.

    python scripts/audit_figure.py runs/mask_memory/audit/class/retrain_audit.json \\
        runs/mask_memory/audit/class/FT_audit.json --labels "inherited vs clean Retrain" "FT vs Retrain" \\
        --out audit.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils import UsageError, run_cli, save_figure  # noqa: E402

BARS = (  # (legend, path to the mean attack accuracy in the audit's JSON)
    ("forget set", ("method_vs_retrain",)),
    ("test examples (control)", ("test_control", "method_vs_retrain")),
    ("noise floor (forget set)", ("noise_floor",)),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audits", nargs="+", help="*_audit.json files written by main_audit.py")
    parser.add_argument("--labels", nargs="+", required=True, help="one label per audit, in the same order")
    parser.add_argument("--title", default="", help="the figure's title")
    parser.add_argument("--out", required=True, help="PNG file to write")
    return parser


def means(path: Path) -> list[float]:
    """The three bars of one audit; an audit without a noise floor or control is refused with its name."""
    try:
        audit = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UsageError(f"{path} cannot be read as an audit result ({err}); give a *_audit.json") from None
    values = []
    for legend, keys in BARS:
        part = audit
        for key in keys:
            part = part.get(key) if isinstance(part, dict) else None
        if not isinstance(part, dict):
            raise UsageError(f"{path} has no {legend} result; rerun main_audit.py (N >= 4) with this version")
        values.append(float(part["attack_accuracy"]["mean"]))
    return values


def main(argv=None) -> list[list[float]]:
    args = build_parser().parse_args(argv)
    if len(args.labels) != len(args.audits):
        raise UsageError(f"{len(args.audits)} audits but {len(args.labels)} labels; give one label per audit")
    bars = [means(Path(path)) for path in args.audits]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(1.6 + 1.5 * len(bars), 3.6))
    width = 0.8 / len(BARS)
    for index, (legend, _) in enumerate(BARS):
        xs = [position + (index - 1) * width for position in range(len(bars))]
        axes.bar(xs, [values[index] for values in bars], width, label=legend)
    axes.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xticks(range(len(bars)), args.labels, fontsize=8)
    axes.set(ylim=(0, 1), ylabel="mean per-example attack accuracy", title=args.title)
    axes.legend(fontsize=8, loc="upper left")
    save_figure(figure, args.out, dpi=110)
    print(f"wrote {args.out}")
    return bars


if __name__ == "__main__":
    run_cli(main, how=("--out", "nothing was written; rerun the same command"))
