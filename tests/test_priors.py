"""The original's other priors for training: SAM (main_sam.py) and label smoothing (main_ls.py)."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import ARCH

import main_imp
import main_ls
import main_sam
import utils
from experiments import pruning_rounds, run_identity
from training.sam import SAM
from training.trainer import cross_entropy, training_loss

TINY = [*ARCH, "--epochs", "1", "--pruning_times", "2", "--rate", "0.5", "--train_subset", "300"]


def identity_of(folder):
    return json.loads((folder / "imp_results.json").read_text())["identity"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("priors")
    main_imp.main([*TINY, "--save_dir", str(root / "sgd")])
    main_sam.main([*TINY, "--save_dir", str(root / "sam")])
    main_ls.main([*TINY, "--save_dir", str(root / "ls")])
    return root


def test_main_sam_and_main_ls_are_main_imp_with_one_default_changed(trained):
    sgd, sam, ls = (identity_of(trained / name) for name in ("sgd", "sam", "ls"))
    assert "optimizer" not in sgd["args"] and "label_smoothing" not in sgd["args"]  # as before these flags
    assert run_identity.differences(sgd, sam) == [("--optimizer", None, "sam")]
    assert run_identity.differences(sgd, ls) == [("--label_smoothing", None, 0.1)]
    same = main_imp.make_parser().parse_args([*TINY, "--optimizer", "sam"])
    assert run_identity.differences(sam, run_identity.of_args(run_identity.TRAINING, same)) == []
    weights = {
        name: torch.load(trained / name / "1model_SA_best.pth.tar", weights_only=True) for name in ("sgd", "sam", "ls")
    }
    key = "net.conv1.weight_orig"
    assert not torch.equal(weights["sgd"]["state_dict"][key], weights["sam"]["state_dict"][key])
    assert not torch.equal(weights["sgd"]["state_dict"][key], weights["ls"]["state_dict"][key])
    for name in ("sam", "ls"):  # each round trained, and the mask was pruned to half
        rounds = json.loads((trained / name / "imp_results.json").read_text())["rounds"]
        assert [r["remaining_weight_ratio"] for r in rounds] == pytest.approx([1.0, 0.5], abs=1e-3)


def test_every_round_gets_the_chosen_optimiser():
    args = main_sam.make_parser().parse_args(TINY)
    model = torch.nn.Linear(3, 2)
    for k in (0, 1):
        optimizer, _ = pruning_rounds.round_optimizer(args, model, k)
        assert isinstance(optimizer, SAM) and optimizer.param_groups[0]["lr"] == args.lr
    plain, _ = pruning_rounds.round_optimizer(main_imp.make_parser().parse_args(TINY), model, 1)
    assert type(plain) is torch.optim.SGD


def test_the_smoothed_loss_is_the_originals_formula_and_epsilon_is_checked():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 10), torch.randint(0, 10, (6,))
    model = torch.nn.Identity()
    log_p = F.log_softmax(logits, dim=-1)
    written_out = 0.1 * (-log_p.sum(dim=-1).mean() / 10) + 0.9 * F.nll_loss(log_p, labels)
    assert training_loss(0.1)(model, logits, labels)[0].item() == pytest.approx(written_out.item(), rel=1e-6)
    assert training_loss(0.0) is cross_entropy
    with pytest.raises(utils.UsageError, match="label_smoothing 1.0"):
        training_loss(1.0)


def test_a_label_smoothing_outside_zero_one_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        utils.run_cli(main_ls.main, [*TINY, "--label_smoothing", "1.5", "--save_dir", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and "--label_smoothing 1.5" in err
    assert not (tmp_path / "x").exists()
