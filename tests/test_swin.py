"""Swin-T (models/swin.py): its size and layout, the shifted-window attention's reach, pruning of its linear
layers, and train -> prune -> unlearn end to end on digits (with a narrow Swin of the same code)."""

import json
import math

import pytest
import torch
from conftest import ARCH

import main_forget
import main_imp
import models
import pruner
from models.swin import SwinTransformer, WindowAttention, shift_mask


def test_swin_t_has_the_originals_size_and_every_linear_but_the_head_is_pruned():
    model = models.build_model("swin_t", 10)
    # 26,598,646 parameters, as the original's swin_t(window_size=4, downscaling_factors=(2, 2, 2, 1)) has
    assert sum(p.numel() for p in model.parameters()) == 26_598_646
    covered = pruner.prunable_modules(model)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(covered) == len(linears) - 1 == 52 and model.net.fc not in [m for _, m in covered]
    assert all(isinstance(m, torch.nn.Linear) for _, m in covered)  # no convolution in a Swin
    assert not any(
        isinstance(m, torch.nn.Linear) for _, m in pruner.prunable_modules(models.build_model("resnet20s", 10))
    )
    for shape in ((2, 3, 32, 32), (2, 3, 8, 8)):  # another size is resized to 32x32 first
        with torch.no_grad():
            assert model.eval()(torch.rand(shape)).shape == (2, 10)


def test_the_edge_masks_split_a_window_where_the_roll_joined_two_edges():
    rows, columns = shift_mask(4, 2, rows=True), shift_mask(4, 2, rows=False)
    row_of, column_of = torch.arange(16) // 4, torch.arange(16) % 4
    for i in range(16):
        for j in range(16):
            assert (rows[i, j] == 0) == ((row_of[i] >= 2) == (row_of[j] >= 2))
            assert (columns[i, j] == 0) == ((column_of[i] >= 2) == (column_of[j] >= 2))


def reach(attention, size, pixel):
    """The input pixels the output at ``pixel`` depends on (nonzero gradient)."""
    x = torch.randn(1, size, size, 8, requires_grad=True)
    attention(x)[0, pixel[0], pixel[1]].sum().backward()
    return {(r, c) for r in range(size) for c in range(size) if x.grad[0, r, c].abs().sum() > 0}


@pytest.mark.parametrize("pixel", [(0, 0), (1, 6), (5, 5), (7, 2), (3, 3)])
def test_a_pixel_attends_to_its_window_and_in_a_shifted_one_only_to_its_side_of_the_roll(pixel):
    torch.manual_seed(0)
    size, window, half = 8, 4, 2
    regular = WindowAttention(8, heads=2, head_dim=4, window=window, shifted=False)
    expected = {(r, c) for r in range(size) for c in range(size) if (r // 4, c // 4) == (pixel[0] // 4, pixel[1] // 4)}
    assert reach(regular, size, pixel) == expected

    shifted = WindowAttention(8, heads=2, head_dim=4, window=window, shifted=True)

    def place(r, c):  # where the roll by -2 puts a pixel, and which side of each edge it came from
        rr, cc = (r - half) % size, (c - half) % size
        return (rr // window, cc // window), (rr >= size - half, cc >= size - half)

    (home, sides) = place(*pixel)
    last_row, last_column = home[0] == size // window - 1, home[1] == size // window - 1
    expected = set()
    for r in range(size):
        for c in range(size):
            where, side = place(r, c)
            if where == home and (not last_row or side[0] == sides[0]) and (not last_column or side[1] == sides[1]):
                expected.add((r, c))
    assert reach(shifted, size, pixel) == expected


def narrow_swin(num_classes, in_channels=3):
    return SwinTransformer(num_classes, in_channels, dim=8, depths=(2, 2, 2, 2), heads=(1, 1, 2, 2), head_dim=4)


def test_swin_trains_prunes_its_linear_layers_and_unlearns_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setitem(models.MODELS, "swin_t", narrow_swin)  # the same code, narrower, so the test is fast
    arch = [*[a for a in ARCH if a != "resnet20s"], "--train_subset", "300"]
    arch[arch.index("--arch") + 1] = "swin_t"
    main_imp.main(
        [*arch, "--epochs", "1", "--pruning_times", "2", "--rate", "0.5", "--save_dir", str(tmp_path / "omp")]
    )
    rounds = json.loads((tmp_path / "omp" / "imp_results.json").read_text())["rounds"]
    assert [r["remaining_weight_ratio"] for r in rounds] == pytest.approx([1.0, 0.5], abs=1e-3)
    mask = tmp_path / "omp" / "1model_SA_best.pth.tar"
    main_forget.main([*arch, "--mask", str(mask), "--unlearn", "FT", "--unlearn_epochs", "2", "--class_to_replace",
                      "-1", "--num_indexes_to_replace", "30", "--save_dir", str(tmp_path / "FT")])  # fmt: skip
    saved = torch.load(tmp_path / "FT" / "FTcheckpoint.pth.tar", weights_only=True)["state_dict"]
    key = "net.stages.0.blocks.0.attention.to_qkv.weight"
    assert torch.all((saved[f"{key}_orig"] * saved[f"{key}_mask"])[saved[f"{key}_mask"] == 0] == 0)
    assert 0 < saved[f"{key}_mask"].float().mean() < 1  # the linear layers carry the mask
    record = json.loads((tmp_path / "FT" / "FT_eval.json").read_text())
    assert record["remaining_weight_ratio"] == pytest.approx(0.5, abs=1e-3)
    # the original unlearns a Swin with Adam and cosine annealing over --unlearn_epochs: 0.01, then 0.005
    assert [epoch["lr"] for epoch in record["unlearn_stats"]["epochs"]] == pytest.approx([0.01, 0.005])


def test_main_vit_trains_with_adam_and_a_cosine_schedule_in_every_round():
    import main_vit
    from experiments import pruning_rounds

    args = main_vit.make_parser().parse_args(["--epochs", "4", "--lr", "0.001"])
    assert args.arch == "swin_t"
    model = torch.nn.Linear(3, 2)
    for k in (0, 1):
        optimizer, scheduler = pruning_rounds.round_optimizer(args, model, k)
        assert type(optimizer) is torch.optim.Adam and optimizer.param_groups[0]["weight_decay"] == 0
        rates = []
        for _ in range(4):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert rates == pytest.approx([0.001 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(4)])
