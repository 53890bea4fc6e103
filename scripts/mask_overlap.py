"""How much two families of masks agree: for each trial k, the inherited mask (a `make fashionmnist` run,
FM/prune_r{rate}/train_seed{k}/1model_SA_best.pth.tar) against the clean one (CLEAN/train_seed{k}/...,
main_imp.py --leave_out_forget), per layer: weights each keeps, weights both keep and the overlap
(shared / kept). As a yardstick, each inherited mask against the inherited mask of the next trial (another
seed: another initialisation and batch order, the same data), and the overlap two random masks of the same
layer sizes would have in expectation (kept / weights). Writes a CSV (one row per comparison, trial and
layer, "all" for the whole network) and prints the whole-network overlaps.

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

COLUMNS = ("pair", "trial", "other_trial", "layer", "weights", "kept_first", "kept_second", "shared", "overlap")
PAIRS = {"clean": "inherited vs clean, same trial", "other_seed": "inherited vs inherited of the next trial"}


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


def random_overlap(rows: list[dict]) -> float:
    """The whole-network overlap two masks drawn at random, with the first comparison's kept counts per layer,
    would have in expectation: sum over layers of kept_first * kept_second / weights, over kept_first."""
    first = [row for row in rows if row["pair"] == rows[0]["pair"] and row["trial"] == rows[0]["trial"]]
    layers = [row for row in first if row["layer"] != "all"]
    shared = sum(row["kept_first"] * row["kept_second"] / row["weights"] for row in layers)
    return shared / sum(row["kept_first"] for row in layers)


def main(argv=None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if args.trials < 1:
        raise UsageError(f"--trials {args.trials}: give 1 or more")
    inherited = {
        k: masks(Path(args.inherited) / f"prune_r{args.rate}" / f"train_seed{k}" / "1model_SA_best.pth.tar")
        for k in range(1, args.trials + 1)
    }
    clean = {k: masks(Path(args.clean) / f"train_seed{k}" / "1model_SA_best.pth.tar") for k in inherited}
    rows = []
    for k in inherited:
        following = k % args.trials + 1
        pairs = {"clean": (k, clean[k])}
        if following != k:
            pairs["other_seed"] = (following, inherited[following])
        for pair, (other, second) in pairs.items():
            for layer, row in pruner.mask_overlap(inherited[k], second).items():
                rows.append({"pair": pair, "trial": k, "other_trial": other, "layer": layer, **row})
            whole = rows[-1]
            print(f"trial {k}, {PAIRS[pair]} ({other}): {whole['shared']} of {whole['kept_first']} kept weights "
                  f"shared ({100 * whole['overlap']:.1f}%)")  # fmt: skip
    print(f"two random masks keeping as many weights per layer: {100 * random_overlap(rows):.1f}% expected")
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out.getvalue(), args.out)
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    run_cli(main, how=("--out", "nothing was written; rerun the same command"))
