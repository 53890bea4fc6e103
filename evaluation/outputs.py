"""Per-example logits of an unlearned model (main_forget.py --save_outputs), the input of audit.py.

Every forget example and a fixed sample of the test set, seen with the test transform in eval mode.
The test sample depends only on the test set's size, so every run of an audit holds the same examples.
"""

from __future__ import annotations

import io

import numpy as np

from training.trainer import predict
from utils import UsageError, atomic_write_bytes

TEST_SAMPLE_SIZE = 1000
TEST_SAMPLE_SEED = 0  # a constant, not --seed: runs with different seeds must see the same test examples
KEYS = ("forget_indices", "forget_labels", "forget_logits", "test_indices", "test_labels", "test_logits")


def sampled_test_indices(num_test: int) -> np.ndarray:
    """min(1000, num_test) sorted test positions, the same in every run."""
    rng = np.random.default_rng(TEST_SAMPLE_SEED)
    return np.sort(rng.choice(num_test, min(TEST_SAMPLE_SIZE, num_test), replace=False)).astype(np.int64)


def per_example_outputs(model, data, forget_indices, runtime) -> dict[str, np.ndarray]:
    """Logits (float32), labels and positions of the forget set (in D) and of the test sample."""
    forget_indices = np.asarray(forget_indices, dtype=np.int64)
    test_indices = sampled_test_indices(len(data.test_labels))
    forget_logits, forget_labels = predict(model, data.eval_batches("train", forget_indices), runtime)
    test_logits, test_labels = predict(model, data.eval_batches("test", test_indices), runtime)
    return {
        "forget_indices": forget_indices,
        "forget_labels": forget_labels.numpy().astype(np.int64),
        "forget_logits": forget_logits.numpy().astype(np.float32),
        "test_indices": test_indices,
        "test_labels": test_labels.numpy().astype(np.int64),
        "test_logits": test_logits.numpy().astype(np.float32),
    }


def save_outputs(outputs: dict[str, np.ndarray], path) -> None:
    """An uncompressed .npz of plain arrays, written atomically (np.load(allow_pickle=False) reads it)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{key: outputs[key] for key in KEYS})
    atomic_write_bytes(buffer.getvalue(), path)


def load_outputs(path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as saved:
        missing = [key for key in KEYS if key not in saved.files]
        if missing:
            raise UsageError(
                f"'{path}' lacks {', '.join(missing)}; it was not written by main_forget.py --save_outputs"
            )
        return {key: saved[key] for key in KEYS}
