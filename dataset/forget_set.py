"""Which training samples to forget: class-wise, random, or given indices, checked early."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataset.splits import select_forget
from utils import UsageError


@dataclass
class ForgetSet:
    scenario: str  # "class", "random" or "indices"
    forget_indices: np.ndarray  # positions in D (train after the validation split)
    retain_indices: np.ndarray
    forgotten_class: int | None  # set only when a whole class is forgotten

    def describe(self, num_train: int) -> str:
        share = f"{len(self.forget_indices)} of {num_train} training samples"
        if self.scenario == "indices":
            return f"scenario: given indices, forgetting {share}"
        if self.scenario == "random":
            return f"scenario: RANDOM forgetting (--class_to_replace -1) of {share}"
        if self.forgotten_class is not None:
            return (
                f"scenario: CLASS-WISE forgetting of the whole class {self.forgotten_class} ({share}); TA excludes it"
            )
        return f"scenario: CLASS-WISE forgetting of part of one class ({share})"


NUMBERINGS = ("split", "official")  # --index_numbering: positions in D (after the validation split), or in the
# official training set (what released forget sets use)


def parse_indices(text: str) -> np.ndarray:
    """A comma-separated list, or a .npy / .txt / .json file of integers (a 1-D list; nothing is rounded)."""
    path = Path(text)
    if path.suffix in (".pkl", ".pickle"):
        raise UsageError(
            f"--indexes_to_replace '{text}' is a pickle, which is not read (loading one can run code); save the "
            f"indices as .npy: python -c \"import pickle, numpy; numpy.save('forget.npy', numpy.asarray(pickle.load("
            f"open('{text}', 'rb'))).astype('int64'))\" (only for a file you trust)"
        )
    try:
        if path.suffix == ".npy" and path.is_file():
            values = _integer_array(np.load(path, allow_pickle=False), text)
        elif path.is_file():
            values = [int(v) for v in path.read_text().replace(",", " ").replace("[", " ").replace("]", " ").split()]
        else:
            values = [int(v) for v in text.split(",") if v.strip()]
        return _as_int64(values, text)
    except UsageError:
        raise
    except ValueError:
        raise UsageError(
            f"--indexes_to_replace '{text}' is neither a file of integers nor a list like 3,17,42"
        ) from None


def _integer_array(values: np.ndarray, text: str) -> np.ndarray:
    """A .npy file's array, refused unless it is a 1-D array of integers (a float or 2-D one is not cast)."""
    if values.ndim != 1:
        raise UsageError(f"--indexes_to_replace '{text}' holds a {values.ndim}-D array; give a 1-D array of indices")
    if not np.issubdtype(values.dtype, np.integer):
        raise UsageError(
            f"--indexes_to_replace '{text}' holds {values.dtype} values, not integers; save integer indices"
        )
    return values


def _as_int64(values, text: str) -> np.ndarray:
    """The indices as int64; one too large for that is refused (it is outside every training set)."""
    bound = np.iinfo(np.int64)
    too_large = [int(v) for v in values if not bound.min <= int(v) <= bound.max]
    if too_large:
        raise UsageError(
            f"--indexes_to_replace '{text[:60]}' holds {too_large[0]}, far outside the training set; check the indices"
        )
    return np.asarray([int(v) for v in values], dtype=np.int64).reshape(-1)


def official_to_split(indices: np.ndarray, data) -> np.ndarray:
    """Indices into the official training set as positions in D; one in the validation split, outside the
    --train_subset sample or outside the official set is refused, naming it."""
    size = data.official_train_size
    outside = indices[(indices < 0) | (indices >= size)]
    if len(outside):
        raise UsageError(f"--indexes_to_replace holds {outside[0]}, outside the official training set's 0..{size - 1}")
    position = np.full(size, -1, dtype=np.int64)
    position[data.official_train_indices] = np.arange(len(data.official_train_indices))
    missing = indices[position[indices] < 0]
    if len(missing):
        index = int(missing[0])
        if np.isin(index, data.official_val_indices):
            raise UsageError(
                f"--indexes_to_replace: official index {index} (and {len(missing) - 1} more) is in the validation "
                f"split (--split_seed {data.split_seed}), which is never trained on; drop those indices"
            )
        raise UsageError(
            f"--indexes_to_replace: official index {index} (and {len(missing) - 1} more) is not in the "
            f"--train_subset {data.train_subset} sample; drop those indices or the subset"
        )
    return position[indices]


def forget_set_of(data, args) -> ForgetSet:
    """The forget set ``args`` choose in ``data`` (what every script calls)."""
    official = data if getattr(args, "index_numbering", "split") == "official" else None
    return choose_forget_set(data.train_labels.cpu().numpy(), data.num_classes, args, official=official)


def choose_forget_set(labels: np.ndarray, num_classes: int, args, official=None) -> ForgetSet:
    """Apply the selection rule and refuse impossible requests with a message naming the fix.

    ``official``: the ``Data`` whose official numbering --indexes_to_replace uses (--index_numbering official).
    """
    n_train = len(labels)
    if args.indexes_to_replace is not None:
        if args.num_indexes_to_replace is not None:
            raise UsageError("give either --num_indexes_to_replace or --indexes_to_replace, not both")
        forget = parse_indices(args.indexes_to_replace)
        if official is not None and len(forget):
            forget = official_to_split(forget, official)
        if len(forget) == 0:
            raise UsageError("--indexes_to_replace is empty; give at least one training index")
        bad = forget[(forget < 0) | (forget >= n_train)]
        if len(bad):
            raise UsageError(f"--indexes_to_replace holds {bad[0]}, outside the training set's 0..{n_train - 1}")
        if len(np.unique(forget)) != len(forget):
            raise UsageError("--indexes_to_replace repeats an index; give each training index once")
        scenario, whole_class = "indices", None
    else:
        c, n = args.class_to_replace, args.num_indexes_to_replace
        if not -1 <= c < num_classes:
            raise UsageError(
                f"--class_to_replace {c} is not a class of this dataset; use 0..{num_classes - 1} "
                f"or -1 for random forgetting"
            )
        candidates = n_train if c == -1 else int((labels == c).sum())
        if n is not None and n <= 0:
            raise UsageError(f"--num_indexes_to_replace {n} must be positive; give how many samples to forget")
        if n is not None and n > candidates:
            which = "training samples" if c == -1 else f"samples of class {c}"
            raise UsageError(f"--num_indexes_to_replace {n} is more than the {candidates} {which}; lower it")
        forget = select_forget(labels, c, n, args.seed)
        scenario = "random" if c == -1 else "class"
        whole_class = c if c != -1 and len(forget) == candidates else None
    if len(forget) >= n_train:
        raise UsageError("the forget set is the whole training set, leaving nothing to retain; forget fewer samples")
    retain = np.setdiff1d(np.arange(n_train), forget)
    return ForgetSet(scenario, forget, retain, whole_class)
