"""How much two families of masks agree: for each trial k, the inherited mask (a `make fashionmnist` run,
FM/prune_r{rate}/train_seed{k}/1model_SA_best.pth.tar) against the clean one (CLEAN/train_seed{k}/...,
main_imp.py --leave_out_forget), per layer: weights each keeps, weights both keep and the overlap
(shared / kept). Writes a CSV (one row per trial and layer, "all" for the whole network) and prints the
whole-network overlap per trial.

    python scripts/mask_overlap.py runs/fashionmnist/fashionmnist_resnet20s runs/mask_memory/clean/class \\
        --trials 3 --out overlap.csv
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pruner  # noqa: E402
from utils import UsageError, atomic_write_text, run_cli, safe_load  # noqa: E402

COLUMNS = ("trial", "layer", "weights", "kept_first", "kept_second", "shared", "overlap")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inherited", help="the sweep folder holding prune_r{rate}/train_seed{k}")
    parser.add_argument("clean", help="the folder holding the clean runs train_seed{k}")
    parser.add_argument("--trials", type=int, default=3, help="trials 1..K (default 3)")
    parser.add_argument("--rate", default="0.95", help="the inherited pruning run's rate (default 0.95)")
    parser.add_argument("--out", required=True, help="CSV file to write")
    return parser


def masks(path: Path) -> dict:
    if not path.is_file():
        raise UsageError(f"{path} does not exist; finish its training run first")
    return pruner.extract_mask(safe_load(path, "mask file")["state_dict"])


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for k in range(1, args.trials + 1):
        inherited = masks(Path(args.inherited) / f"prune_r{args.rate}" / f"train_seed{k}" / "1model_SA_best.pth.tar")
        clean = masks(Path(args.clean) / f"train_seed{k}" / "1model_SA_best.pth.tar")
        for layer, row in pruner.mask_overlap(inherited, clean).items():
            writer.writerow({"trial": k, "layer": layer, **row})
            if layer == "all":
                shared = f"{row['shared']} of {row['kept_first']} kept weights shared"
                print(f"trial {k}: {shared} ({100 * row['overlap']:.1f}%)")
    atomic_write_text(out.getvalue(), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main, how=("--out", "nothing was written; rerun the same command"))
