"""SVC membership-inference attack on softmax outputs, on numpy arrays only.

A classifier ``SVC(C=3, gamma="auto", kernel="rbf")`` learns members (1) vs non-members (0)
from one feature family of shadow sets, then labels target samples. MIA-Efficacy is the share
of the forget set it calls non-member: higher means more forgotten.

Every set is a pair ``(probs, labels)``: softmax probabilities (n, k) and integer labels (n,).
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import SVC

_TINY = 1e-30


def make_classifier() -> SVC:
    """The attack classifier of the paper's code: RBF SVC, C=3, gamma='auto' (1 / n_features)."""
    return SVC(C=3, gamma="auto", kernel="rbf")


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, _TINY))


def entropy(probs) -> np.ndarray:
    """Shannon entropy −Σ_i p_i log p_i per sample (log clamped at 1e-30)."""
    probs = np.asarray(probs, dtype=np.float64)
    return -np.sum(probs * _log(probs), axis=1)


def modified_entropy(probs, labels) -> np.ndarray:
    """Song & Mittal (2021): Mentr = −(1 − p_y) log p_y − Σ_{i≠y} p_i log(1 − p_i), per sample.

    Logs are clamped at 1e-30. The paper's official code indexed the label columns across the whole
    batch (every sample got every label's term); here each sample uses its own label, as published.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(labels))
    terms = probs * _log(1.0 - probs)
    p_y = probs[rows, labels]
    terms[rows, labels] = (1.0 - p_y) * _log(p_y)
    return -terms.sum(axis=1)


_FAMILIES = {
    "correctness": lambda probs, labels: (probs.argmax(axis=1) == labels).astype(np.float64),
    "confidence": lambda probs, labels: probs[np.arange(len(labels)), labels],
    "entropy": lambda probs, labels: entropy(probs),
    "m_entropy": modified_entropy,
    "prob": lambda probs, labels: probs,
}
FEATURES = tuple(_FAMILIES)  # ("correctness", "confidence", "entropy", "m_entropy", "prob")


def features(probs, labels, family: str) -> np.ndarray:
    """The (n, d) float64 feature matrix of one family: d = 1 for scalar families, d = k for 'prob'."""
    if family not in _FAMILIES:
        raise ValueError(f"unknown MIA feature family '{family}'; choose from {', '.join(FEATURES)}")
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or labels.shape != (len(probs),):
        raise ValueError(f"expected probs (n, k) and labels (n,); got {probs.shape} and {labels.shape}")
    values = _FAMILIES[family](probs, labels)
    return values.reshape(len(probs), -1)


def svc_mia(
    shadow_member, shadow_nonmember, target_member=None, target_nonmember=None, family: str = "confidence"
) -> float:
    """Fit the SVC on shadow members (1) vs shadow non-members (0); score the targets, in percent.

    Score of ``target_member``: % judged member; of ``target_nonmember``: % judged non-member.
    With both targets, the plain (unweighted) mean of the two scores.
    """
    targets = {"target_member": (target_member, 1), "target_nonmember": (target_nonmember, 0)}
    targets = {name: pair_and_class for name, pair_and_class in targets.items() if pair_and_class[0] is not None}
    if not targets:
        raise ValueError("svc_mia needs target_member, target_nonmember or both")
    named = {"shadow_member": shadow_member, "shadow_nonmember": shadow_nonmember}
    named.update({name: pair for name, (pair, _) in targets.items()})
    for name, pair in named.items():
        if len(pair[1]) == 0:
            raise ValueError(f"svc_mia: {name} is empty; the attack needs members and non-members to fit and score")
    x = np.concatenate([features(*shadow_member, family), features(*shadow_nonmember, family)])
    y = np.concatenate([np.ones(len(shadow_member[1])), np.zeros(len(shadow_nonmember[1]))])
    classifier = make_classifier().fit(x, y)
    scores = [np.mean(classifier.predict(features(*pair, family)) == cls) for pair, cls in targets.values()]
    return float(100.0 * np.mean(scores))


def _head(pair, n: int):
    return pair[0][:n], pair[1][:n]


def _tail(pair, n: int):
    return pair[0][n:], pair[1][n:]


def mia_forget_efficacy(retain, test, forget) -> dict[str, float]:
    """MIA-Efficacy per family: % of D_f judged non-member (higher = more forgotten).

    Shadow members are the first n samples of D_r in order, shadow non-members the first n of the
    test set, n = min(|D_r|, |test|). With D_r at least as large as the test set (every dataset of
    the paper) that is the original's rule: |test| members against the whole test set. With a
    smaller D_r (a --train_subset run) the original would fit its SVC on far more non-members than
    members and call almost everything a non-member; n against n keeps the attack balanced.
    """
    if len(test[1]) == 0:
        raise ValueError("mia_forget_efficacy: the test set (shadow non-members) is empty")
    n = min(len(retain[1]), len(test[1]))
    return {
        family: svc_mia(_head(retain, n), _head(test, n), target_nonmember=forget, family=family) for family in FEATURES
    }


def mia_training_privacy(retain, test) -> dict[str, float]:
    """Training-privacy MIA per family, h = ⌊min(|test|, |D_r|)/2⌋ (= ⌊|test|/2⌋ unless D_r is the smaller).

    Fit on the first h of D_r (members) vs the first h of the test set (non-members); return the mean
    of % of D_r[h:] judged member and % of test[h:] judged non-member. All of D_r[h:] is scored (it may
    be much larger than test[h:]; each half still counts 50%). Taking h from the smaller set keeps
    members left to score when D_r is smaller than the test set.
    """
    h = min(len(test[1]), len(retain[1])) // 2
    if h == 0:
        raise ValueError(
            f"mia_training_privacy needs at least 2 test and 2 retain samples, got {len(test[1])} and {len(retain[1])}"
        )
    return {
        family: svc_mia(_head(retain, h), _head(test, h), _tail(retain, h), _tail(test, h), family)
        for family in FEATURES
    }
