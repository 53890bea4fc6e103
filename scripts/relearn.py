"""The relearn time of finished unlearning runs, measured on copies so the runs themselves stay as they are.

For every finished run under SWEEP/unlearn/{scenario}/r{rate}/{method}/train_seed{k}/seed{k} (the layout
of scripts/sweep.py and `make fashionmnist`) of the chosen methods, rates and trials, the run's two result
files are copied to OUT/unlearn/{scenario}/r{rate}/{method}/train_seed{k}/seed{k} and main_forget.py continues the
copy with --resume --relearn (the unlearning step is reused, not rerun), against the Retrain run of the
same folder pattern. A copy that already holds its relearn time is skipped, so the command resumes.
The relearn flags after `--` go to main_forget.py (e.g. -- --relearn_max_steps 200). Then:
    python report.py OUT/unlearn/random --out OUT/report_random --no-output-metrics

    python scripts/relearn.py runs/fashionmnist/fashionmnist_resnet20s runs/relearn \\
        --methods retrain FT GA fisher_new wfisher FT_prune --rates 0 0.95 --trials 1 2 3 --scenarios random
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments import arg_parser, unlearning_files  # noqa: E402
from utils import UsageError, run_cli  # noqa: E402

NOT_COPIED = ("save_dir", "resume", "checkpoint", "save_outputs", "preset")  # how to run, not what ran


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="the sweep folder holding unlearn/{scenario}/r{rate}/{method}/...")
    parser.add_argument("out", help="where the measured copies go")
    parser.add_argument("--methods", nargs="+", required=True, help="--unlearn names (retrain is its own reference)")
    parser.add_argument("--rates", nargs="+", default=["0", "0.95"], help="the r{rate} folders (default 0 0.95)")
    parser.add_argument("--trials", nargs="+", type=int, default=[1, 2, 3], help="trials k (default 1 2 3)")
    parser.add_argument("--scenarios", nargs="+", default=["random"], help="class and/or random (default random)")
    return parser


def run_folder(sweep: Path, scenario: str, rate: str, method: str, trial: int) -> Path:
    return sweep / "unlearn" / scenario / f"r{rate}" / method / f"train_seed{trial}" / f"seed{trial}"


def command(record: dict, copy: Path, reference: Path | None, extra: list[str]) -> list[str]:
    """main_forget.py's command that continues ``copy`` with the recorded flags, adding the relearn time."""
    shared = {action.dest for action in arg_parser.full_parser()._actions if action.option_strings}
    values = {key: value for key, value in record["args"].items() if key in shared and key not in NOT_COPIED}
    argv = [sys.executable, str(ROOT / "main_forget.py"), *shlex.split(arg_parser.command_line(values))]
    argv += ["--save_dir", str(copy), "--resume", "--relearn"]
    return argv + (["--relearn_reference", str(reference)] if reference is not None else []) + extra


def measure_one(sweep: Path, out: Path, key: tuple, extra: list[str]) -> str:
    scenario, rate, method, trial = key
    source = run_folder(sweep, scenario, rate, method, trial)
    files = unlearning_files.paths(source, method)
    if not files["results"].is_file() or not files["checkpoint"].is_file():
        return f"skipped {source}: not finished"
    copy = run_folder(out, scenario, rate, method, trial)
    done = unlearning_files.paths(copy, method)["results"]
    if done.is_file() and json.loads(done.read_text()).get("relearn") is not None:
        return f"done already: {copy}"
    copy.mkdir(parents=True, exist_ok=True)
    for name in ("results", "checkpoint"):
        target = copy / files[name].name
        if not target.is_file():
            shutil.copy2(files[name], target)
    reference = None if method == "retrain" else run_folder(sweep, scenario, rate, "retrain", trial)
    record = json.loads(files["results"].read_text())
    result = subprocess.run(command(record, copy, reference, extra), capture_output=True, text=True)
    if result.returncode != 0:
        raise UsageError(f"main_forget.py failed on {copy}: {result.stderr.strip().splitlines()[-1:]}")
    return next((line for line in result.stdout.splitlines() if line.startswith("relearn time")), "measured")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = build_parser().parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    sweep, out = Path(args.sweep), Path(args.out)
    if not (sweep / "unlearn").is_dir():
        raise UsageError(f"'{sweep}' has no unlearn/ folder; give the sweep folder (e.g. .../fashionmnist_resnet20s)")
    for scenario in args.scenarios:
        for rate in args.rates:
            for method in args.methods:
                for trial in args.trials:
                    line = measure_one(sweep, out, (scenario, rate, method, trial), extra)
                    print(f"{scenario} r{rate} {method} trial {trial}: {line}", flush=True)


if __name__ == "__main__":
    run_cli(main)
