"""The command-line flags shared by the four scripts, in groups, with the original code's defaults."""

from __future__ import annotations

import argparse

import dataset
import models
from experiments.run_identity import BACKDOOR, SYNFLOW, TRAINING, UNLEARNING
from utils import UsageError, one_line

# Which kinds of run each flag defines (run_identity.py): the flags of a run's identity are read from
# here, so a flag is declared once, with its kinds, in the group below that adds it.
TRAINS = (TRAINING, SYNFLOW)  # the training and pruning runs of main_imp.py and main_synflow.py


UNLEARNS = (UNLEARNING, BACKDOOR)  # a forgetting step: main_forget.py's, and main_backdoor.py's cleanse


EVERY_RUN = TRAINS + UNLEARNS


DEFINES: dict[str, frozenset] = {}
# Flags added after runs were made, with their default: an identity that lacks one was made before it existed,
# when the run did what the default does, so it stays the same experiment (run_identity.differences). Those
# also in RECORDED_UNLESS are left out of new identities at their default, so those stay as they were.
ABSENT_MEANS: dict[str, object] = {}
RECORDED_UNLESS: dict[str, object] = {}
_ALWAYS = object()


def add(group, *names, defines=(), added_later=None, **options):
    """``group.add_argument(*names, **options)``, recording which kinds of run the flag defines. ``added_later``
    ("omitted" or "recorded"): a flag declared after runs were made; "omitted" leaves it out of identities
    at its default, "recorded" (for a flag already recorded so) keeps it in."""
    action = group.add_argument(*names, **options)
    kinds = frozenset(defines)
    if DEFINES.setdefault(action.dest, kinds) != kinds:
        raise ValueError(f"--{action.dest} is declared with two different sets of kinds of run")
    if added_later is not None:
        ABSENT_MEANS[action.dest] = action.default
        if added_later == "omitted":
            RECORDED_UNLESS[action.dest] = action.default
    return action


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit status 2 (argparse's own usage block dropped)."""

    def format_help(self):
        """Help with the compatibility-only flags last."""
        self._action_groups.sort(key=lambda group: group.title == COMPATIBILITY)
        return super().format_help()

    def error(self, message):
        self.exit(2, one_line(f"error: {message}; see {self.prog} --help") + "\n")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The description as written; every flag's default shown, unless its help states it already."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or "default" in text or action.default in (None, False, "", argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


COMPATIBILITY = "accepted for compatibility with the original's command lines (no effect here)"


def compatibility_group(parser):
    """The one group of --help that holds the flags kept only so the original's commands run."""
    for group in parser._action_groups:
        if group.title == COMPATIBILITY:
            return group
    return parser.add_argument_group(COMPATIBILITY)


def _int_or_none(text: str):
    return None if text in ("None", "none", "") else int(text)


def add_data_args(parser):
    group = parser.add_argument_group("data")
    add(group, "--data", default="../data", help="folder holding the dataset files (default ../data)")
    add(
        group,
        "--dataset",
        defines=EVERY_RUN,
        default="cifar10",
        help=dataset.dataset_help(),
    )
    add(group, "--data_dir", default="./tiny-imagenet-200", help="TinyImageNet-200 folder")
    add(
        group,
        "--image_size",
        defines=EVERY_RUN,
        added_later="omitted",
        type=int,
        default=224,
        help="--dataset imagenet: the side its images are decoded to and kept in memory at (224 as the "
        "original; ImageNet-1k needs about 190 GB there, 15.7 GB at 64)",
    )
    compat = compatibility_group(parser)
    add(compat, "--input_size", type=int, default=32, help="no effect: sizes come from the data")
    add(compat, "--num_classes", type=int, default=10, help="no effect: taken from the data")
    add(compat, "--num_workers", type=int, default=4, help="no effect: the data stays on the device")
    add(compat, "--workers", type=int, default=4, help="no effect (see --num_workers)")
    add(
        group,
        "--split_seed",
        defines=EVERY_RUN,
        type=int,
        default=1,
        help="seed of the 10%%-per-class validation split",
    )
    add(
        group,
        "--train_subset",
        defines=EVERY_RUN,
        type=int,
        default=None,
        help="use a stratified N-sample subset of the official training set (drawn with --split_seed "
        "before the validation split); default: all of it",
    )
    add(
        group,
        "--no-aug",
        defines=EVERY_RUN,
        dest="no_aug",
        action="store_true",
        help="no train-time crop/flip augmentation",
    )
    add(group, "--batch_size", defines=EVERY_RUN, type=int, default=256, help="batch size (default 256)")
    return group


def add_model_args(parser):
    group = parser.add_argument_group("model")
    add(
        group,
        "--arch",
        defines=EVERY_RUN,
        default="resnet18",
        help=", ".join(models.MODELS),
    )
    add(
        group,
        "--imagenet_arch",
        defines=EVERY_RUN,
        action="store_true",
        help="7x7/2 stem + max-pool instead of the CIFAR stem",
    )
    return group


def add_run_args(parser, save_dir_default="results"):
    group = parser.add_argument_group("run")
    add(
        group,
        "--seed",
        defines=EVERY_RUN,
        type=int,
        default=2,
        help="seed of training randomness and the forget-set draw",
    )
    add(
        group,
        "--train_seed",
        defines=UNLEARNS,
        type=int,
        default=1,
        help="seed of the fresh initialisation used by retrain",
    )
    add(group, "--device", default="auto", help="auto, cpu, cuda or cuda:N (auto: cuda:--gpu when available)")
    add(group, "--gpu", type=int, default=0, help="GPU index used by --device auto/cuda")
    add(
        group,
        "--threads",
        defines=EVERY_RUN,
        added_later="recorded",
        type=int,
        default=1,
        help="CPU threads PyTorch computes with; part of the run's identity, since on the CPU the weights depend "
        "on it (one seed trained with 1 or 2 threads gives different models); a run made before the flag "
        "existed counts as --threads 1",
    )
    add(group, "--fp32", action="store_true", help="on CUDA: no bf16 autocast and no channels-last")
    add(group, "--compile", action="store_true", help="torch.compile the model's forward pass (opt-in)")
    add(group, "--no-progress", dest="no_progress", action="store_true", help="hide the tqdm progress bars")
    add(group, "--resume", action="store_true", help="continue the run saved in --save_dir")
    add(group, "--checkpoint", default=None, help="resume from this checkpoint file instead")
    add(group, "--save_dir", default=save_dir_default, help="output folder")
    add(compatibility_group(parser), "--print_freq", type=int, default=50, help="no effect: tqdm shows progress")
    return group


def add_train_args(parser, unlearning: bool = False):
    """The optimiser's flags; ``unlearning``: without --lr and --epochs (unlearning has its own)."""
    group = parser.add_argument_group("train" if not unlearning else "optimiser (also used by unlearning)")
    if not unlearning:
        add(group, "--lr", defines=TRAINS, type=float, default=0.1, help="learning rate")
    add(group, "--momentum", defines=EVERY_RUN, type=float, default=0.9, help="SGD momentum")
    add(group, "--weight_decay", defines=EVERY_RUN, type=float, default=5e-4, help="SGD weight decay")
    if not unlearning:
        add(group, "--epochs", defines=TRAINS, type=int, default=182, help="epochs per training round")
        add_prior_args(group)
    add(group, "--warmup", defines=EVERY_RUN, type=int, default=0, help="epochs of linear learning-rate warm-up")
    add(
        group,
        "--decreasing_lr",
        defines=EVERY_RUN,
        default="91,136",
        help="epochs at which the LR is multiplied by 0.1",
    )
    return group


def add_prior_args(group) -> None:
    """The original's "other priors than sparsity" for training: SAM (its main_sam.py), label smoothing (main_ls.py)."""
    from training.trainer import OPTIMIZERS, SCHEDULES

    add(
        group,
        "--optimizer",
        defines=TRAINS,
        added_later="omitted",
        choices=OPTIMIZERS,
        default="sgd",
        help="sgd; sam: SAM around SGD (rho 2, adaptive) in every round, as the original's main_sam.py trains; "
        "adam: Adam at --lr without weight decay, as its main_vit.py trains Swin-T",
    )
    add(
        group,
        "--schedule",
        defines=TRAINS,
        added_later="omitted",
        choices=SCHEDULES,
        default="multistep",
        help="multistep: the LR times 0.1 at --decreasing_lr; cosine: annealed to 0 over --epochs (main_vit.py)",
    )
    add(
        group,
        "--label_smoothing",
        defines=TRAINS,
        added_later="omitted",
        type=float,
        default=0.0,
        help="label-smoothing epsilon of the training loss (the original's main_ls.py: 0.1)",
    )


def add_prune_args(parser):
    group = parser.add_argument_group("prune")
    add(compatibility_group(parser), "--prune", default="omp", help="no effect (omp = one-shot, IMP via rounds)")
    add(
        group, "--pruning_times", defines=TRAINS, type=int, default=1, help="training rounds; round 0 is dense (OMP: 2)"
    )
    add(
        group,
        "--rate",
        defines=TRAINS,
        type=float,
        default=0.95,
        help="fraction of remaining conv weights pruned per round",
    )
    add(
        group,
        "--prune_type",
        defines=TRAINS,
        default="rewind_lt",
        help="lt, pt or rewind_lt: what surviving weights rewind to",
    )
    add(group, "--random_prune", defines=TRAINS, action="store_true", help="prune a random set instead of smallest |w|")
    add(group, "--rewind_epoch", defines=TRAINS, type=int, default=0, help="rewind_lt: epoch of round 0 to rewind to")
    add(group, "--rewind_pth", default=None, help="file of weights to rewind to instead")
    return group


FORGET_SET_FLAGS = ("--num_indexes_to_replace", "--class_to_replace", "--indexes_to_replace")


def add_forget_set_args(group) -> None:
    """The flags that choose the forget set (main_forget.py's, and main_imp.py's with --leave_out_forget)."""
    add(
        group,
        "--num_indexes_to_replace",
        defines=UNLEARNS,
        type=_int_or_none,
        default=None,
        help="size of the forget set",
    )
    add(group, "--class_to_replace", defines=UNLEARNS, type=int, default=0, help="class to forget from (-1: any class)")
    add(group, "--indexes_to_replace", default=None, help="explicit forget indices: comma list or .npy/.txt file")
    add(
        group,
        "--index_numbering",
        defines=UNLEARNS,
        added_later="omitted",
        choices=dataset.NUMBERINGS,
        default="split",
        help="what --indexes_to_replace counts: split = positions in the training set after the validation split "
        "(the original's meaning); official = positions in the official training set, as released forget sets "
        "number them (one in the validation split is refused)",
    )


def add_leave_out_args(parser):
    """main_imp.py's clean reference: train and prune on D_r alone, D_f chosen exactly as main_forget.py chooses it."""
    group = parser.add_argument_group("leave a forget set out (a clean reference for the mask)")
    add(
        group,
        "--leave_out_forget",
        action="store_true",
        help="train every round on D_r only: the forget set that --class_to_replace, --num_indexes_to_replace or "
        "--indexes_to_replace and --forget_seed choose (as main_forget.py --seed would) never enters a batch",
    )
    add(
        group,
        "--forget_seed",
        type=int,
        default=None,
        help="the --seed main_forget.py draws D_f with (default: --seed)",
    )
    add_forget_set_args(group)
    return group


def add_unlearn_args(parser):
    group = parser.add_argument_group("unlearn")
    add(group, "--mask", default=None, help="checkpoint (mask file) from main_imp.py / main_synflow.py")
    add(group, "--unlearn", defines=UNLEARNS, default="retrain", help=unlearn_help())
    parser.epilog = methods_table()
    add(group, "--unlearn_lr", defines=UNLEARNS, type=float, default=0.01, help="learning rate of iterative unlearning")
    add(group, "--unlearn_epochs", defines=UNLEARNS, type=int, default=10, help="epochs of iterative unlearning")
    add_forget_set_args(group)
    add(group, "--alpha", defines=UNLEARNS, type=float, default=0.2, help="FF noise scale, IU step, or l1 coefficient")
    add(
        group,
        "--no-l1-epochs",
        defines=UNLEARNS,
        dest="no_l1_epochs",
        type=int,
        default=0,
        help="final epochs without l1",
    )
    import unlearn  # here, not at the top: the methods import this module

    for flag in unlearn.method_flags():
        names = [f"--{flag.name}", *(alias for alias in flag.aliases if alias not in parser._option_string_actions)]
        later = {"added_later": flag.added_later} if flag.added_later else {}
        if flag.type is bool:
            add(group, *names, defines=UNLEARNS, action="store_true", help=flag.help, **later)
        else:
            add(group, *names, defines=UNLEARNS, type=flag.type, default=flag.default, help=flag.help, **later)
    return group


PUBLISHED = "published"


def add_relearn_args(parser) -> None:
    """main_forget.py's optional relearn-time metric (evaluation/relearn.py); it does not define the run."""
    group = parser.add_argument_group("relearn time (an optional metric, measured after the evaluation)")
    add(
        group,
        "--relearn",
        action="store_true",
        help="measure the relearn time: SGD steps on D_f until D_f accuracy reaches Retrain's plus --relearn_margin",
    )
    add(
        group,
        "--relearn_reference",
        default=None,
        help="folder of the Retrain run of the same mask and forget set, whose D_f accuracy is the target's base "
        "(not needed for --unlearn retrain, which is its own)",
    )
    add(group, "--relearn_margin", type=float, default=5.0, help="points above Retrain's D_f accuracy to reach")
    add(group, "--relearn_lr", type=float, default=0.01, help="learning rate of the relearning SGD (momentum 0.9)")
    add(group, "--relearn_batch_size", type=int, default=32, help="batch size of the relearning steps")
    add(group, "--relearn_max_steps", type=int, default=100, help="steps after which relearning counts as not reached")
    add(group, "--relearn_samples", type=int, default=None,
        help="relearn on a seeded subset of this many D_f images (default: all of D_f)")  # fmt: skip


def add_preset_arg(group) -> None:
    add(
        group,
        "--preset",
        choices=(PUBLISHED,),
        default=None,
        help="published: start from the method's setting in its authors' code for CIFAR-10 (its registry "
        "entry names the source; flags given on the command line override it; --alpha left to tune stays as given)",
    )


def parse_with_preset(parser, argv=None):
    """``parser.parse_args(argv)``; with --preset published the method's preset flags go first, so that every
    flag the command line gives overrides them."""
    import sys

    import unlearn  # here, not at the top: the methods import this module

    args = parser.parse_args(argv)
    if getattr(args, "preset", None) is None:
        return args
    method = unlearn.get_method(args.unlearn)
    if method.preset is None:
        raise UsageError(f"--preset {args.preset}: --unlearn {method.name} has no published setting; give its flags")
    given = list(sys.argv[1:] if argv is None else argv)
    return parser.parse_args(method.preset.tokens() + given)


def add_training_run_args(parser, save_dir_default: str) -> None:
    """Every flag of a training-and-pruning run (main_imp.py and its family, main_synflow.py, main_backdoor.py)."""
    add_data_args(parser)
    add_model_args(parser)
    add_run_args(parser, save_dir_default=save_dir_default)
    add_train_args(parser)
    add_prune_args(parser)


def add_unlearning_run_args(parser, save_dir_default: str):
    """Every flag of one unlearning run (main_forget.py's, and main_tune.py's trials); returns the unlearn group."""
    add_data_args(parser)
    add_model_args(parser)
    add_run_args(parser, save_dir_default=save_dir_default)
    add_train_args(parser, unlearning=True)
    group = add_unlearn_args(parser)
    add_preset_arg(group)
    return group


def unlearn_help() -> str:
    """--unlearn's help: the registered names (each described in the table at the end of --help)."""
    import unlearn  # here, not at the top: the methods import this module

    return "unlearning method (default retrain): " + ", ".join(m.name for m in unlearn.listed()) + " (table below)"


def methods_table() -> str:
    """The methods as a short table for --help's end: name, paper name, one line each (from the registry)."""
    import unlearn  # here, not at the top: the methods import this module

    methods = unlearn.listed()
    width = max(len(m.name) for m in methods)
    paper = max(len(m.paper_name) for m in methods)
    rows = [f"  {m.name:<{width}}  {m.paper_name:<{paper}}  {m.help}".rstrip() for m in methods]
    return "--unlearn methods:\n" + "\n".join(rows)


def add_attack_args(parser):
    group = parser.add_argument_group("attack")
    add(compatibility_group(parser), "--attack", default="backdoor", help="no effect: the attack is a backdoor")
    add(group, "--trigger_size", defines=(BACKDOOR,), type=int, default=4, help="side of the square trigger in pixels")
    add(
        group,
        "--trigger_value",
        defines=(BACKDOOR,),
        type=float,
        default=0.0,
        help="trigger intensity in [0, 1] (0 = black)",
    )
    return group


# The original's one shared parser gave every script every flag; what the training scripts do not use.
NOT_UNLEARNING = "training and pruning do not unlearn (main_forget.py does)"
NOT_POISONING = "only main_backdoor.py poisons its training data"
ATTACK_FLAGS = ("--attack", "--trigger_size")
UNUSED_BY_TRAINING = {  # main_imp.py reads the forget-set flags with --leave_out_forget
    **dict.fromkeys(
        ["--mask", "--unlearn", "--unlearn_lr", "--unlearn_epochs", "--num_indexes_to_replace", "--class_to_replace",
         "--indexes_to_replace", "--alpha"],
        NOT_UNLEARNING,
    ),
    **dict.fromkeys(ATTACK_FLAGS, NOT_POISONING),
}  # fmt: skip


def add_unused_args(parser, unused: dict[str, str]) -> None:
    """Flags of the original's one shared parser that this script accepts but does not use
    (``{flag: what it uses instead}``), so the original's command lines and wrappers still run."""
    group = compatibility_group(parser)
    for flag, instead in unused.items():
        group.add_argument(flag, default=argparse.SUPPRESS, nargs="?", metavar="VALUE", help=f"not used: {instead}")


def warn_unused(args, script: str, unused: dict[str, str]) -> None:
    """One warning line per unused flag that was given (never silently ignored); it is then dropped from ``args``."""
    import sys

    for flag, instead in unused.items():
        dest = flag.lstrip("-").replace("-", "_")
        if hasattr(args, dest):
            print(one_line(f"warning: {flag} is not used by {script}; {instead}"), file=sys.stderr, flush=True)
            delattr(args, dest)


def warn_other_methods_flags(args) -> None:
    """One warning line per method flag set away from its default that --unlearn's method does not read."""
    import sys

    import unlearn  # here, not at the top: the methods import this module

    own = {flag.name for flag in unlearn.get_method(args.unlearn).flags}
    for flag in unlearn.method_flags():
        if flag.name not in own and getattr(args, flag.name, flag.default) != flag.default:
            readers = ", ".join(m.name for m in unlearn.listed() if flag in m.flags)
            spelled = "/".join((f"--{flag.name}", *flag.aliases))
            print(f"warning: {spelled} is read only by --unlearn {readers}; --unlearn {args.unlearn} ignores it",
                  file=sys.stderr, flush=True)  # fmt: skip


def parse_milestones(text: str) -> list[int]:
    try:
        milestones = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"--decreasing_lr '{text}' does not parse; give comma-separated epochs like 91,136") from None
    if any(m < 0 for m in milestones):
        raise UsageError(f"--decreasing_lr '{text}' has a negative epoch; give epochs >= 0")
    return milestones


def check_nonnegative(args, names):
    """Each of ``names`` is a finite number >= 0 (NaN and infinity are refused, not run)."""
    import math

    for name in names:
        value = getattr(args, name, None)
        if value is not None and not math.isfinite(value):
            raise UsageError(f"--{name} {value} is not a finite number; give a value >= 0")
        if value is not None and value < 0:
            raise UsageError(f"--{name} {value} is negative; give a value >= 0")


def full_parser() -> Parser:
    """Every shared flag of every script in one parser: what a command line of any script parses to."""
    parser = Parser(add_help=False)
    for adder in (add_data_args, add_model_args, add_run_args, add_train_args, add_prune_args, add_unlearn_args):
        adder(parser)
    add_attack_args(parser)
    group = parser.add_argument_group("outputs")
    add(group, "--save_outputs", action="store_true")
    return parser


def command_line(values: dict) -> str:
    """``{dest: value}`` as flags any script parses back to these values (a false switch or None: left out)."""
    import shlex

    options = {action.dest: action for action in full_parser()._actions if action.option_strings}
    words = []
    for dest, value in values.items():
        action = options[dest]
        if isinstance(action, argparse._StoreTrueAction):
            words += [action.option_strings[0]] if value else []
        elif value is not None:
            words += [action.option_strings[0], repr(value) if isinstance(value, float) else str(value)]
    return shlex.join(words)


def added_later() -> tuple[dict[str, object], dict[str, object]]:
    """({flag: default} of the flags added after runs were made, {flag: default} of those left out at it)."""
    full_parser()
    return dict(ABSENT_MEANS), dict(RECORDED_UNLESS)


def declared_definitions() -> dict[str, frozenset]:
    """{flag: kinds of run it defines}, read from the declarations above. Files given by path (--mask,
    --indexes_to_replace, --rewind_pth) define runs by their content: run_identity fingerprints them."""
    full_parser()
    return {name: kinds for name, kinds in DEFINES.items() if kinds}
