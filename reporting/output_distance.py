"""Each finished unlearning run against its Retrain: JS divergence of the outputs on D_f and test, ℓ2 of the weights.

A run is paired with the Retrain run that shares its pairing key (report.py's: the same setting,
sparsity, data and inputs by run identity, and the same trial), and only when both checkpoints hold
the same forget indices, the same masks and the same data split; otherwise its cells stay empty and
the reason is returned. Models are rebuilt from each checkpoint's stored arguments and predicted in
eval mode, float32, with the test transform: D_f in ascending index order, the test set as TA sees it
(without a wholly forgotten class). Each dataset is loaded once and each Retrain predicted once.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import dataset
import pruner
from evaluation.distance import effective_parameters, js_divergence, weight_l2
from evaluation.metrics import test_indices
from experiments import unlearning_files
from experiments.experiment import build_model
from training import interrupts
from training.runtime import Runtime
from training.trainer import predict
from utils import UsageError, resolve_device

OUTPUT_METRICS = ("JS_forget", "JS_test", "L2_to_retrain")
# What a missing, damaged or foreign checkpoint raises on its way to a prediction.
LOAD_ERRORS = (UsageError, OSError, KeyError, AttributeError, TypeError, ValueError)


@dataclass
class Outputs:
    """What one finished run is compared by."""

    forget_indices: np.ndarray  # ascending
    masks: dict
    split: tuple  # (dataset, split_seed, train_subset): which D the indices point into
    logits_forget: torch.Tensor
    logits_test: torch.Tensor
    parameters: dict


class OutputMeter:
    """Rebuilds finished runs from their checkpoints and predicts them; datasets are loaded once."""

    def __init__(self, device: str = "cpu", data_root: str | None = None):
        # float32 throughout: bf16 autocast would add its own rounding to the distances measured.
        self.runtime = Runtime(resolve_device(device), fast=False, progress=False)
        self.data_root = data_root
        self._datasets = {}

    def data(self, args: argparse.Namespace) -> dataset.Data:
        key = (args.dataset, args.data, getattr(args, "data_dir", None), args.split_seed, args.train_subset)
        if key not in self._datasets:
            self._datasets[key] = dataset.load_data(args, self.runtime.device)
        return self._datasets[key]

    def outputs(self, run: dict) -> Outputs:
        saved = unlearning_files.read_finished(checkpoint_of(run))
        args = argparse.Namespace(**saved["args"])
        if self.data_root is not None:
            args.data = self.data_root
        data = self.data(args)
        forget = np.sort(np.asarray(saved["forget_indices"], dtype=np.int64))
        if len(forget) == 0 or forget[0] < 0 or forget[-1] >= len(data.train_labels):
            raise UsageError(f"its forget indices do not fit the {len(data.train_labels)} training samples")
        model = build_model(args, data, seed=0)  # the seed is irrelevant: every weight is then loaded
        pruner.load_pruned_state(model, saved["state_dict"])
        model = self.runtime.prepare(model)
        test = test_indices(data, run.get("forgotten_class"))
        return Outputs(
            forget_indices=forget,
            masks=pruner.extract_mask(saved["state_dict"]),
            split=(data.name, data.split_seed, data.train_subset),
            logits_forget=predict(model, data.eval_batches("train", forget), self.runtime)[0],
            logits_test=predict(model, data.eval_batches("test", test), self.runtime)[0],
            parameters=effective_parameters(model),
        )


def checkpoint_of(run: dict) -> Path:
    """The finished checkpoint written beside a run's ``*_eval.json``."""
    return unlearning_files.paths(Path(run["path"]).parent, run.get("files_of", run["method"]))["checkpoint"]


def mismatch(outputs: Outputs, reference: Outputs, same_mask: bool = True) -> str | None:
    """Why two runs cannot be compared sample by sample and weight by weight (None when they can).
    ``same_mask=False``: the masks may differ (a run measured against the clean Retrain), not the layers."""
    if outputs.split != reference.split:
        return f"its data split {outputs.split} differs from Retrain's {reference.split}"
    if not np.array_equal(outputs.forget_indices, reference.forget_indices):
        return "its forget indices differ from those of Retrain of the same seed"
    if outputs.masks.keys() != reference.masks.keys():
        return "it prunes other layers than Retrain"
    same_masks = all(torch.equal(mask, reference.masks[key]) for key, mask in outputs.masks.items())
    return None if same_masks or not same_mask else "its mask differs from Retrain's"


def distances(outputs: Outputs, reference: Outputs) -> dict:
    """Mean per-sample JS on D_f and on the test set, and the weights' ℓ2, of ``outputs`` to ``reference``."""
    return {
        "JS_forget": float(js_divergence(outputs.logits_forget, reference.logits_forget, from_logits=True).mean()),
        "JS_test": float(js_divergence(outputs.logits_test, reference.logits_test, from_logits=True).mean()),
        "L2_to_retrain": weight_l2(outputs.parameters, reference.parameters),
    }


def _units(runs: list[dict], pairing_key) -> dict:
    """Unlearning runs grouped by ``pairing_key(run)``: each group is compared with one Retrain."""
    units = defaultdict(list)
    for run in runs:
        if run["kind"] == "unlearn":
            units[pairing_key(run)].append(run)
    return units


def measure(runs: list[dict], pairing_key, meter: OutputMeter, log=None) -> list[tuple[dict, str]]:
    """Set ``OUTPUT_METRICS`` on every unlearning run (None where not measured); return (run, reason) for those."""
    skipped, units = [], _units(runs, pairing_key)
    for number, members in enumerate(units.values(), start=1):
        interrupts.check(f"the distances to Retrain, group {number} of {len(units)}")
        if log is not None:
            log(f"output metrics: group {number} of {len(units)} (setting, inputs, trial), {len(members)} runs")
        for run in members:
            run.update(dict.fromkeys(OUTPUT_METRICS))
        retrains = [run for run in members if run["method"] == "retrain"]
        if len(retrains) != 1:
            why = "no Retrain run" if not retrains else f"{len(retrains)} Retrain variants"
            skipped += [(run, f"{why} of the same trial and inputs to compare with") for run in members]
            continue
        retrain = retrains[0]
        try:
            reference = meter.outputs(retrain)
        except LOAD_ERRORS as err:
            skipped += [(run, f"Retrain's checkpoint cannot be used ({err})") for run in members]
            continue
        for run in members:
            reason = _compare(meter, run, reference)
            if reason is not None:
                skipped.append((run, reason))
    return skipped


def _compare(meter: OutputMeter, run: dict, reference: Outputs) -> str | None:
    if run["method"] == "retrain":
        run.update(distances(reference, reference))  # 0 by definition; computed, so the column is checked
        return None
    try:
        outputs = meter.outputs(run)
    except LOAD_ERRORS as err:
        return f"its checkpoint cannot be used ({err})"
    reason = mismatch(outputs, reference, same_mask=not run.get("against_clean", False))
    if reason is None:
        run.update(distances(outputs, reference))
    return reason
