"""Tune one unlearning method for one setting with Optuna, without reading the test set.

The setting is a mask file (--mask, e.g. trial 1's model at one sparsity), a forget set (chosen as
main_forget.py chooses it) and the method's fixed flags; --reference is the finished Retrain run of
that mask and forget set. Every trial unlearns with flags drawn from the method's search space (its
registry entry; --space overrides) by a seeded TPE sampler and scores the result by its Avg. Gap to
Retrain over UA, MIA-Efficacy, RA and validation accuracy (the test split is removed before anything
runs; the attack's non-members are validation samples). Iterative methods report after every epoch
and the median pruner stops poor trials early. Then run the selected flags on the other trials
(scripts/sweep.py --tuned) and report only those.

    python main_tune.py --dataset digits --arch resnet20s --mask runs/omp/trial1/1model_SA_best.pth.tar \\
        --reference runs/unlearn/retrain --unlearn FT --class_to_replace -1 --num_indexes_to_replace 135 \\
        --seed 1 --n-trials 16 --save_dir runs/tune/FT

The study is stored in {save_dir}/study.db (SQLite; --storage for another database or journal:PATH for
a journal file on a shared filesystem); rerunning the command continues it up to --n-trials finished
trials; --slurm W runs W workers on it as a Slurm job array. Outputs: {save_dir}/best.json (the
selected flags, as method_args), {save_dir}/trials.csv (every trial) and {save_dir}/log.txt.
"""

from __future__ import annotations

import argparse

from experiments import arg_parser, tuning
from utils import log, run_cli


def make_parser():
    parser = arg_parser.Parser(description=__doc__, formatter_class=arg_parser.HelpFormatter)
    arg_parser.add_unlearning_run_args(parser, save_dir_default="runs/tune")
    group = parser.add_argument_group("tuning")
    group.add_argument("--reference", default=None, help="folder (or checkpoint) of the finished Retrain run of --mask")
    group.add_argument("--n-trials", type=int, default=16, help="finished trials the study should hold (the budget)")
    group.add_argument(
        "--space",
        action="append",
        default=[],
        metavar="NAME=LOW:HIGH[:log|:linear]",
        help="replace one range of the method's search space (repeatable); NAME=off searches it no more "
        "(its flag's value is used)",
    )
    group.add_argument("--study-name", default=None, help="name of the study in the storage (default: --unlearn)")
    group.add_argument(
        "--storage", default=None, help="Optuna storage: an RDB URL, or journal:PATH (default: SQLite in --save_dir)"
    )
    group.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler")
    group.add_argument("--n-startup-trials", type=int, default=8, help="random trials before TPE models the results")
    group.add_argument("--pruner-startup", type=int, default=4, help="trials before the median pruner stops any")
    group.add_argument(
        "--no-preset-trial",
        dest="preset_trial",
        action="store_false",
        help="do not make the published preset the first trial (it is when it lies in the space)",
    )
    slurm = parser.add_argument_group("slurm")
    slurm.add_argument(
        "--slurm", type=int, default=None, metavar="W", help="run W workers on the study as a Slurm job array"
    )
    slurm.add_argument("--slurm-args", default="", help="extra sbatch options, one string")
    slurm.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per worker (0 for a partition without GPUs)")
    slurm.add_argument("--dry-run", action="store_true", help="with --slurm: write the array files, submit nothing")
    slurm.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv=None):
    args = arg_parser.parse_with_preset(make_parser(), argv)
    args.study_name = args.study_name or args.unlearn
    tuning.validate(args)
    return tuning.run(args, log)


# A stopped study loses only the trial it was running (rerun first when it continues).
CONTINUE = ("--save_dir", "the finished trials are in the study: rerun the same command to continue it")

if __name__ == "__main__":
    run_cli(main, how=CONTINUE)
