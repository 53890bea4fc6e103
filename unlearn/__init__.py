"""Unlearning methods, one module each, registered under the original ``--unlearn`` names.

A method is ``fn(model, ctx)``: it changes ``model`` in place, given an ``UnlearnContext``
(unlearn/context.py states the contract: what the context holds, the loss signature, the
artefacts a method may return). Its registry entry is the one place that describes it: paper
name, help line, its rank in listings, its own flags, and its arguments for the demo (digits),
the sweep (the original README's CIFAR values) and the fast end-to-end test. Adding a method:
write a module in this folder with a function decorated by ``@register(...)`` and its test file;
every module here is imported below, and every listing, table, test and help text derives from
the registry, so nothing else needs to change (see docs/design.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

from utils import UsageError


@dataclass(frozen=True)
class Flag:
    """A command-line flag only some methods read, e.g. ``Flag("saliency_ratio", 0.5, float, "...")``."""

    name: str  # without the leading dashes; becomes args.<name>
    default: object
    type: Callable  # bool: a switch (store_true, default False)
    help: str
    # other spellings the original code uses (e.g. "--rate"), accepted where no shared flag has them
    aliases: tuple[str, ...] = ()
    # declared after runs were made (its default must then never change): "omitted" leaves it out of identities
    # at its default, so runs made before it stay the same experiments; "recorded" keeps it in (for a flag that
    # identities already record), and an identity without it still means its default
    added_later: str | None = None


@dataclass(frozen=True)
class Param:
    """One hyperparameter a tuner searches (main_tune.py): flag ``name`` in [low, high].

    ``log``: sampled on a log scale; ``integer``: whole numbers only. A method's search space is a
    tuple of these in its registry entry; main_tune.py's ``--space`` overrides a range or drops one.
    """

    name: str  # the flag without its dashes (args.<name>)
    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self):
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"search range of --{self.name} [{self.low}, {self.high}] is empty or not positive")


@dataclass(frozen=True)
class Preset:
    """A method's published setting: the flags its authors' code uses for CIFAR-10, and where they are.

    ``args`` may hold ``{alpha_ff}``, ``{alpha_iu}`` or ``{alpha_l1}`` where the source leaves α to be
    tuned (the sweep fills them from its --alpha-* flags; main_forget.py's --preset leaves --alpha as given).
    """

    args: str
    source: str

    def tokens(self, fill: dict | None = None) -> list[str]:
        """The flags as argv tokens; without ``fill``, a flag whose value is a placeholder is left out."""
        import shlex

        if fill is not None:
            return shlex.split(self.args.format(**fill))
        words, kept = shlex.split(self.args), []
        for index, word in enumerate(words):
            placeholder = word.startswith("{") and word.endswith("}")
            if placeholder or (index + 1 < len(words) and words[index + 1].startswith("{")):
                continue
            kept.append(word)
        return kept


# The two README files most presets come from (the original's, and SalUn's authors').
SPARSE_README = "Unlearn-Sparse README.MD (CIFAR-10, ResNet-18)"
SALIENCY_README = "Unlearn-Saliency Classification/README.md (random forgetting, CIFAR-10, ResNet-18)"


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable
    paper_name: str
    loads_weights: bool = True  # retrain starts from a fresh initialisation under the same mask
    help: str = ""  # one line for --unlearn's help
    rank: int = 100  # listing order (unique): Original, then the paper's table order, then the later methods
    in_tables: bool = False  # the paper's tables show it (report.py puts these first, in rank order)
    demo_args: str | None = None  # flags for scripts/demo.py on digits (None: not in the demo)
    # its published setting (main_forget.py --preset published, and scripts/sweep.py's arguments;
    # None: give them with --method-args)
    preset: Preset | None = None
    search_space: tuple[Param, ...] = ()  # what main_tune.py searches (empty: the method is not tuned)
    test_args: str = ""  # flags that make the end-to-end test on digits fast (e.g. "--unlearn_epochs 1")
    flags: tuple[Flag, ...] = ()  # its own flags, added to --help's "unlearn" group (shared names must agree)
    # prepare(model, ctx) runs on θ_o before a resumed run's saved weights replace it; fn finds its
    # result in ctx.prepared (SalUn's mask, BS's frozen θ_o, BE's head grown to the shape it trains)
    prepare: Callable | None = None


METHODS: dict[str, Method] = {}


def register(name: str, paper_name: str | None = None, **facts):
    """Decorator: register ``fn`` under ``name``; ``facts`` are the other ``Method`` fields."""

    def add(fn):
        if name in METHODS:
            raise ValueError(f"--unlearn '{name}' is registered twice; give the new method another name")
        rank = facts.get("rank", Method.rank)
        taken = [method.name for method in METHODS.values() if method.rank == rank]
        if taken:
            free = max(method.rank for method in METHODS.values()) + 1
            raise ValueError(f"--unlearn '{name}': rank {rank} is taken by '{taken[0]}'; give it another, e.g. {free}")
        METHODS[name] = Method(name, fn, paper_name or name, **facts)
        return fn

    return add


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise UsageError(f"unknown --unlearn '{name}'; choose from {', '.join(sorted(METHODS))}")
    return METHODS[name]


def listed() -> list[Method]:
    """Every method in listing order (rank, then name)."""
    return sorted(METHODS.values(), key=lambda method: (method.rank, method.name))


def method_flags() -> list[Flag]:
    """Every method's own flags, each name once; two methods declaring one name must declare it alike."""
    flags: dict[str, Flag] = {}
    for method in listed():
        for flag in method.flags:
            if flags.setdefault(flag.name, flag) != flag:
                raise ValueError(f"--{flag.name} is declared differently by two methods; give one of them another name")
    return list(flags.values())


def prepared(model, ctx, prepare):
    """``ctx.progress.prepared``: made by the run layer before any progress was loaded, or now, from θ_o."""
    progress = ctx.progress
    if progress.prepared is None:
        if progress.resume is not None:  # the weights are no longer θ_o: preparing now would be wrong
            raise RuntimeError("a resumed run must call the method's prepare before loading its progress")
        progress.prepared = prepare(model, ctx)
    return progress.prepared


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_import_all()
