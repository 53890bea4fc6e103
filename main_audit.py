"""Per-example audit of forgetting: N runs of a method against N Retrain runs, example by example.

    python main_audit.py --mask runs/omp/1model_SA_best.pth.tar --unlearn FT -N 8 --save_dir audit_ft \\
        --run-args "--dataset digits --arch resnet20s --device cpu --no-progress" \\
        --method-args "--unlearn_epochs 5 --unlearn_lr 0.01" --retrain-args "--unlearn_epochs 10 --unlearn_lr 0.05"
Runs {save_dir}/{unlearn}/seedK and {save_dir}/retrain/seedK (K = 1..N) as main_forget.py --save_outputs
subprocesses, reusing finished runs (the Retrain runs serve every method audited in one folder) and
resuming interrupted ones; writes {save_dir}/{unlearn}_audit.json and {unlearn}_audit_accuracy.png.
With --slurm the pending runs go to Slurm as one job array; the same command without --slurm then
computes the audit. Definitions: docs/usage.md, "main_audit.py".
"""

from __future__ import annotations

from experiments import arg_parser, audit
from reporting import audit_report
from utils import UsageError, log, run_cli


def make_parser():
    parser = arg_parser.Parser(description=__doc__, formatter_class=arg_parser.HelpFormatter)
    what = parser.add_argument_group("what to audit")
    what.add_argument("--mask", required=True, help="mask file to unlearn from (as main_forget.py --mask)")
    what.add_argument("--unlearn", required=True, help="the method to audit (a main_forget.py --unlearn name)")
    what.add_argument(
        "--reference-mask",
        dest="reference_mask",
        default=None,
        help="the Retrain side unlearns from this mask instead (runs in {save_dir}/retrain_clean): a mask trained "
        "without the forget set (main_imp.py --leave_out_forget); then --unlearn retrain audits the inherited mask",
    )
    what.add_argument("-N", "--num_models", type=int, default=4, help="runs per side, seeds 1..N (default 4)")
    what.add_argument("--save_dir", required=True, help="folder of the runs, the audit and its plot")
    how = parser.add_argument_group("how it runs")
    how.add_argument("-j", "--jobs", type=int, default=1, help="runs at once, each on its share of the cores")
    runs = parser.add_argument_group("the runs (main_forget.py flags) and the forget set")
    runs.add_argument("--run-args", dest="run_args", default="", help="main_forget.py flags of every run")
    runs.add_argument("--method-args", dest="method_args", default="", help="main_forget.py flags of the method")
    runs.add_argument("--retrain-args", dest="retrain_args", default="", help="main_forget.py flags of Retrain")
    runs.add_argument("--class_to_replace", type=int, default=0, help="class to forget (-1: random forgetting)")
    runs.add_argument("--num_indexes_to_replace", type=int, default=None, help="forget set size (required with -1)")
    runs.add_argument("--forget_seed", type=int, default=1, help="seed of a drawn forget set (drawn once)")
    slurm = parser.add_argument_group("Slurm")
    slurm.add_argument("--slurm", action="store_true", help="submit the pending runs as a Slurm job array instead")
    slurm.add_argument("--slurm-args", dest="slurm_args", default="", help="with --slurm: extra sbatch flags")
    slurm.add_argument("--slurm-gpus", dest="slurm_gpus", type=int, default=1, help="with --slurm: GPUs per task")
    slurm.add_argument("--dry-run", dest="dry_run", action="store_true", help="with --slurm: write, do not submit")
    return parser


MAX_MODELS = audit_report.MAX_MODELS  # what report.py reads back
MAX_JOBS = 1024


# run_cli's wording for this script: its output flag, and what to do after a stop (it has no --resume)
ENDINGS = ("--save_dir", "the finished runs are kept: rerun the same command to continue the audit")


def main(argv=None):
    args = make_parser().parse_args(argv)
    if not 2 <= args.num_models <= MAX_MODELS:
        raise UsageError(
            f"-N {args.num_models}: give 2..{MAX_MODELS} runs per side (the leave-one-model-out test needs 2)"
        )
    if not 1 <= args.jobs <= MAX_JOBS:
        raise UsageError(f"--jobs {args.jobs}: give 1..{MAX_JOBS} runs at once")
    if not 1 <= args.forget_seed <= 2**32:  # the draw uses RandomState(forget_seed - 1), as main_forget.py's
        raise UsageError(f"--forget_seed {args.forget_seed} is out of range; give 1..{2**32}")
    if args.class_to_replace < -1:
        raise UsageError(f"--class_to_replace {args.class_to_replace}: give a class, or -1 for random forgetting")
    if args.class_to_replace == -1 and args.num_indexes_to_replace is None:
        raise UsageError("--class_to_replace -1 (random forgetting) needs --num_indexes_to_replace")
    if args.slurm:
        return audit.submit_slurm(args, log)
    result = audit.run_audit(args, log)
    for name in ("method_vs_retrain", "noise_floor"):
        part = result[name]
        if part is None:
            log(f"{name}: not measured (needs -N >= 4)")
            continue
        acc, eps = part["attack_accuracy"], part["epsilon"]
        log(
            f"{name} ({part['models'][0]} vs {part['models'][1]} models): attack accuracy mean {acc['mean']:.3f} "
            f"(q10 {acc['q10']:.3f} q50 {acc['q50']:.3f} q90 {acc['q90']:.3f}); epsilon mean {eps['mean']:.3f} "
            f"(q50 {eps['q50']:.3f} q90 {eps['q90']:.3f}, at most {part['largest_measurable_epsilon']:.2f})"
        )
    written = audit.result_files(args.save_dir, args.unlearn)["json"]
    log(f"runs {result['runs']}; {result['seconds']:.0f} s -> {written}")
    return result


if __name__ == "__main__":
    run_cli(main, how=ENDINGS)
