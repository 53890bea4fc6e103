"""Copy the result records of a sweep (every *_eval.json, *_backdoor.json, *_audit.json and imp_results.json below
SWEEP, and main_tune.py's best.json and trials.csv, with their relative paths) into OUT, without the checkpoints:
a few megabytes that carry each run's metrics, identity and provenance, from which report.py rebuilds the tables
(with --no-output-metrics: the JS and l2 distances need the models). The records of the measurements
docs/fashionmnist.md quotes are shipped under docs/results/.

    python scripts/ship_records.py runs/fashionmnist/fashionmnist_resnet20s docs/results/fashionmnist_table1
    python report.py docs/results/fashionmnist_table1/unlearn --out runs/table1_again --no-output-metrics

A record already in OUT with other content is refused (a different run behind the same path), never replaced.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils import UsageError, atomic_write_bytes, run_cli  # noqa: E402

PATTERNS = ("*_eval.json", "*_backdoor.json", "*_audit.json", "imp_results.json", "best.json", "trials.csv")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="the folder whose records are copied (searched recursively)")
    parser.add_argument("out", help="where they go, below the same relative paths")
    return parser


def records(sweep: Path) -> list[Path]:
    found = sorted({path for pattern in PATTERNS for path in sweep.rglob(pattern) if path.is_file()})
    if not found:
        raise UsageError(f"no result records ({', '.join(PATTERNS)}) below {sweep}; give the sweep's folder")
    return found


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    sweep, out = Path(args.sweep), Path(args.out)
    if out.resolve().is_relative_to(sweep.resolve()):
        raise UsageError(f"{out} lies inside {sweep}, which would copy the copies; give a folder outside it")
    found = records(sweep)
    plan = [(path, out / path.relative_to(sweep)) for path in found]
    for source, target in plan:  # every conflict is found before anything is written
        if target.is_file() and target.read_bytes() != source.read_bytes():
            raise UsageError(f"{target} holds another record than {source}; ship into an empty folder")
    copied = 0
    for source, target in plan:
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(source.read_bytes(), target)
            copied += 1
    print(f"{copied} records copied into {out}, {len(plan) - copied} there already")
    return {"copied": copied, "records": len(plan)}


if __name__ == "__main__":
    run_cli(main, how=("OUT", "rerun the same command"))
