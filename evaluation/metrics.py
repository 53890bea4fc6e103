"""Accuracy on D_r / D_f / validation / test and the MIA scores of an unlearned model (docs/methods.md).

All subsets are seen with the test transform. Probabilities are computed once per subset and
shared by the accuracies and the attack.
"""

from __future__ import annotations

import numpy as np
import torch

from evaluation import mia
from training.interrupts import Diverged
from training.trainer import predict, weights_are_finite


def probabilities(model, batches, runtime):
    """(softmax probabilities float64 numpy (n, k), labels numpy (n,)) in the subset's order."""
    logits, labels = predict(model, batches, runtime)
    return torch.softmax(logits.double(), dim=1).numpy(), labels.numpy()


def _accuracy(probs_labels) -> float:
    probs, labels = probs_labels
    if len(labels) == 0:
        return float("nan")
    return float(100.0 * np.mean(probs.argmax(1) == labels))


def test_indices(data, forgotten_class, split: str = "test"):
    """Test set positions; without the forgotten class when a whole class is forgotten, as the original does.

    ``split="val"``: the same rule for the validation set.
    """
    labels = (data.test_labels if split == "test" else data.val_labels).cpu().numpy()
    if forgotten_class is None:
        return np.arange(len(labels))
    return np.flatnonzero(labels != forgotten_class)


OUTPUTS_DIVERGED = "the model's outputs"  # what a divergence found only in the outputs is called


def _probabilities_of_subsets(model, data, forget_indices, retain_indices, runtime, forgotten_class):
    """Probabilities and labels of D_r, D_f, validation and test (test transform; test without a forgotten class).

    Finite weights can still overflow to infinite logits (a huge gradient-ascent step): then the outputs
    are not finite, no accuracy or attack is meaningful, and ``Diverged`` is raised here, where they are made.
    """
    sets = {
        "retain": probabilities(model, data.eval_batches("train", retain_indices), runtime),
        "forget": probabilities(model, data.eval_batches("train", forget_indices), runtime),
        "val": probabilities(model, data.eval_batches("val"), runtime),
        "test": probabilities(model, data.eval_batches("test", test_indices(data, forgotten_class)), runtime),
    }
    bad = [name for name, (probs, _) in sets.items() if not np.isfinite(probs).all()]
    if bad:
        raise Diverged(f"{OUTPUTS_DIVERGED} on {'/'.join(bad)}")
    return sets


VALIDATION_METRICS = ("UA", "MIA_efficacy", "RA", "VA")  # what validation_metrics returns


def validation_metrics(model, data, forget_indices, retain_indices, runtime, forgotten_class=None) -> dict:
    """UA, MIA-Efficacy, RA and VA (validation accuracy), never reading the test split: a tuning objective.

    VA takes TA's place, and the attack's shadow non-members are the first n validation samples
    (n = min(|D_r|, |validation|), the rule of ``mia.mia_forget_efficacy``), not test samples. With a
    whole class forgotten, validation leaves that class out as the test set does. Confidence
    features, as MIA-Efficacy everywhere. Non-finite outputs raise ``Diverged``.
    """
    val = data.eval_batches("val", test_indices(data, forgotten_class, split="val"))
    sets = {
        "retain": probabilities(model, data.eval_batches("train", retain_indices), runtime),
        "forget": probabilities(model, data.eval_batches("train", forget_indices), runtime),
        "val": probabilities(model, val, runtime),
    }
    bad = [name for name, (probs, _) in sets.items() if not np.isfinite(probs).all()]
    if bad:
        raise Diverged(f"{OUTPUTS_DIVERGED} on {'/'.join(bad)}")
    n = min(len(sets["retain"][1]), len(sets["val"][1]))
    shadow = [(probs[:n], labels[:n]) for probs, labels in (sets["retain"], sets["val"])]
    efficacy = mia.svc_mia(*shadow, target_nonmember=sets["forget"], family="confidence")
    return {
        "UA": 100.0 - _accuracy(sets["forget"]),
        "MIA_efficacy": efficacy,
        "RA": _accuracy(sets["retain"]),
        "VA": _accuracy(sets["val"]),
    }


def evaluate_diverged(model, data, forget_indices, retain_indices, runtime, forgotten_class=None, log=print):
    """What can be measured of a diverged model: its accuracies while its weights are still finite, never
    the MIA (an SVC cannot be fitted on non-finite outputs). Missing numbers are None."""
    results = {"accuracy": None, "UA": None, "RA": None, "TA": None, "MIA_efficacy": None}
    results.update(SVC_MIA_forget_efficacy=None, SVC_MIA_training_privacy=None)
    if not weights_are_finite(model):
        log("accuracy: not measured, the weights are not finite")
        return results
    try:
        sets = _probabilities_of_subsets(model, data, forget_indices, retain_indices, runtime, forgotten_class)
    except Diverged:
        log("accuracy: not measured, the outputs are not finite")
        return results
    accuracy = {name: _accuracy(value) for name, value in sets.items()}
    results.update(accuracy=accuracy, UA=100.0 - accuracy["forget"], RA=accuracy["retain"], TA=accuracy["test"])
    log(f"accuracy: retain {accuracy['retain']:.2f}%  forget {accuracy['forget']:.2f}%  test {accuracy['test']:.2f}%")
    return results


def evaluate(model, data, forget_indices, retain_indices, runtime, forgotten_class=None, done=None, log=print):
    """UA, RA, TA and the MIA scores (all but RTE); ``done`` holds metrics already computed (reused on resume)."""
    results = dict(done or {})
    sets = _probabilities_of_subsets(model, data, forget_indices, retain_indices, runtime, forgotten_class)
    if "accuracy" not in results:
        results["accuracy"] = {name: _accuracy(value) for name, value in sets.items()}
    accuracy = results["accuracy"]
    results.update(UA=100.0 - accuracy["forget"], RA=accuracy["retain"], TA=accuracy["test"])
    log(
        f"accuracy: retain {accuracy['retain']:.2f}%  forget {accuracy['forget']:.2f}%  "
        f"val {accuracy['val']:.2f}%  test {accuracy['test']:.2f}%"
    )
    if "SVC_MIA_forget_efficacy" not in results:
        results["SVC_MIA_forget_efficacy"] = mia.mia_forget_efficacy(sets["retain"], sets["test"], sets["forget"])
    results["MIA_efficacy"] = results["SVC_MIA_forget_efficacy"]["confidence"]
    log("MIA-Efficacy: " + "  ".join(f"{k} {v:.2f}" for k, v in results["SVC_MIA_forget_efficacy"].items()))
    if "SVC_MIA_training_privacy" not in results:
        results["SVC_MIA_training_privacy"] = mia.mia_training_privacy(sets["retain"], sets["test"])
    log("training-privacy MIA: " + "  ".join(f"{k} {v:.2f}" for k, v in results["SVC_MIA_training_privacy"].items()))
    return results
