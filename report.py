"""Turn folders of unlearning and backdoor results into the paper's tables, a CSV and sparsity plots.

Reads every ``*_eval.json`` (main_forget.py) and ``*_backdoor.json`` (main_backdoor.py) below the
given folders. Unlearning runs are grouped by (dataset, arch, scenario + forget set, sparsity,
method) and by run identity without its seeds (runs differing in any other defining flag or input are
separate rows, labelled by the differing values, e.g. "SSD (ssd_alpha=0.5)"); each group shows
mean ± sample std over seeds of UA, MIA-Efficacy, RA and TA, each with its gap to Retrain of the same
setting, sparsity, data and inputs in parentheses, the mean of the four gaps ("Avg. Gap") and the
mean RTE.

Beside them, each method's distance to Retrain, measured seed by seed against the Retrain run of the
same setting, sparsity and seed that has the same forget indices and mask (then mean ± std over the
seeds so paired; output_distance.py):
  JS_forget      mean over D_f of the Jensen–Shannon divergence (natural log, in [0, ln 2]) between the
                 method's and Retrain's softmax outputs
  JS_test        the same over the test set (class-wise: without the forgotten class, as for TA)
  L2_to_retrain  ‖θ − θ_Retrain‖₂ over every parameter of the effective model (a pruned conv's weight
                 is weight_orig * weight_mask; batch-norm statistics are buffers, not parameters)
Lower is closer to Retrain; Retrain's own row is 0. They need every run's {method}checkpoint.pth.tar
and its dataset: each model is rebuilt and predicted in float32 (--device, default cpu). On one CPU core
that is ~0.1 s per digits run but ~18 s per Fashion-MNIST resnet20s run (5,400 forget + 9,000-10,000 test
images); --no-output-metrics skips them. A run without a usable checkpoint or a matching Retrain gets
empty cells and a line under "Problems".

Writes into ``--out`` (default: the first RESULT_DIR):
  report.md            every table, the missing/partial runs and the problems found
  report.csv           one row per unlearning group (means, stds and 95% t-intervals over trials, gaps,
                       Avg. Gap, RTE, JS_forget, JS_test, L2_to_retrain and paired_seeds)
  sparsity_effects.csv per method and sparsity: each gap's change from dense, paired by trial, its 95%
                       t-interval and verdict
  runs.csv             one row per run: every metric and every field of its run identity
  backdoor.csv         one row per backdoor group (SA/ASR before and after)
  sparsity_UA.png      UA vs sparsity, one line per method (its 95% interval as a band), one panel per
                       (dataset, arch, scenario)
  sparsity_MIA.png     MIA-Efficacy vs sparsity, same layout
  backdoor_ASR_SA.png  ASR and SA after unlearning vs sparsity, one line per method

Example:
  python report.py runs/sweep --expect-methods retrain FT GA fisher_new wfisher FT_prune --expect-seeds 1 2 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments import arg_parser
from reporting import output_distance
from reporting.collect import METHOD_NAMES, sparsity_of
from reporting.document import build_report
from utils import UsageError, run_cli


def _flat_list(values, kind, flag):
    items = [item for value in values or [] for item in str(value).split(",") if item]
    try:
        return [kind(item) for item in items] or None
    except ValueError:
        raise UsageError(f"{flag} takes {kind.__name__} values separated by spaces or commas; got {values}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = arg_parser.Parser(description=__doc__, formatter_class=arg_parser.HelpFormatter)
    parser.add_argument(
        "result_dirs",
        nargs="+",
        metavar="RESULT_DIR",
        help="folders searched recursively for *_eval.json and *_backdoor.json (or such files)",
    )
    parser.add_argument("--out", default=None, help="where report.md/.csv and the PNGs go (default: first RESULT_DIR)")
    parser.add_argument(
        "--expect-methods",
        nargs="+",
        default=None,
        metavar="METHOD",
        help="methods every setting should have (--unlearn names or display names, e.g. retrain FT)",
    )
    parser.add_argument(
        "--expect-seeds",
        nargs="+",
        default=None,
        metavar="SEED",
        help="seeds every (setting, sparsity, method) should have, e.g. 1 2 3",
    )
    parser.add_argument(
        "--expect-rates",
        nargs="+",
        default=None,
        metavar="RATE",
        help="pruning rates (fractions as in the sweep's --rates, e.g. 0 0.5 0.9) every setting should "
        "have; default: the sparsities seen",
    )
    parser.add_argument(
        "--no-output-metrics",
        action="store_true",
        help="skip JS_forget, JS_test and L2_to_retrain (they rebuild and predict every run's checkpoint, "
        "~18 s per Fashion-MNIST resnet20s run on one CPU core, ~0.1 s per digits run)",
    )
    parser.add_argument(
        "--device", default="cpu", help="where the output metrics predict: cpu (default), cuda, cuda:N or auto"
    )
    parser.add_argument(
        "--data", default=None, help="folder of the dataset files for the output metrics (default: each run's --data)"
    )
    parser.add_argument(
        "--reference",
        choices=("inherited", "clean"),
        default="inherited",
        help="the Retrain every gap is measured against: of the same mask (inherited: trained on all of D), or "
        "clean: of a mask trained and pruned without the forget set (main_imp.py --leave_out_forget); with "
        "clean, the inherited-mask Retrain is listed as a method",
    )
    parser.add_argument(
        "--published",
        action="store_true",
        help="add the published CIFAR-10 ResNet-18 values (the paper's and SalUn's Table 1, "
        "reference/published.csv) beside ours, with the difference, for the settings they cover",
    )
    return parser


# run_cli's wording for this script: its output flag, and what to do after a stop (it has no --resume)
ENDINGS = ("--out", "nothing was written; rerun the same command")


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    by_display = {name: method for method, name in METHOD_NAMES.items()}
    methods = _flat_list(args.expect_methods, str, "--expect-methods")
    methods = [by_display.get(method, method) for method in methods] if methods else None
    rates = _flat_list(args.expect_rates, float, "--expect-rates")
    sparsities = [sparsity_of(1.0 - rate) for rate in rates] if rates else None
    seeds = _flat_list(args.expect_seeds, int, "--expect-seeds")
    first = Path(args.result_dirs[0])
    out = Path(args.out) if args.out else (first if first.is_dir() else first.parent)
    meter = None if args.no_output_metrics else output_distance.OutputMeter(args.device, args.data)
    progress = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731  (stdout carries the report)
    result = build_report(
        args.result_dirs,
        out,
        methods,
        seeds,
        sparsities,
        with_published=args.published,
        meter=meter,
        log=progress,
        clean_reference=args.reference == "clean",
    )
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")
    print(result["text"])
    print("wrote " + ", ".join(str(path) for path in result["files"]))
    return result


if __name__ == "__main__":
    run_cli(main, how=ENDINGS)
