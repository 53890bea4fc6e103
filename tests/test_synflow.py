"""SynFlow: exact sparsity, data-free, weights and signs untouched, scores as computed by hand; main_synflow.py."""

import copy
import json

import pytest
import torch
import torch.nn as nn

import dataset
import main_forget
import main_imp
import main_synflow
import models
import pruner
import utils
from experiments.experiment import build_model

DIGITS = (1, 8, 8)


def resnet20s(seed=0):
    torch.manual_seed(seed)
    return models.build_model("resnet20s", num_classes=10, in_channels=1)


def conv_total(model):
    return sum(m.weight.numel() for _, m in pruner.prunable_modules(model))


def kept_count(model):
    return sum(int(m.weight_mask.sum()) for _, m in pruner.prunable_modules(model))


@pytest.mark.parametrize("rate", [0.2, 0.5, 0.95, 0.99])
def test_reaches_the_one_shot_count_exactly(rate):
    model = resnet20s()
    total = conv_total(model)
    history = pruner.synflow_prune(model, rate, DIGITS)
    assert kept_count(model) == total - round(rate * total) == history[-1]
    assert len(history) == 100 and all(a >= b for a, b in zip(history, history[1:]))
    for i, kept in enumerate(history[:-1], start=1):  # a geometric schedule: each round keeps (1-rate)^(1/100)
        assert kept == max(round(total * (1 - rate) ** (i / 100)), history[-1])
    assert pruner.remaining_weight_ratio(model) == pytest.approx((total - round(rate * total)) / total)


@pytest.mark.parametrize("training", [True, False])
def test_weights_signs_and_mode_are_untouched(training):
    model = resnet20s().train(training)
    with torch.no_grad():  # non-trivial batch-norm statistics, so abs() on buffers would show if leaked
        for _, module in model.named_modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_()
                module.bias.normal_()
    before = copy.deepcopy(model.state_dict())
    pruner.synflow_prune(model, 0.9, DIGITS)
    after = model.state_dict()
    assert model.training == training
    for key, value in before.items():
        orig = key.replace(".weight", ".weight_orig") if key.replace(".weight", ".weight_orig") in after else key
        assert torch.equal(after[orig], value), key
    for _, module in pruner.prunable_modules(model):
        assert torch.equal(module.weight, module.weight_orig * module.weight_mask)
        assert (module.weight_orig < 0).any()  # signs are there to keep


def test_uses_no_training_data(monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("SynFlow read data")

    for name in ["load_raw", "load_data", "build_data"]:
        monkeypatch.setattr(dataset, name, no_data)
    monkeypatch.setattr(dataset.Batches, "__iter__", no_data)
    a, b = resnet20s(), resnet20s()
    pruner.synflow_prune(a, 0.8, DIGITS)
    pruner.synflow_prune(b, 0.8, DIGITS)
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())  # a function of θ alone


def test_prunes_on_top_of_an_existing_mask_and_keeps_its_weight_orig():
    model = resnet20s()
    pruner.global_prune(model, 0.5)
    with torch.no_grad():
        for _, module in pruner.prunable_modules(model):
            module.weight_orig.add_(0.01)  # pruned entries hold values that must survive
    old_masks = pruner.masks_of(model)
    old_orig = {k: v.clone() for k, v in model.state_dict().items() if k.endswith("weight_orig")}
    start = kept_count(model)
    pruner.synflow_prune(model, 0.5, DIGITS, iterations=10)
    assert kept_count(model) == start - round(0.5 * start)
    for key, mask in pruner.masks_of(model).items():
        assert torch.all(mask <= old_masks[key])  # nothing comes back
        assert torch.equal(model.state_dict()[key.replace("mask", "orig")], old_orig[key.replace("mask", "orig")])


def test_scores_of_a_hand_made_network():
    """1x1 input, Conv(1->2) -> Conv(2->2) -> Linear(2->1): R = sum_k l_k sum_j B_kj a_j (all |.|).

    score(a_j) = a_j sum_k l_k B_kj, score(B_kj) = l_k B_kj a_j. With the values below:
    a = (1, -3), B = ((2, 1), (0.5, -4)), l = (1, -0.1), taken as absolute values:
    score(a) = (1*(1*2 + 0.1*0.5), 3*(1*1 + 0.1*4)) = (2.05, 4.2)
    score(B) = ((1*2*1, 1*1*3), (0.1*0.5*1, 0.1*4*3)) = ((2, 3), (0.05, 1.2)).
    Pruning 3 of the 6 conv weights in one round drops B_10 (0.05), B_11 (1.2) and B_00 (2).
    """
    net = nn.Sequential(nn.Conv2d(1, 2, 1, bias=False), nn.Conv2d(2, 2, 1, bias=False), nn.Flatten(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([1.0, -3.0]).view(2, 1, 1, 1))
        net[1].weight.copy_(torch.tensor([[2.0, 1.0], [0.5, -4.0]]).view(2, 2, 1, 1))
        net[3].weight.copy_(torch.tensor([[1.0, -0.1]]))
        net[3].bias.zero_()
    pruner.synflow_prune(net, 0.5, (1, 1, 1), iterations=1)
    assert net[0].weight_mask.flatten().tolist() == [1.0, 1.0]
    assert net[1].weight_mask.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]


def synflow_scores_by_autograd(net, input_shape):
    """|θ ⊙ ∂R/∂θ| of every conv weight, from scratch: a double copy with |state|, eval mode, ones input."""
    twin = copy.deepcopy(net).double().eval()
    state = {k: v.abs() if v.is_floating_point() else v for k, v in twin.state_dict().items()}
    twin.load_state_dict(state)
    convs = [m for m in twin.modules() if isinstance(m, nn.Conv2d)]
    out = twin(torch.ones(1, *input_shape, dtype=torch.float64)).sum()
    grads = torch.autograd.grad(out, [m.weight for m in convs])
    return torch.cat([(m.weight * g).abs().flatten() for m, g in zip(convs, grads)])


@pytest.mark.parametrize("with_bn", [False, True])
def test_one_round_prunes_the_lowest_scores(with_bn):
    torch.manual_seed(3)
    layers = [nn.Conv2d(2, 4, 3, padding=1)]
    layers += [nn.BatchNorm2d(4)] if with_bn else []
    layers += [nn.ReLU(), nn.Conv2d(4, 3, 3), nn.Flatten(), nn.Linear(3 * 3 * 3, 5)]
    net = nn.Sequential(*layers)
    if with_bn:
        with torch.no_grad():
            net[1].running_mean.uniform_(-0.3, 0.3)
            net[1].running_var.uniform_(0.5, 2)
            net[1].weight.normal_()
    net.train()  # SynFlow must still score with batch-norm in eval mode
    scores = synflow_scores_by_autograd(net, (2, 5, 5))
    total = len(scores)
    pruner.synflow_prune(net, 0.6, (2, 5, 5), iterations=1)
    masks = torch.cat([m.weight_mask.flatten() for m in net.modules() if isinstance(m, nn.Conv2d)])
    dropped = scores.argsort()[: round(0.6 * total)]
    expected = torch.ones(total)
    expected[dropped] = 0
    assert torch.equal(masks, expected)
    assert scores[masks == 0].max() < scores[masks == 1].min()


def test_bad_rate_is_refused():
    with pytest.raises(pruner.UsageError, match="--rate 1.0"):
        pruner.synflow_prune(resnet20s(), 1.0, DIGITS)


# ----------------------------------------------------------------------------- main_synflow.py end to end

ARCH = ["--dataset", "digits", "--arch", "resnet20s", "--no-progress", "--device", "cpu", "--batch_size", "128"]


def test_main_synflow_then_main_forget(tmp_path):
    out = tmp_path / "synflow"
    argv = [*ARCH, "--epochs", "2", "--lr", "0.05", "--decreasing_lr", "1", "--prune_type", "rewind_lt"]
    main_synflow.main([*argv, "--rewind_epoch", "1", "--rate", "0.9", "--pruning_times", "1", "--save_dir", str(out)])
    for name in ["0checkpoint.pth.tar", "0model_SA_best.pth.tar", "epoch_0_rewind_weight.pt", "imp_results.json"]:
        assert (out / name).is_file(), name
    best = torch.load(out / "0model_SA_best.pth.tar", weights_only=True)
    masks = pruner.extract_mask(best["state_dict"])
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == total - round(0.9 * total) and best["pruning"] == "synflow"
    results = json.loads((out / "imp_results.json").read_text())
    assert results["rounds"][0]["remaining_weight_ratio"] == pytest.approx(kept / total)
    # the rewind/initial weights are the masked initialisation, and the mask is SynFlow's on that initialisation
    init = torch.load(out / "epoch_0_rewind_weight.pt", weights_only=True)
    for key, mask in masks.items():
        assert torch.all(init[key.replace("_mask", "")][mask == 0] == 0)
    args = main_synflow.make_parser().parse_args(ARCH)
    model = build_model(args, dataset.load_data(args), seed=args.seed)
    pruner.synflow_prune(model, 0.9, DIGITS)
    assert all(torch.equal(pruner.masks_of(model)[key], mask) for key, mask in masks.items())

    saved = main_forget.main(
        [*ARCH, "--mask", str(out / "0model_SA_best.pth.tar"), "--unlearn", "FT", "--unlearn_epochs", "1"]
        + ["--class_to_replace", "-1", "--num_indexes_to_replace", "40", "--save_dir", str(tmp_path / "forget")]
    )
    assert saved["remaining_weight_ratio"] == pytest.approx(kept / total)
    after = torch.load(tmp_path / "forget" / "FTcheckpoint.pth.tar", weights_only=True)["state_dict"]
    assert all(torch.equal(after[key], mask) for key, mask in masks.items())


BAD = [
    (["--epochs", "0"], ["--epochs 0", "at least 1 epoch"]),
    (["--rate", "1.0"], ["--rate 1.0", "outside [0, 1)"]),
    (["--prune_type", "lth"], ["--prune_type 'lth'", "choose from"]),
    (["--arch", "resnet19"], ["--arch 'resnet19'", "choose from"]),
    (["--resume"], ["--resume", "nothing to resume"]),
]


@pytest.mark.parametrize("extra,words", BAD, ids=[" ".join(extra) for extra, _ in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, extra, words):
    with pytest.raises(SystemExit) as exit_info:
        utils.run_cli(main_synflow.main, [*ARCH, "--epochs", "1", "--save_dir", str(tmp_path / "out"), *extra])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and all(word in lines[0] for word in words), lines
    assert not (tmp_path / "out").exists()


def test_resume_refuses_a_magnitude_pruned_run(tmp_path, capsys):
    argv = [*ARCH, "--epochs", "1", "--pruning_times", "1", "--save_dir", str(tmp_path)]
    main_imp.main(argv)
    with pytest.raises(SystemExit) as exit_info:
        utils.run_cli(main_synflow.main, [*argv, "--resume"])
    assert exit_info.value.code == 2 and "not a main_synflow.py run" in capsys.readouterr().err
