"""What makes two runs the same experiment, declared once and checked the same way everywhere.

A run's identity is a plain dict stored in every file the run leaves (checkpoints, progress files,
result JSONs)::

    {"kind": "unlearning",                      # which script's kind of run made it
     "args": {"unlearn_lr": 0.01, ...},         # every flag that defines this kind of run
     "inputs": {"mask": {...}, "forget_set": {...}, ...}}   # fingerprints of its input files

Which flags define which kind is declared where the flag is declared (``defines=`` in
``arg_parser``); a method's own flags (``Flag`` in its registry entry) define the unlearning and
backdoor runs of that method. Inputs are identified by content, never by path: the mask file by a
hash of its tensors (with the training run that made it, when it records one), the forget set by a
hash of its indices, a ``--rewind_pth`` file by a hash of its tensors. Resume, reuse, the sweep's
status, the audit's reuse, report.py's grouping and the pairing with Retrain all derive from here.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache

import numpy as np
import torch

from utils import UsageError

TRAINING, SYNFLOW, UNLEARNING, BACKDOOR = "training", "synflow", "unlearning", "backdoor"
KINDS = (TRAINING, SYNFLOW, UNLEARNING, BACKDOOR)
SCRIPT_OF = {
    TRAINING: "main_imp.py",
    SYNFLOW: "main_synflow.py",
    UNLEARNING: "main_forget.py",
    BACKDOOR: "main_backdoor.py",
}
KIND_OF_SCRIPT = {script: kind for kind, script in SCRIPT_OF.items()}
WITH_METHOD = (UNLEARNING, BACKDOOR)  # kinds whose method's own flags join the identity
# Seeds of a run's randomness: runs differing only in these are trials of one experiment (report.py).
TRIAL_FLAGS = ("seed", "train_seed")
# What an unlearning run shares with the Retrain run it is measured against (gaps, JS, l2): the data and
# the forget request among its flags, and every input (the mask's recipe, the forget set).
REFERENCE_FLAGS = ("dataset", "arch", "imagenet_arch", "split_seed", "train_subset", "class_to_replace",
                   "num_indexes_to_replace")  # fmt: skip


# ----------------------------------------------------------------------------- the declaration


@cache
def declared() -> dict[str, frozenset]:
    """{flag name: kinds of run it defines} for every shared flag (a full parser is built once to read it)."""
    from experiments import arg_parser  # here: arg_parser imports this module's kind names

    return arg_parser.declared_definitions()


@cache
def _added_later() -> tuple[dict, dict]:
    from experiments import arg_parser  # here: arg_parser imports this module's kind names

    return arg_parser.added_later()


def absent_means() -> dict[str, object]:
    """{flag: default} of the flags added after runs were made: an identity without one means that default."""
    return _added_later()[0]


def recorded_unless() -> dict[str, object]:
    """{flag: default} of the later flags an identity leaves out at their default."""
    return _added_later()[1]


def _at_default_later(name: str, value) -> bool:
    defaults = absent_means()
    return name in defaults and value == _plain(defaults[name])


def defining_flags(kind: str, method: str | None = None) -> list[str]:
    """The flags that define a run of ``kind`` (and of ``method``, for unlearning and backdoor runs)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of run {kind!r}")
    names = [name for name, kinds in declared().items() if kind in kinds]
    if kind in WITH_METHOD and method is not None:
        import unlearn  # here: the methods import the parser, which imports this module

        names += [flag.name for flag in unlearn.get_method(method).flags if flag.name not in names]
    return sorted(names)


# ----------------------------------------------------------------------------- fingerprints


def tensors_fingerprint(state_dict: dict) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict's tensors (device and path do not count)."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def indices_fingerprint(indices) -> str:
    """SHA-256 of an index list as int64, in the order given (the order decides the batches)."""
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()


def record_fingerprint(record) -> str:
    """SHA-256 of a JSON-able record (e.g. a poisoning record), independent of key order."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def mask_input(checkpoint: dict, state_dict: dict) -> dict:
    """A mask file as an input: its content hash, and which training run and round made it (when recorded)."""
    made_by = checkpoint.get("identity") if isinstance(checkpoint.get("identity"), dict) else None
    return {"sha256": tensors_fingerprint(state_dict), "made_by": made_by, "round": checkpoint.get("round")}


def forget_input(scenario: str, forget_indices, forgotten_class=None) -> dict:
    return {
        "scenario": scenario,
        "whole_class": forgotten_class,
        "count": len(forget_indices),
        "sha256": indices_fingerprint(forget_indices),
    }


def left_out_input(forget) -> dict:
    """The forget set a training run left out (main_imp.py --leave_out_forget), by its sorted indices: the
    same set, in whatever order a later script draws or lists it, has the same fingerprint."""
    return forget_input(forget.scenario, np.sort(forget.forget_indices), forget.forgotten_class)


def check_left_out(checkpoint: dict, forget, flag: str = "--mask") -> None:
    """A mask trained without a forget set is a clean reference for that set only: refuse it for another."""
    made_by = checkpoint.get("identity") if isinstance(checkpoint.get("identity"), dict) else {}
    left = (made_by.get("inputs") or {}).get("left_out")
    if isinstance(left, dict) and left.get("sha256") != indices_fingerprint(np.sort(forget.forget_indices)):
        raise UsageError(
            f"{flag} was trained with another forget set left out ({left.get('count')} samples, "
            f"{left.get('scenario')}) than this run forgets ({len(forget.forget_indices)}); give the forget-set "
            "flags its main_imp.py --leave_out_forget run used"
        )


# ----------------------------------------------------------------------------- identities


def of_args(kind: str, args, **inputs) -> dict:
    """The identity of a run of ``kind`` with these parsed ``args`` (a namespace, or a saved dict) and
    ``inputs`` (``mask=``, ``forget_set=``...; None ones are left out)."""
    values = args if isinstance(args, dict) else vars(args)
    method = values.get("unlearn") if kind in WITH_METHOD else None
    if method is not None:
        import unlearn

        method = method if method in unlearn.METHODS else None  # a method no longer registered: shared flags only
    unless = recorded_unless()
    args = {name: _plain(values.get(name)) for name in defining_flags(kind, method)}
    return {
        "kind": kind,
        "args": {name: value for name, value in args.items() if name not in unless or value != unless[name]},
        "inputs": {name: value for name, value in sorted(inputs.items()) if value is not None},
    }


def _plain(value):
    return json.loads(json.dumps(value))  # what a JSON round trip gives, so saved and new compare alike


def digest(identity: dict) -> str:
    """A short stable name of an identity (16 hex digits)."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def differences(saved, current: dict, partial: bool = False) -> list[tuple[str, object, object]]:
    """[(item, saved value, current value)] where two identities differ; empty when they are the same experiment.

    ``partial``: ``current`` may leave out inputs not known yet (the sweep and the audit know the flags
    and the mask but have not drawn the forget set); only what it holds is compared.
    """
    if not isinstance(saved, dict) or not isinstance(saved.get("args"), dict):
        return [("identity", None, digest(current))]
    found = []
    if saved.get("kind") != current["kind"]:
        found.append(("kind", saved.get("kind"), current["kind"]))
    for name, value in current["args"].items():
        if name not in saved["args"] and _at_default_later(name, value):
            continue  # made before the flag existed, and it is at its default
        if name not in saved["args"] or saved["args"][name] != value:
            found.append((f"--{name}", saved["args"].get(name), value))
    if not partial:
        found += [(f"--{name}", value, None) for name, value in saved["args"].items()
                  if name not in current["args"] and not _at_default_later(name, value)]  # fmt: skip
    saved_inputs = saved.get("inputs") if isinstance(saved.get("inputs"), dict) else {}
    for name in sorted(set(current["inputs"]) | (set() if partial else set(saved_inputs))):
        found += _input_differences(name, saved_inputs.get(name), current["inputs"].get(name), partial)
    return found


def _input_differences(name, old, new, partial) -> list:
    """An input's differences, key by key where both sides are fingerprints (dicts)."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(new) if partial else sorted(set(old) | set(new))
        keys.sort(key=lambda key: key != "sha256")  # the content first: the clearest reason
        return [(_input_item(name, key), old.get(key), new.get(key)) for key in keys if old.get(key) != new.get(key)]
    return [] if old == new else [(_input_item(name), old, new)]


INPUT_NAMES = {
    "mask": "the mask file's content",
    "forget_set": "the forget set",
    "rewind_pth": "--rewind_pth's content",
    "left_out": "the forget set left out of training",
}


def _input_item(name: str, key: str | None = None) -> str:
    text = INPUT_NAMES.get(name, name)
    return text if key in (None, "sha256") else f"{text} ({key})"


def describe(found: list[tuple[str, object, object]]) -> str:
    """The first difference in words, e.g. ``--ssd_alpha is 10.0 there, 0.5 here``."""
    item, old, new = found[0]
    if item == "identity":
        return "it records no run identity (it was written by an older version or another program)"
    if item == "kind":
        return f"it is a {SCRIPT_OF.get(old, old)} run, not a {SCRIPT_OF.get(new, new)} run"
    if item.startswith("--"):
        return f"{item} is {_short(old)} there, {_short(new)} here"
    if isinstance(old, str) and isinstance(new, str) and len(old) == len(new) == 64:  # content hashes
        return f"{item} differs ({old[:12]}... there, {new[:12]}... here)"
    return f"{item} differs ({_short(old)} there, {_short(new)} here)"


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def require_same(saved, current: dict, where, fix: str, partial: bool = False) -> None:
    """Refuse (exit 2) unless ``saved`` is the same experiment as ``current``, naming the first difference."""
    found = differences(saved, current, partial)
    if found:
        raise UsageError(f"'{where}' holds another experiment: {describe(found)}; {fix}")


# ----------------------------------------------------------------------------- from a command line


def expected_from_argv(argv: list[str], mask_fingerprint=None) -> dict:
    """The identity a command (``python main_forget.py ...``) will have, as far as it is known without the data.

    ``mask_fingerprint(path) -> str | None`` gives the mask file's content hash (None: not there yet).
    A forget set given as explicit indices is hashed from its file or list; a drawn one needs the data,
    so only its scenario is known. Compare the result with ``differences(..., partial=True)``.
    """
    from dataset import parse_indices
    from experiments import arg_parser  # here: arg_parser imports this module's kind names

    names = [str(part).rsplit("/", 1)[-1] for part in argv]
    at = next((i for i, name in enumerate(names) if name in KIND_OF_SCRIPT), None)
    if at is None:
        raise ValueError(f"no entry script in {argv!r}")
    kind = KIND_OF_SCRIPT[names[at]]
    args, _ = arg_parser.full_parser().parse_known_args([str(part) for part in argv[at + 1 :]])
    inputs = {}
    if kind in WITH_METHOD:
        sha = mask_fingerprint(args.mask) if args.mask is not None and mask_fingerprint is not None else None
        inputs["mask"] = {"sha256": sha} if sha is not None else None
        if args.indexes_to_replace is not None and args.index_numbering == "official":
            inputs["forget_set"] = {"scenario": "indices"}  # where they fall in D is known only with the data
        elif args.indexes_to_replace is not None:
            sha = indices_fingerprint(parse_indices(args.indexes_to_replace))
            inputs["forget_set"] = {"scenario": "indices", "sha256": sha}
        else:
            inputs["forget_set"] = {"scenario": "random" if args.class_to_replace == -1 else "class"}
    return of_args(kind, args, **inputs)


# ----------------------------------------------------------------------------- grouping (report.py)


def reference_problem(reference: dict, ours: dict) -> str | None:
    """Why the identity ``reference`` is not the Retrain run of the unlearning identity ``ours`` (None: it is)."""
    if reference.get("args", {}).get("unlearn") != "retrain":
        return f"it is a run of --unlearn {reference.get('args', {}).get('unlearn')}"
    inputs, mine = reference.get("inputs", {}), ours["inputs"]
    for name in ("mask", "forget_set"):
        if (inputs.get(name) or {}).get("sha256") != mine[name]["sha256"]:
            return f"{INPUT_NAMES[name]} differs"
    for name in REFERENCE_FLAGS:
        if reference["args"].get(name) != ours["args"].get(name):
            return f"--{name} is {reference['args'].get(name)!r} there, {ours['args'].get(name)!r} here"
    return None


def setting_of(identity: dict) -> dict:
    """What varies between experiments, not between trials: the identity without its seeds.

    A mask made by a recorded training run stands for that run's recipe (its arguments without its
    seed) and round, so trials that train their own masks still form one experiment; an unrecorded
    mask stands for its content. A drawn forget set is fixed by the flags and the seed; only an
    explicit one is named by its content.
    """
    args = {name: value for name, value in identity.get("args", {}).items()
            if name not in TRIAL_FLAGS and not _at_default_later(name, value)}  # fmt: skip
    inputs = dict(identity.get("inputs", {}))
    mask = inputs.get("mask")
    if isinstance(mask, dict):
        inputs["mask"] = _mask_recipe(mask)
    if "forget_set" in inputs:
        inputs["forget_set"] = _drawn_as_scenario(inputs["forget_set"])
    return {"kind": identity.get("kind"), "args": args, "inputs": inputs}


def reference_context(setting: dict) -> dict:
    """The part of a setting (``setting_of``) that a run and its Retrain reference must share."""
    args = {name: value for name, value in setting.get("args", {}).items() if name in REFERENCE_FLAGS}
    return {"args": args, "inputs": setting.get("inputs", {})}


def trial_of(identity: dict) -> tuple:
    """Which trial of its experiment a run is: its seeds, and the seed of the training run that made its mask."""
    args = identity.get("args", {})
    mask = identity.get("inputs", {}).get("mask")
    made_by = mask.get("made_by") if isinstance(mask, dict) else None
    mask_seed = made_by.get("args", {}).get("seed") if isinstance(made_by, dict) else None
    return (mask_seed, *(args.get(name) for name in TRIAL_FLAGS))


def _mask_recipe(mask: dict) -> dict:
    made_by = mask.get("made_by")
    if not isinstance(made_by, dict) or not isinstance(made_by.get("args"), dict):
        return {"sha256": mask.get("sha256")}
    recipe = {name: value for name, value in made_by["args"].items()
              if name not in TRIAL_FLAGS and not _at_default_later(name, value)}  # fmt: skip
    inputs = {name: _drawn_as_scenario(value) if name == "left_out" else value
              for name, value in made_by.get("inputs", {}).items()}  # fmt: skip
    return {"made_by": {"kind": made_by.get("kind"), "args": recipe, "inputs": inputs}, "round": mask.get("round")}


def _drawn_as_scenario(forget):
    """A forget set drawn by flags and a seed stands for its scenario (each trial draws its own); a given one
    for its content."""
    if isinstance(forget, dict) and forget.get("scenario") != "indices":
        return {key: forget.get(key) for key in ("scenario", "whole_class")}
    return forget


def clean_reference_context(setting: dict) -> dict:
    """The ``reference_context`` of the clean Retrain a run would be measured against: the same, but with a
    mask made by a training run that left this run's forget set out (main_imp.py --leave_out_forget)."""
    context = json.loads(json.dumps(reference_context(setting)))
    made_by = (context["inputs"].get("mask") or {}).get("made_by")
    if isinstance(made_by, dict):
        made_by.setdefault("inputs", {})["left_out"] = context["inputs"].get("forget_set")
        made_by["inputs"] = dict(sorted(made_by["inputs"].items()))
    return context


def flat(value, prefix: str = "") -> dict[str, object]:
    """A setting as {dotted item: value}, e.g. {'args.unlearn_lr': 0.01, 'inputs.mask.made_by.args.rate': 0.95}."""
    if isinstance(value, dict) and value:
        items = {}
        for key, inner in value.items():
            items.update(flat(inner, f"{prefix}.{key}" if prefix else str(key)))
        return items
    return {prefix: value}


def label(item: str) -> str:
    """A dotted item in words: 'args.ssd_alpha' -> 'ssd_alpha', 'inputs.mask.made_by.args.rate' -> 'mask rate'."""
    if item.startswith("args."):
        return item[len("args.") :]
    mask_args = "inputs.mask.made_by.args."
    if item.startswith(mask_args):
        return f"mask {item[len(mask_args) :]}"
    return item.removeprefix("inputs.").replace(".made_by.", " ").replace(".sha256", "")
