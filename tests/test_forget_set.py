import argparse

import numpy as np
import pytest
import torch

from dataset import choose_forget_set, parse_indices
from utils import UsageError

LABELS = np.repeat(np.arange(4), 25)  # 100 samples, 25 per class


def args(**kw):
    base = dict(class_to_replace=0, num_indexes_to_replace=None, indexes_to_replace=None, seed=2)
    base.update(kw)
    return argparse.Namespace(**base)


def test_whole_class_is_class_scenario_and_sets_forgotten_class():
    fs = choose_forget_set(LABELS, 4, args(class_to_replace=1))
    assert fs.scenario == "class" and fs.forgotten_class == 1
    np.testing.assert_array_equal(fs.forget_indices, np.arange(25, 50))
    # giving n equal to the class size is also the whole class (the original's 4,500 on CIFAR-10)
    fs = choose_forget_set(LABELS, 4, args(class_to_replace=1, num_indexes_to_replace=25))
    assert fs.forgotten_class == 1 and sorted(fs.forget_indices) == list(range(25, 50))


def test_partial_class_and_random():
    fs = choose_forget_set(LABELS, 4, args(class_to_replace=2, num_indexes_to_replace=10))
    assert fs.scenario == "class" and fs.forgotten_class is None and len(fs.forget_indices) == 10
    assert set(LABELS[fs.forget_indices]) == {2}
    fs = choose_forget_set(LABELS, 4, args(class_to_replace=-1, num_indexes_to_replace=10))
    np.testing.assert_array_equal(fs.forget_indices, np.random.RandomState(1).choice(100, 10, replace=False))
    assert fs.scenario == "random" and fs.forgotten_class is None


def test_retain_is_ascending_complement():
    fs = choose_forget_set(LABELS, 4, args(class_to_replace=-1, num_indexes_to_replace=30))
    assert len(np.intersect1d(fs.forget_indices, fs.retain_indices)) == 0
    assert len(fs.forget_indices) + len(fs.retain_indices) == 100
    assert np.all(np.diff(fs.retain_indices) > 0)


def test_explicit_indices(tmp_path):
    fs = choose_forget_set(LABELS, 4, args(indexes_to_replace="5,3,99"))
    assert fs.scenario == "indices" and fs.forget_indices.tolist() == [5, 3, 99]
    np.save(tmp_path / "f.npy", np.array([1, 2]))
    assert parse_indices(str(tmp_path / "f.npy")).tolist() == [1, 2]
    (tmp_path / "f.txt").write_text("7\n8 9")
    assert parse_indices(str(tmp_path / "f.txt")).tolist() == [7, 8, 9]


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(class_to_replace=4), "not a class"),
        (dict(class_to_replace=-2), "not a class"),
        (dict(num_indexes_to_replace=0), "must be positive"),
        (dict(num_indexes_to_replace=26), "more than the 25 samples of class 0"),
        (dict(class_to_replace=-1, num_indexes_to_replace=101), "more than the 100 training samples"),
        (dict(class_to_replace=-1, num_indexes_to_replace=100), "whole training set"),
        (dict(num_indexes_to_replace=3, indexes_to_replace="1,2"), "not both"),
        (dict(indexes_to_replace="1,x"), "neither a file"),
        (dict(indexes_to_replace="1,100"), "outside"),
        (dict(indexes_to_replace="1,1"), "repeats"),
    ],
)
def test_bad_requests_are_refused(kw, message):
    with pytest.raises(UsageError, match=message):
        choose_forget_set(LABELS, 4, args(**kw))


# ----------------------------------------------------------------------------- official numbering


def test_official_numbering_selects_the_official_training_sets_images_and_refuses_validation_ones(digits_raw, tmp_path):
    import dataset

    data = dataset.build_data(digits_raw, split_seed=1, train_subset=600)
    official = np.asarray(sorted(data.official_train_indices[[5, 17, 200, 3]]))  # a released set: official numbers
    np.save(tmp_path / "forget.npy", official)
    chosen = dataset.forget_set_of(
        data, args(indexes_to_replace=str(tmp_path / "forget.npy"), index_numbering="official")
    )
    # the images D holds at the chosen positions are the official training set's images at those numbers
    assert torch.equal(data.train_images[torch.from_numpy(chosen.forget_indices)], digits_raw.train_images[official])
    assert chosen.scenario == "indices" and len(chosen.retain_indices) == len(data.train_labels) - 4
    split = dataset.forget_set_of(data, args(indexes_to_replace="5,17", index_numbering="split"))
    assert split.forget_indices.tolist() == [5, 17]  # today's meaning stays the default
    held_out = int(data.official_val_indices[0])
    with pytest.raises(UsageError, match=f"official index {held_out} .* is in the validation split"):
        dataset.forget_set_of(data, args(indexes_to_replace=f"{official[0]},{held_out}", index_numbering="official"))
    unused = int(
        np.setdiff1d(
            np.arange(len(digits_raw.train_labels)), np.r_[data.official_train_indices, data.official_val_indices]
        )[0]
    )
    with pytest.raises(UsageError, match=f"official index {unused} .* not in the --train_subset 600 sample"):
        dataset.forget_set_of(data, args(indexes_to_replace=str(unused), index_numbering="official"))
    size = len(digits_raw.train_labels)
    with pytest.raises(UsageError, match=f"outside the official training set's 0..{size - 1}"):
        dataset.forget_set_of(data, args(indexes_to_replace=str(size), index_numbering="official"))


def test_a_pickle_is_refused_with_how_to_convert_it(tmp_path):
    import pickle

    (tmp_path / "forget.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(UsageError, match=r"is a pickle, which is not read .* numpy.save"):
        parse_indices(str(tmp_path / "forget.pkl"))
