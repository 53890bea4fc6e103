import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from evaluation import mia

K = 10


def make_set(rng, n, p_true, k=K, jitter=0.005):
    """(probs, labels) with p_label ≈ p_true and the remaining mass spread at random over the other classes."""
    labels = rng.integers(0, k, size=n)
    p_y = np.clip(p_true + rng.uniform(-jitter, jitter, size=n), 0.0, 1.0)
    rest = rng.dirichlet(np.ones(k - 1), size=n) * (1.0 - p_y)[:, None]
    probs = np.empty((n, k))
    for i in range(n):
        probs[i] = np.insert(rest[i], labels[i], p_y[i])
    return probs, labels


def concat(*pairs):
    return np.concatenate([p for p, _ in pairs]), np.concatenate([y for _, y in pairs])


def reference_modified_entropy(prob_row, label):
    """Song & Mittal (2021) written literally, one sample at a time."""
    total = 0.0
    for i, p in enumerate(prob_row):
        if i == label:
            total -= (1 - p) * math.log(max(p, 1e-30))
        else:
            total -= p * math.log(max(1 - p, 1e-30))
    return total


# --- entropy and modified entropy -------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 10, 100])
def test_entropy_uniform_is_log_k_and_one_hot_is_zero(k):
    assert mia.entropy(np.full((1, k), 1.0 / k))[0] == pytest.approx(math.log(k), rel=1e-12)
    assert mia.entropy(np.eye(k)) == pytest.approx(np.zeros(k), abs=1e-12)


def test_entropy_hand_computed():
    # 0.7·ln(1/0.7) + 0.2·ln(1/0.2) + 0.1·ln(1/0.1) = 0.249672461 + 0.321887582 + 0.230258509
    assert mia.entropy(np.array([[0.7, 0.2, 0.1]]))[0] == pytest.approx(0.801818552, abs=1e-8)


def test_modified_entropy_hand_computed_three_classes():
    probs = np.array([[0.7, 0.2, 0.1]])
    # label 0: −0.3·ln 0.7 − 0.2·ln 0.8 − 0.1·ln 0.9 = 0.107002483 + 0.044628710 + 0.010536052
    assert mia.modified_entropy(probs, np.array([0]))[0] == pytest.approx(0.162167245, abs=1e-8)
    # label 1: −0.8·ln 0.2 − 0.7·ln 0.3 − 0.1·ln 0.9 = 1.287550330 + 0.842780963 + 0.010536052
    assert mia.modified_entropy(probs, np.array([1]))[0] == pytest.approx(2.140867345, abs=1e-8)


def test_modified_entropy_matches_literal_formula_on_dirichlet_samples():
    rng = np.random.default_rng(0)
    for k in (2, 3, 10):
        probs = rng.dirichlet(np.full(k, 0.5), size=200)
        labels = rng.integers(0, k, size=200)
        expected = [reference_modified_entropy(p, y) for p, y in zip(probs, labels, strict=True)]
        np.testing.assert_allclose(mia.modified_entropy(probs, labels), expected, rtol=1e-12, atol=1e-12)


def test_modified_entropy_uses_each_samples_own_label():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    labels = np.array([0, 2])
    batch = mia.modified_entropy(probs, labels)
    one_at_a_time = [mia.modified_entropy(probs[i : i + 1], labels[i : i + 1])[0] for i in range(2)]
    np.testing.assert_allclose(batch, one_at_a_time, rtol=1e-14)
    assert batch[0] == pytest.approx(0.162167245, abs=1e-8)


def test_modified_entropy_extremes():
    # correct one-hot → 0; one-hot on a wrong class → −1·log(1 − 1) clamped = −log(1e-30) ≈ 69.08
    probs = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    values = mia.modified_entropy(probs, np.array([0, 1]))
    assert values[0] == pytest.approx(0.0, abs=1e-12)
    assert values[1] == pytest.approx(2 * -math.log(1e-30), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    weights=arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(2, 12)), elements=st.floats(0.0, 1.0)),
    label_seed=st.integers(0, 2**32 - 1),
)
def test_entropy_bounds_and_modified_entropy_nonnegative(weights, label_seed):
    weights = weights + 1e-9  # keep every row normalisable
    probs = weights / weights.sum(axis=1, keepdims=True)
    n, k = probs.shape
    labels = np.random.default_rng(label_seed).integers(0, k, size=n)
    h = mia.entropy(probs)
    assert np.all(h >= -1e-12) and np.all(h <= math.log(k) + 1e-9)
    assert np.all(mia.modified_entropy(probs, labels) >= -1e-12)


# --- features -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", mia.FEATURES)
def test_feature_shapes_and_dtype(family):
    probs, labels = make_set(np.random.default_rng(1), 7, 0.6)
    x = mia.features(probs.astype(np.float32), labels, family)
    assert x.dtype == np.float64
    assert x.shape == ((7, K) if family == "prob" else (7, 1))


def test_feature_values():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    labels = np.array([0, 2])
    np.testing.assert_array_equal(mia.features(probs, labels, "correctness")[:, 0], [1.0, 0.0])
    np.testing.assert_array_equal(mia.features(probs, labels, "confidence")[:, 0], [0.7, 0.3])
    np.testing.assert_allclose(mia.features(probs, labels, "entropy")[:, 0], mia.entropy(probs))
    np.testing.assert_allclose(mia.features(probs, labels, "m_entropy")[:, 0], mia.modified_entropy(probs, labels))
    np.testing.assert_array_equal(mia.features(probs, labels, "prob"), probs)


def test_feature_families_are_the_five_of_the_spec():
    assert mia.FEATURES == ("correctness", "confidence", "entropy", "m_entropy", "prob")


def test_unknown_family_raises_with_choices():
    with pytest.raises(ValueError, match="unknown MIA feature family 'loss'.*confidence"):
        mia.features(np.eye(3), np.arange(3), "loss")


# --- the attack -----------------------------------------------------------------------------


def test_classifier_hyperparameters_are_the_specs():
    params = mia.make_classifier().get_params()
    assert (params["C"], params["gamma"], params["kernel"]) == (3, "auto", "rbf")


def test_svc_mia_fits_with_make_classifier(monkeypatch):
    made = []

    def spy():
        made.append(mia.SVC(C=3, gamma="auto", kernel="rbf"))
        return made[-1]

    monkeypatch.setattr(mia, "make_classifier", spy)
    rng = np.random.default_rng(2)
    mia.svc_mia(make_set(rng, 20, 0.99), make_set(rng, 20, 0.3), target_member=make_set(rng, 5, 0.99))
    assert len(made) == 1 and len(made[0].support_vectors_) > 0


@pytest.fixture
def shadow():
    rng = np.random.default_rng(3)
    members, test = make_set(rng, 200, 0.99), make_set(rng, 100, 0.3)
    return rng, members, test


def test_forget_efficacy_confident_forget_set_is_zero(shadow):
    rng, retain, test = shadow
    result = mia.mia_forget_efficacy(retain, test, make_set(rng, 50, 0.99))
    assert result["confidence"] == 0.0


def test_forget_efficacy_unconfident_forget_set_is_hundred(shadow):
    rng, retain, test = shadow
    result = mia.mia_forget_efficacy(retain, test, make_set(rng, 50, 0.3))
    assert result["confidence"] == 100.0


def test_forget_efficacy_half_and_half_is_fifty(shadow):
    rng, retain, test = shadow
    forget = concat(make_set(rng, 30, 0.99), make_set(rng, 30, 0.3))
    assert mia.mia_forget_efficacy(retain, test, forget)["confidence"] == 50.0


def test_forget_efficacy_all_families_in_range(shadow):
    rng, retain, test = shadow
    result = mia.mia_forget_efficacy(retain, test, make_set(rng, 40, 0.6, jitter=0.3))
    assert tuple(result) == mia.FEATURES
    assert all(isinstance(v, float) and 0.0 <= v <= 100.0 for v in result.values())


def test_forget_efficacy_uses_only_the_first_test_size_retain_samples(shadow):
    rng, retain, test = shadow
    # Appending unconfident samples after the first |test| retain samples must change nothing.
    padded = concat((retain[0][:100], retain[1][:100]), make_set(rng, 300, 0.3))
    forget = make_set(rng, 40, 0.6, jitter=0.4)
    assert mia.mia_forget_efficacy(padded, test, forget) == mia.mia_forget_efficacy(retain, test, forget)
    # A retain set smaller than the test set is used whole, against as many test samples (balanced).
    small = (retain[0][:30], retain[1][:30])
    expected = mia.svc_mia(small, (test[0][:30], test[1][:30]), target_nonmember=forget, family="confidence")
    assert mia.mia_forget_efficacy(small, test, forget)["confidence"] == expected
    padded_test = concat((test[0][:30], test[1][:30]), make_set(rng, 70, 0.99))
    assert mia.mia_forget_efficacy(small, padded_test, forget) == mia.mia_forget_efficacy(small, test, forget)


def test_small_retain_set_is_not_drowned_by_the_test_set():
    # 60 confident members, 1,000 non-members of which 70% are as confident as members: fitted on all
    # of them, the SVC would call confident samples non-members; balanced, it calls them members.
    rng = np.random.default_rng(7)
    retain = make_set(rng, 60, 0.99)
    test = concat(make_set(rng, 700, 0.99), make_set(rng, 300, 0.3))
    order = rng.permutation(1000)
    test = (test[0][order], test[1][order])
    confident_forget = make_set(rng, 50, 0.99)
    assert mia.mia_forget_efficacy(retain, test, confident_forget)["confidence"] < 50
    unbalanced = mia.svc_mia(retain, test, target_nonmember=confident_forget, family="confidence")
    assert unbalanced == 100.0


def test_training_privacy_with_a_retain_set_smaller_than_half_the_test_set():
    rng = np.random.default_rng(8)
    result = mia.mia_training_privacy(make_set(rng, 100, 0.99), make_set(rng, 400, 0.3))
    for family in ("confidence", "entropy", "m_entropy"):
        assert result[family] == 100.0


def test_training_privacy_separable_is_hundred():
    rng = np.random.default_rng(4)
    result = mia.mia_training_privacy(make_set(rng, 1000, 0.99), make_set(rng, 200, 0.3))
    assert tuple(result) == mia.FEATURES
    assert all(0.0 <= v <= 100.0 for v in result.values())
    for family in ("confidence", "entropy", "m_entropy"):
        assert result[family] == 100.0


def test_training_privacy_same_distribution_is_about_fifty():
    rng = np.random.default_rng(5)
    result = mia.mia_training_privacy(make_set(rng, 2000, 0.7, jitter=0.3), make_set(rng, 400, 0.7, jitter=0.3))
    for family in mia.FEATURES:
        assert result[family] == pytest.approx(50.0, abs=8.0), family


def test_svc_mia_mean_of_two_targets_is_unweighted(shadow):
    rng, members, nonmembers = shadow
    # 1 target member (judged member: 100%) and 99 target non-members all judged member (0%) → 50, not 1.
    score = mia.svc_mia(members, nonmembers, make_set(rng, 1, 0.99), make_set(rng, 99, 0.99), "confidence")
    assert score == 50.0


def test_svc_mia_identical_features_still_fit():
    rng = np.random.default_rng(6)
    # Every sample is correct, so the correctness column is constant; sklearn still fits two classes.
    score = mia.svc_mia(
        make_set(rng, 30, 0.99), make_set(rng, 30, 0.9), target_member=make_set(rng, 10, 0.99), family="correctness"
    )
    assert 0.0 <= score <= 100.0


def test_svc_mia_degenerate_inputs_raise(shadow):
    rng, members, nonmembers = shadow
    empty = (np.empty((0, K)), np.empty(0, dtype=np.int64))
    with pytest.raises(ValueError, match="shadow_nonmember is empty"):
        mia.svc_mia(members, empty, target_member=members)
    with pytest.raises(ValueError, match="shadow_member is empty"):
        mia.svc_mia(empty, nonmembers, target_member=members)
    with pytest.raises(ValueError, match="needs target_member, target_nonmember or both"):
        mia.svc_mia(members, nonmembers)
    with pytest.raises(ValueError, match="target_nonmember is empty"):
        mia.svc_mia(members, nonmembers, target_nonmember=empty)
    with pytest.raises(ValueError, match="test set .* is empty"):
        mia.mia_forget_efficacy(members, empty, members)
    with pytest.raises(ValueError, match="at least 2 test and 2 retain samples, got 1 and 200"):
        mia.mia_training_privacy(members, (nonmembers[0][:1], nonmembers[1][:1]))
    with pytest.raises(ValueError, match="at least 2 test and 2 retain samples, got 100 and 1"):
        mia.mia_training_privacy((members[0][:1], members[1][:1]), nonmembers)
    with pytest.raises(ValueError, match=r"expected probs \(n, k\)"):
        mia.features(np.ones(3), np.zeros(3, dtype=np.int64), "confidence")
