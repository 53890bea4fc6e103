"""JS divergence and weight ℓ2 (evaluation/distance.py), and report.py's distances to Retrain on real digits runs."""

import csv
import io
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import ARCH
from scipy.spatial.distance import jensenshannon

import main_forget
import models
import pruner
import report
from evaluation.distance import effective_parameters, js_divergence, weight_l2
from reporting import document
from reporting.output_distance import OutputMeter, Outputs, mismatch

LN2 = math.log(2)


def random_distributions(n=50, k=7, seed=0):
    rng = np.random.default_rng(seed)
    p = rng.random((n, k)) ** 3
    return p / p.sum(1, keepdims=True)


def test_js_of_a_distribution_with_itself_is_zero():
    p = random_distributions()
    assert js_divergence(p, p).abs().max().item() == 0.0
    logits = torch.randn(20, 10) * 300  # confident outputs: softmax underflows to 0 in places
    assert js_divergence(logits, logits, from_logits=True).abs().max().item() == 0.0


def test_js_of_disjoint_one_hots_is_ln2():
    p = torch.eye(4)
    q = p.roll(1, dims=1)
    assert js_divergence(p, q).tolist() == pytest.approx([LN2] * 4, abs=1e-12)


def test_js_is_symmetric_and_matches_scipy():
    p, q = random_distributions(seed=1), random_distributions(seed=2)
    forward, backward = js_divergence(p, q), js_divergence(q, p)
    assert torch.equal(forward, backward)
    assert forward.numpy() == pytest.approx(jensenshannon(p, q, axis=1) ** 2, abs=1e-12)  # scipy gives √JS
    assert 0 < forward.min() and forward.max() < LN2


def test_js_two_class_hand_computation():
    # p = (1/2, 1/2), q = (1, 0): m = (3/4, 1/4)
    # KL(p‖m) = ½ ln(2/3) + ½ ln 2 = 0.1438410; KL(q‖m) = ln(4/3) = 0.2876821; JS = ½ (sum) = 0.2157616
    js = js_divergence([[0.5, 0.5]], [[1.0, 0.0]])
    assert js.item() == pytest.approx(0.2157616, abs=1e-7)


def test_js_from_logits_equals_js_from_probabilities():
    a, b = torch.randn(30, 5), torch.randn(30, 5)
    from_probs = js_divergence(torch.softmax(a.double(), 1), torch.softmax(b.double(), 1))
    assert js_divergence(a, b, from_logits=True).numpy() == pytest.approx(from_probs.numpy(), abs=1e-12)


def test_js_refuses_what_is_not_a_distribution():
    with pytest.raises(ValueError, match="rows summing to 1"):
        js_divergence([[2.0, -1.0]], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="differ in shape"):
        js_divergence([[0.5, 0.5]], [[1.0, 0.0, 0.0]])


def pruned_resnet():
    model = models.build_model("resnet20s", num_classes=10, in_channels=1)
    pruner.global_prune(model, 0.5)
    return model


def test_weight_l2_zero_to_itself_and_hand_computed_for_a_perturbation():
    model = pruned_resnet()
    base = effective_parameters(model)
    assert weight_l2(base, base) == 0.0
    assert "net.conv1.weight" in base and not any(key.endswith(("_orig", "_mask", "running_mean")) for key in base)
    mask = model.net.conv1.weight_mask.flatten()
    kept, pruned = int(mask.nonzero()[0]), int((mask == 0).nonzero()[0])
    with torch.no_grad():
        model.net.conv1.weight_orig.view(-1)[kept] += 4.0
        model.net.conv1.weight_orig.view(-1)[pruned] += 100.0  # masked out: not part of the effective model
        model.net.fc.bias[3] -= 3.0
        model.net.bn1.running_mean += 50.0  # a buffer, not a parameter
    assert weight_l2(effective_parameters(model), base) == pytest.approx(5.0, abs=1e-6)


def test_weight_l2_refuses_other_architectures():
    small = effective_parameters(models.build_model("resnet20s", num_classes=10, in_channels=1))
    other = effective_parameters(models.build_model("resnet20s", num_classes=3, in_channels=1))
    with pytest.raises(ValueError, match="net.fc.weight"):
        weight_l2(small, other)


def test_pairing_checks_split_forget_indices_and_mask():
    def outputs(split=("digits", 1, None), forget=(1, 5), mask=(1.0, 0.0)):
        masks = {"net.conv1.weight_mask": torch.tensor(mask)}
        return Outputs(np.array(forget), masks, split, torch.zeros(2, 3), torch.zeros(4, 3), {})

    reference = outputs()
    assert mismatch(outputs(), reference) is None
    assert "data split" in mismatch(outputs(split=("digits", 2, None)), reference)
    assert "forget indices differ" in mismatch(outputs(forget=(1, 6)), reference)
    assert "mask differs" in mismatch(outputs(mask=(0.0, 1.0)), reference)


# ----------------------------------------------------------------------------- report on real runs

SHARED = ["1", "5", "9", "14", "20", "33", "41", "57", "60", "72"]
OTHER = ["2", "6", "10", "15", "21", "34", "42", "58", "61", "73"]


def forget_run(mask, root, method, seed, indices):
    """One tiny main_forget.py run laid out as scripts/sweep.py does (explicit forget indices)."""
    save_dir = root / "digits_resnet20s" / "unlearn" / "indices" / "r0.5" / method / f"seed{seed}"
    main_forget.main(
        [*ARCH, "--mask", str(mask), "--unlearn", method, "--save_dir", str(save_dir), "--seed", str(seed)]
        + ["--indexes_to_replace", ",".join(indices), "--unlearn_epochs", "1", "--unlearn_lr", "0.01"]
    )
    return save_dir


@pytest.fixture(scope="module")
def sweep(omp_dir, tmp_path_factory):
    """Retrain and FT on the same forget set, and GA (same seed) on another forget set of the same size."""
    root = tmp_path_factory.mktemp("sweep")
    mask = omp_dir / "1model_SA_best.pth.tar"
    forget_run(mask, root, "retrain", 2, SHARED)
    forget_run(mask, root, "FT", 2, SHARED)
    forget_run(mask, root, "GA", 2, OTHER)
    return root


def by_method(rows):
    return {row["method"]: row for row in rows}


def test_report_measures_ft_against_retrain(sweep, tmp_path):
    meter = OutputMeter("cpu")
    result = document.build_report([sweep], tmp_path, meter=meter)
    rows = by_method(result["rows"])
    ft, retrain, ga = rows["FT"], rows["retrain"], rows["GA"]
    assert (retrain["JS_forget_mean"], retrain["JS_test_mean"], retrain["L2_to_retrain_mean"]) == (0.0, 0.0, 0.0)
    assert 0 < ft["JS_forget_mean"] < LN2 and 0 < ft["JS_test_mean"] < LN2 and ft["L2_to_retrain_mean"] > 1
    assert ft["paired_seeds"] == 1 and ft["JS_forget_std"] is None  # one trial: no spread
    assert ga["paired_seeds"] == 0 and ga["JS_forget_mean"] is None and ga["L2_to_retrain_mean"] is None
    (problem,) = [line for line in result["problems"] if "JS/ℓ2" in line]
    # another explicit forget set is another experiment: no Retrain of its inputs, so no pairing (and no gaps)
    assert "GA" in problem and "seed 2" in problem and "no Retrain run of the same trial and inputs" in problem
    assert not ga["has_retrain"] and math.isnan(ga["UA_gap"])
    text = (tmp_path / "report.md").read_text()
    assert "| 50.0% | Retrain | 0.0000 | 0.0000 | 0.000 | 1 of 1 |" in text
    assert "| GA |  |  |  | 0 of 1 |" in text
    table = {row["method"]: row for row in csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text()))}
    assert float(table["FT"]["JS_test_mean"]) == pytest.approx(ft["JS_test_mean"])
    assert table["GA"]["JS_forget_mean"] == "" and table["GA"]["L2_to_retrain_std"] == ""
    assert len(meter._datasets) == 1  # digits loaded once for the three runs


def test_report_values_match_an_independent_computation(sweep, tmp_path):
    """JS via scipy on the two models' test-set softmax; ℓ2 over the masked weights, both rebuilt here."""
    ft_row = by_method(document.build_report([sweep], tmp_path, meter=OutputMeter("cpu"))["rows"])["FT"]
    folder = sweep / "digits_resnet20s" / "unlearn" / "indices" / "r0.5"
    states = [torch.load(folder / m / "seed2" / f"{m}checkpoint.pth.tar", weights_only=True) for m in ("FT", "retrain")]
    dense = [pruner.dense_state(state["state_dict"]) for state in states]
    names = [name.removesuffix("_orig") for name, _ in pruned_resnet().named_parameters()]
    squares = sum(float(((dense[0][n].double() - dense[1][n].double()) ** 2).sum()) for n in names)
    assert ft_row["L2_to_retrain_mean"] == pytest.approx(math.sqrt(squares), rel=1e-9)
    import dataset

    data = dataset.load_data(main_forget.make_parser().parse_args(ARCH))
    images = data.test_images.float() / 255
    probs = []
    for state in states:
        model = models.build_model("resnet20s", 10, 1, mean=data.mean, std=data.std)
        pruner.load_pruned_state(model, state["state_dict"])
        with torch.no_grad():
            probs.append(torch.softmax(model.eval()(images).double(), 1).numpy())
    expected = float(np.mean(jensenshannon(probs[0], probs[1], axis=1) ** 2))
    assert ft_row["JS_test_mean"] == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_unreadable_checkpoint_is_a_problem_not_a_crash(sweep, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(sweep, copy)
    ft_checkpoint = next(copy.rglob("FTcheckpoint.pth.tar"))
    ft_checkpoint.write_bytes(b"not a checkpoint")
    result = document.build_report([copy], tmp_path / "out", meter=OutputMeter("cpu"))
    rows = by_method(result["rows"])
    assert rows["FT"]["JS_test_mean"] is None and rows["retrain"]["JS_test_mean"] == 0.0
    assert any("FT" in line and "FTcheckpoint.pth.tar" in line for line in result["problems"])


def test_no_output_metrics_flag_skips_them(sweep, tmp_path, capsys):
    report.main([str(sweep), "--out", str(tmp_path), "--no-output-metrics"])
    assert "JS on D_f" not in capsys.readouterr().out
    table = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    assert {row["JS_forget_mean"] for row in table} == {""} and {row["paired_seeds"] for row in table} == {"0"}
