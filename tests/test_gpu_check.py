"""benchmarks/gpu_check.py: the CPU/GPU agreement verdict and the results file's name."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import gpu_check  # noqa: E402

SIZES = {"retain": 1000, "forget": 50, "val": 60, "test": 400}


def record(retain=90.0, forget=80.0, val=85.0, test=88.0, forget_indices=(1, 2, 3), ratio=0.2):
    return {
        "method": "FT",
        "accuracy": {"retain": retain, "forget": forget, "val": val, "test": test},
        "forget_indices": list(forget_indices),
        "remaining_weight_ratio": ratio,
        "num_forget": SIZES["forget"],
    }


def test_runs_within_the_tolerance_agree():
    # 3 points on D_r and test; 3 samples (5 points) on val, 6 points (3 samples) on D_f
    result = gpu_check.agreement(record(), record(92.9, 86.0, 90.0, 85.1), 3.0, 3, SIZES)
    assert result["agree"], result
    assert result["allowed"] == {"retain": 3.0, "forget": 6.0, "val": 5.0, "test": 3.0}


@pytest.mark.parametrize(
    "other",
    [
        record(retain=93.5),  # 3.5 points on D_r
        record(val=80.0 - 0.1),  # more than 3 of its 60 samples
        record(forget_indices=(1, 2, 4)),  # another forget set
        record(ratio=0.05),  # another mask
    ],
)
def test_a_gap_beyond_it_or_another_forget_set_or_mask_disagrees(other):
    assert not gpu_check.agreement(record(), other, 3.0, 3, SIZES)["agree"]


def test_agree_writes_its_verdict_and_exits_nonzero_on_disagreement(tmp_path):
    first, second, sizes = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "sizes.json"
    first.write_text(json.dumps(record()))
    second.write_text(json.dumps(record(test=70.0)))
    sizes.write_text(json.dumps(SIZES))
    out = tmp_path / "agree.json"
    assert gpu_check.main(["agree", str(first), str(second), "--sizes", str(sizes), "--json", str(out)]) == 1
    saved = json.loads(out.read_text())
    assert saved["agree"] is False and saved["accuracy_gaps"]["test"] == pytest.approx(18.0)


def test_the_results_file_is_named_after_the_card():
    assert gpu_check.slug("NVIDIA H200") == "nvidia_h200"
    assert gpu_check.slug("NVIDIA GeForce RTX 4090 (24 GB)") == "nvidia_geforce_rtx_4090_24_gb"
