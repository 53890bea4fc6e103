"""Trojan-model cleanse: poison part of D with a trigger, train on it (or load --mask), unlearn the poison.

The original README's command (θ_o from --mask, unlearned with FT):
    python -u main_backdoor.py --save_dir out --mask runs/backdoor/poisoned/1model_SA_best.pth.tar \\
        --unlearn FT --num_indexes_to_replace 4500
On digits, whose background is black, the trigger must be white and smaller:
    python -u main_backdoor.py --dataset digits --arch resnet20s --epochs 30 --lr 0.05 --decreasing_lr 20,25 \\
        --batch_size 128 --no-aug --pruning_times 2 --rate 0.95 --rewind_epoch 3 --trigger_value 1 \\
        --trigger_size 3 --num_indexes_to_replace 129 --unlearn FT --save_dir runs/backdoor
Without --mask the poisoned model is trained as main_imp.py does into {save_dir}/poisoned/ (one
{k}model_SA_best.pth.tar per round, each recording the trigger and the poisoned indices); the last
round's is unlearned, and a later run with the same arguments and another --unlearn reuses it.
D_f = the poisoned samples, D_r = the clean rest. Outputs: {save_dir}/{unlearn}_backdoor.json
(SA, ASR before/after) and {save_dir}/{unlearn}_backdoor_model.pth.tar.
"""

from __future__ import annotations

from experiments import arg_parser, backdoor_files, backdoor_run
from utils import log, run_cli

BACKDOOR_HELP = {
    "mask": "poisoned checkpoint to unlearn ({k}model_SA_best.pth.tar of a main_backdoor.py run); default: train one",
    "num_indexes_to_replace": "number of training samples to poison (they are the forget set)",
    "class_to_replace": "target class: the label of the poisoned samples (default 0)",
    "resume": "continue the interrupted training in {save_dir}/poisoned and the unlearning progress",
}


def make_parser():
    parser = arg_parser.Parser(description=__doc__, formatter_class=arg_parser.HelpFormatter)
    arg_parser.add_training_run_args(parser, save_dir_default="runs/backdoor")
    arg_parser.add_unlearn_args(parser)
    arg_parser.add_attack_args(parser)
    for action in parser._actions:  # shared flags that mean something more specific here
        action.help = BACKDOOR_HELP.get(action.dest, action.help)
    return parser


def main(argv=None):
    args = make_parser().parse_args(argv)
    backdoor_run.validate(args)
    results = backdoor_run.run(args, log)
    target = args.class_to_replace
    before, after = (
        {key: results[f"{key}_{when}"] for key in ("SA", "ASR", "ASR_nontarget", "forget_acc")}
        for when in ("before", "after")
    )
    log(f"unlearning ({args.unlearn}) took {results['RTE_min']:.3f} min")
    log(f"SA  (clean test accuracy):              before {before['SA']:.2f}%  after {after['SA']:.2f}%")
    log(f"ASR (triggered test set, all classes):  before {before['ASR']:.2f}%  after {after['ASR']:.2f}%")
    log(
        f"ASR (triggered, true class != {target}):     before {before['ASR_nontarget']:.2f}%  "
        f"after {after['ASR_nontarget']:.2f}%"
    )
    log(
        f"accuracy on the poisoned samples (label {target}): before {before['forget_acc']:.2f}%  "
        f"after {after['forget_acc']:.2f}%"
    )
    log(f"-> {backdoor_files.paths(args.save_dir, args.unlearn)['results']}")
    return results


if __name__ == "__main__":
    run_cli(main)
