"""The command-line flags shared by the four scripts, in groups, with the original code's defaults."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from utils import UsageError


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit status 2 (argparse's own usage block dropped)."""

    def error(self, message):
        self.exit(2, f"error: {message}; see {self.prog} --help\n")


def _int_or_none(text: str):
    return None if text in ("None", "none", "") else int(text)


def add_data_args(parser):
    group = parser.add_argument_group("data")
    group.add_argument("--data", default="../data", help="folder holding the dataset files (default ../data)")
    group.add_argument(
        "--dataset", default="cifar10", help="cifar10, cifar100, svhn, TinyImagenet, digits or fashionmnist"
    )
    group.add_argument("--data_dir", default="./tiny-imagenet-200", help="TinyImageNet-200 folder")
    group.add_argument(
        "--input_size", type=int, default=32, help="accepted for compatibility; sizes come from the data"
    )
    group.add_argument("--num_classes", type=int, default=10, help="accepted for compatibility; taken from the data")
    group.add_argument(
        "--num_workers", type=int, default=4, help="accepted for compatibility; data stays on the device"
    )
    group.add_argument("--workers", type=int, default=4, help="accepted for compatibility (see --num_workers)")
    group.add_argument("--split_seed", type=int, default=1, help="seed of the 10%%-per-class validation split")
    group.add_argument(
        "--train_subset",
        type=int,
        default=None,
        help="use a stratified N-sample subset of the official training set (drawn with --split_seed "
        "before the validation split); default: all of it",
    )
    group.add_argument("--no-aug", dest="no_aug", action="store_true", help="no train-time crop/flip augmentation")
    group.add_argument("--batch_size", type=int, default=256, help="batch size (default 256)")
    return group


def add_model_args(parser):
    group = parser.add_argument_group("model")
    group.add_argument(
        "--arch", default="resnet18", help="resnet18, resnet50, resnet20s, resnet44s, resnet56s, vgg16_bn"
    )
    group.add_argument("--imagenet_arch", action="store_true", help="7x7/2 stem + max-pool instead of the CIFAR stem")
    return group


def add_run_args(parser, save_dir_default="results"):
    group = parser.add_argument_group("run")
    group.add_argument("--seed", type=int, default=2, help="seed of training randomness and the forget-set draw")
    group.add_argument("--train_seed", type=int, default=1, help="seed of the fresh initialisation used by retrain")
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto: cuda:--gpu when available)")
    group.add_argument("--gpu", type=int, default=0, help="GPU index used by --device auto/cuda")
    group.add_argument("--fp32", action="store_true", help="on CUDA: no bf16 autocast and no channels-last")
    group.add_argument("--compile", action="store_true", help="torch.compile the model's forward pass (opt-in)")
    group.add_argument("--no-progress", dest="no_progress", action="store_true", help="hide the tqdm progress bars")
    group.add_argument("--resume", action="store_true", help="continue the run saved in --save_dir")
    group.add_argument("--checkpoint", default=None, help="resume from this checkpoint file instead")
    group.add_argument("--save_dir", default=save_dir_default, help="output folder")
    group.add_argument("--print_freq", type=int, default=50, help="accepted for compatibility; tqdm shows progress")
    return group


def add_train_args(parser):
    group = parser.add_argument_group("train")
    group.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    group.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    group.add_argument("--weight_decay", type=float, default=5e-4, help="SGD weight decay")
    group.add_argument("--epochs", type=int, default=182, help="epochs per training round")
    group.add_argument("--warmup", type=int, default=0, help="epochs of linear learning-rate warm-up")
    group.add_argument("--decreasing_lr", default="91,136", help="epochs at which the LR is multiplied by 0.1")
    return group


def add_prune_args(parser):
    group = parser.add_argument_group("prune")
    group.add_argument("--prune", default="omp", help="accepted for compatibility (omp = one-shot, IMP via rounds)")
    group.add_argument("--pruning_times", type=int, default=1, help="training rounds; round 0 is dense (OMP: 2)")
    group.add_argument("--rate", type=float, default=0.95, help="fraction of remaining conv weights pruned per round")
    group.add_argument(
        "--prune_type", default="rewind_lt", help="lt, pt or rewind_lt: what surviving weights rewind to"
    )
    group.add_argument("--random_prune", action="store_true", help="prune a random set instead of smallest |w|")
    group.add_argument("--rewind_epoch", type=int, default=0, help="rewind_lt: epoch of round 0 to rewind to")
    group.add_argument("--rewind_pth", default=None, help="file of weights to rewind to instead")
    return group


def add_unlearn_args(parser):
    group = parser.add_argument_group("unlearn")
    group.add_argument("--mask", default=None, help="checkpoint (mask file) from main_imp.py / main_synflow.py")
    group.add_argument("--unlearn", default="retrain", help=unlearn_help())
    group.add_argument("--unlearn_lr", type=float, default=0.01, help="learning rate of iterative unlearning")
    group.add_argument("--unlearn_epochs", type=int, default=10, help="epochs of iterative unlearning")
    group.add_argument("--num_indexes_to_replace", type=_int_or_none, default=None, help="size of the forget set")
    group.add_argument("--class_to_replace", type=int, default=0, help="class to forget from (-1: any class)")
    group.add_argument(
        "--indexes_to_replace", default=None, help="explicit forget indices: comma list or .npy/.txt file"
    )
    group.add_argument("--alpha", type=float, default=0.2, help="FF noise scale, IU step, or l1 coefficient")
    group.add_argument("--no-l1-epochs", dest="no_l1_epochs", type=int, default=0, help="final epochs without l1")
    import unlearn  # here, not at the top: the methods import this module

    for flag in unlearn.method_flags():
        group.add_argument(f"--{flag.name}", type=flag.type, default=flag.default, help=flag.help)
    return group


def unlearn_help() -> str:
    """--unlearn's help: every registered method with its paper name and help line."""
    import unlearn  # here, not at the top: the methods import this module

    lines = [f"{m.name} ({m.paper_name}): {m.help}" if m.help else m.name for m in unlearn.listed()]
    return "method (default retrain); " + "; ".join(lines)


def add_attack_args(parser):
    group = parser.add_argument_group("attack")
    group.add_argument("--attack", default="backdoor", help="accepted for compatibility: the attack is a backdoor")
    group.add_argument("--trigger_size", type=int, default=4, help="side of the square trigger in pixels")
    group.add_argument("--trigger_value", type=float, default=0.0, help="trigger intensity in [0, 1] (0 = black)")
    return group


def parse_milestones(text: str) -> list[int]:
    try:
        milestones = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--decreasing_lr '{text}' does not parse; give comma-separated epochs like 91,136") from None
    if any(m < 0 for m in milestones):
        raise UsageError(f"--decreasing_lr '{text}' has a negative epoch; give epochs >= 0")
    return milestones


def check_nonnegative(args, names):
    for name in names:
        value = getattr(args, name, None)
        if value is not None and value < 0:
            raise UsageError(f"--{name} {value} is negative; give a value >= 0")


def refuse_to_overwrite(save_dir, patterns, resume: bool) -> None:
    """Never overwrite a run already in ``save_dir`` by accident: continue it with --resume or use another folder.

    ``patterns`` are glob patterns of the files this script's run leaves there (e.g. ``[0-9]*checkpoint.pth.tar``).
    """
    if resume:
        return
    for pattern in patterns:
        found = sorted(Path(save_dir).glob(pattern))
        if found:
            raise UsageError(
                f"--save_dir '{save_dir}' already holds a run of this command ({found[0].name}); add --resume to "
                f"continue or reuse it, or choose another --save_dir (delete the old one to start over)"
            )


def check_save_dir(path) -> Path:
    """Create ``path`` if needed and make sure we can write there, before any work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--save_dir '{path}' cannot be created ({err.strerror}); choose a writable folder") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"--save_dir '{path}' is not writable; choose a writable folder")
    return path
