"""The Python half of benchmarks/gpu_check.sh: compare two runs' results, and gather everything into one file.

    python benchmarks/gpu_check.py agree CPU_EVAL.json DEVICE_EVAL.json --json out.json
    python benchmarks/gpu_check.py collect --dir runs/gpu_check --device cuda --json-dir benchmarks

``agree`` checks that two unlearning runs of one method from one mask file (e.g. one on the CPU, one
on the GPU) used the same forget set and the same mask, and that their accuracies on D_r, D_f, val
and test differ by at most ``--points`` points or ``--samples`` samples, whichever is more; it exits
with status 1 when they do not. ``collect`` writes ``results_gpu_<card>.json``: the benchmark files,
the agreement checks, the stage timings and every Fashion-MNIST result found under ``--dir``.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils import atomic_write_json, resolve_device  # noqa: E402

PARTS = ("retain", "forget", "val", "test")


def agreement(first: dict, second: dict, points: float, samples: int, sizes: dict) -> dict:
    """Same forget set and mask; per-subset accuracy gaps against max(points, 100·samples/size)."""
    gaps, allowed = {}, {}
    for part in PARTS:
        gaps[part] = abs(first["accuracy"][part] - second["accuracy"][part])
        size = sizes.get(part)
        allowed[part] = max(points, 100.0 * samples / size) if size else points
    same_forget = first["forget_indices"] == second["forget_indices"]
    same_mask = first["remaining_weight_ratio"] == second["remaining_weight_ratio"]
    within = all(gaps[part] <= allowed[part] for part in PARTS)
    return {
        "method": first["method"],
        "same_forget_set": same_forget,
        "same_mask": same_mask,
        "accuracy_gaps": gaps,
        "allowed": allowed,
        "agree": same_forget and same_mask and within,
    }


def read_sizes(path: str | None) -> dict:
    return json.loads(Path(path).read_text()) if path else {}


def cmd_agree(args) -> int:
    first, second = (json.loads(Path(path).read_text()) for path in (args.first, args.second))
    sizes = {**read_sizes(args.sizes), "forget": first["num_forget"]}
    result = agreement(first, second, args.points, args.samples, sizes)
    result["runs"] = [args.first, args.second]
    atomic_write_json(result, args.json)
    gaps = ", ".join(f"{part} {gap:.2f}" for part, gap in result["accuracy_gaps"].items())
    verdict = "agree" if result["agree"] else "DISAGREE"
    print(
        f"{result['method']}: {verdict} (same forget set {result['same_forget_set']}, same mask "
        f"{result['same_mask']}; |gap| in points: {gaps})"
    )
    return 0 if result["agree"] else 1


def card_name(device: str) -> str:
    import torch

    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return torch.cuda.get_device_name(resolved)
    return f"cpu {platform.processor() or platform.machine()}"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def unlearning_results(root: Path) -> dict:
    """{run folder relative to ``root``: its headline numbers} for every ``*_eval.json`` below ``root``."""
    keys = ("UA", "RA", "TA", "MIA_efficacy", "RTE_min", "remaining_weight_ratio", "num_forget")
    found = {}
    for path in sorted(root.rglob("*_eval.json")):
        record = json.loads(path.read_text())
        found[str(path.parent.relative_to(root))] = {key: record.get(key) for key in keys}
    return found


def json_files(folder: Path, pattern: str) -> dict:
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob(pattern))}


def cmd_collect(args) -> int:
    folder = Path(args.dir)
    name = card_name(args.device)
    out = Path(args.json_dir) / f"results_gpu_{slug(name)}.json"
    results = {
        "device": name,
        "tiny": args.tiny,
        "stage_seconds": json.loads((folder / "stages.json").read_text()) if (folder / "stages.json").is_file() else {},
        "benchmarks": json_files(folder, "bench_*.json"),
        "agreement": json_files(folder, "agree_*.json"),
        "fashionmnist": unlearning_results(folder / "fashionmnist"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results, out)
    print(f"wrote {out}")
    return 0


def cmd_stage(args) -> int:
    """Record one stage's seconds in ``{dir}/stages.json`` (atomically)."""
    path = Path(args.dir) / "stages.json"
    stages = json.loads(path.read_text()) if path.is_file() else {}
    stages[args.name] = args.seconds
    atomic_write_json(stages, path)
    return 0


def cmd_sizes(args) -> int:
    """Write the sizes of D_r, val and test of a digits run (for ``agree``'s per-sample tolerance)."""
    import dataset

    data = dataset.build_data(dataset.load_raw("digits"), split_seed=1, train_subset=args.train_subset)
    sizes = {
        "retain": len(data.train_labels) - args.num_forget,
        "val": len(data.val_labels),
        "test": len(data.test_labels),
    }
    atomic_write_json(sizes, args.json)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    agree = commands.add_parser("agree", help="compare two runs' {method}_eval.json")
    agree.add_argument("first")
    agree.add_argument("second")
    agree.add_argument("--points", type=float, default=3.0, help="allowed accuracy gap in points")
    agree.add_argument("--samples", type=int, default=3, help="allowed gap in samples, if that is more points")
    agree.add_argument("--sizes", default=None, help="JSON of the subset sizes (from the sizes command)")
    agree.add_argument("--json", required=True, help="where to write the comparison")
    sizes = commands.add_parser("sizes", help="subset sizes of a digits run")
    sizes.add_argument("--num_forget", type=int, required=True)
    sizes.add_argument("--train_subset", type=int, default=None, help="the runs' --train_subset, if any")
    sizes.add_argument("--json", required=True)
    stage = commands.add_parser("stage", help="record a stage's seconds")
    stage.add_argument("--dir", required=True)
    stage.add_argument("name")
    stage.add_argument("seconds", type=float)
    collect = commands.add_parser("collect", help="write results_gpu_<card>.json")
    collect.add_argument("--dir", required=True, help="gpu_check.sh's work folder")
    collect.add_argument("--device", default="cuda")
    collect.add_argument("--tiny", action="store_true", help="the run used tiny sizes (a dry run)")
    collect.add_argument("--json-dir", default="benchmarks", help="folder of the results file")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    commands = {"agree": cmd_agree, "collect": cmd_collect, "stage": cmd_stage, "sizes": cmd_sizes}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
