"""Every registered model: shapes, the Normalize first layer, the head, conv counts, pruning, errors."""

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import prune

import models
from models import IMAGENET_ARCH, MODELS, build_model
from models.normalize import Normalize
from models.resnet_cifar import ShortcutA
from utils import UsageError

CONV_COUNTS = {"resnet18": 20, "resnet50": 53, "resnet20s": 19, "resnet44s": 43, "resnet56s": 55, "vgg16_bn": 13,
               "vgg16_bn_lth": 13, "swin_t": 0}  # fmt: skip


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _forward(model, x):
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("num_classes", [10, 7])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape_cifar(name, num_classes):
    model = build_model(name, num_classes)
    assert _forward(model, torch.rand(2, 3, 32, 32)).shape == (2, num_classes)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape_digits(name):
    model = build_model(name, 10, in_channels=1, mean=(0.3,), std=(0.2,))
    out = _forward(model, torch.rand(2, 1, 8, 8))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(IMAGENET_ARCH))
def test_imagenet_arch(name):
    model = build_model(name, 7, imagenet_arch=True)
    assert model.net.conv1.kernel_size == (7, 7) and model.net.conv1.stride == (2, 2)
    assert isinstance(model.net.maxpool, nn.MaxPool2d)
    assert _forward(model, torch.rand(2, 3, 64, 64)).shape == (2, 7)


def test_imagenet_arch_is_resnet18_and_50():
    assert IMAGENET_ARCH == {"resnet18", "resnet50"}
    assert build_model("resnet18", 10).net.conv1.kernel_size == (3, 3)


@pytest.mark.parametrize("name", sorted(set(MODELS) - IMAGENET_ARCH))
def test_imagenet_arch_refused_elsewhere(name):
    with pytest.raises(UsageError, match="--imagenet_arch applies only to resnet18, resnet50"):
        build_model(name, 10, imagenet_arch=True)


def test_normalize_known_numbers():
    layer = Normalize((0.5, 0.25), (0.5, 0.125))
    x = torch.ones(1, 2, 3, 3)
    x[:, 1] = 0.0
    out = layer(x)
    assert torch.equal(out[:, 0], torch.full((1, 3, 3), 1.0))
    assert torch.equal(out[:, 1], torch.full((1, 3, 3), -2.0))
    assert layer.mean.shape == (1, 2, 1, 1) and list(layer.parameters()) == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_normalize_is_first_and_applied(name):
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    model = build_model(name, 10, mean=mean, std=std).eval()
    assert next(iter(model.children())) is model.normalize
    assert list(model.state_dict())[:2] == ["normalize.mean", "normalize.std"]
    x = torch.rand(2, 3, 16, 16)
    manual = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net(manual))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_head_is_the_only_tensor_with_class_dim(name):
    model = build_model(name, 13)  # 13: no other dimension of any model (Swin's position table is 7 x 7)
    assert model.head is model.net.fc and isinstance(model.head, nn.Linear)
    with_class_dim = [key for key, t in model.state_dict().items() if t.ndim and t.shape[0] == 13]
    assert with_class_dim == ["net.fc.weight", "net.fc.bias"]


@pytest.mark.parametrize("name", sorted(CONV_COUNTS))
def test_conv_count(name):
    model = build_model(name, 10)
    assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == CONV_COUNTS[name]


def test_conv_counts_cover_registry():
    assert set(CONV_COUNTS) == set(MODELS)


def test_resnet18_downsample_convs():
    convs = [m for m in build_model("resnet18", 10).modules() if isinstance(m, nn.Conv2d)]
    assert sum(m.kernel_size == (1, 1) for m in convs) == 3
    assert all(m.bias is None for m in convs)


def test_resnet20s_parameter_count():
    # conv 432 + 13,824 + 50,688 + 202,752; BN 32 + 192 + 384 + 768; fc 64 * 10 + 10
    model = build_model("resnet20s", 10)
    assert sum(p.numel() for p in model.parameters()) == 269_722


def test_option_a_shortcut():
    shortcuts = [m for m in build_model("resnet20s", 10).modules() if isinstance(m, ShortcutA)]
    assert len(shortcuts) == 2 and all(not list(m.parameters()) and not list(m.buffers()) for m in shortcuts)
    x = torch.rand(2, 16, 8, 8)
    out = shortcuts[0](x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_prune_every_conv_and_channels_last(name):
    model = build_model(name, 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        prune.l1_unstructured(conv, "weight", amount=0.5)
    zeros = sum(int((c.weight == 0).sum()) for c in convs)
    assert zeros >= sum(c.weight.numel() // 2 for c in convs)
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 16, 16).to(memory_format=torch.channels_last)
    out = _forward(model, x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    for conv in convs:
        prune.remove(conv, "weight")
    assert all(isinstance(c.weight, nn.Parameter) for c in convs)


def test_same_seed_same_weights():
    torch.manual_seed(3)
    first = build_model("resnet20s", 10).state_dict()
    torch.manual_seed(3)
    second = build_model("resnet20s", 10).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_unknown_name_lists_choices():
    choices = ", ".join(sorted(MODELS))
    assert choices == "resnet18, resnet20s, resnet44s, resnet50, resnet56s, swin_t, vgg16_bn, vgg16_bn_lth"
    with pytest.raises(UsageError) as err:
        build_model("resnet19", 10)
    assert str(err.value) == f"unknown --arch 'resnet19'; choose from {choices}"


@pytest.mark.parametrize(("mean", "std"), [((0.5,), (0.5,)), ((0.5,) * 3, (0.5,) * 2)])
def test_normalisation_length_mismatch(mean, std):
    with pytest.raises(UsageError, match="for 3 channels"):
        build_model("resnet20s", 10, in_channels=3, mean=mean, std=std)


def test_bad_std_and_sizes():
    with pytest.raises(UsageError, match="std must be positive"):
        build_model("resnet20s", 10, in_channels=1, mean=(0.5,), std=(0.0,))
    with pytest.raises(UsageError, match="num_classes >= 1"):
        build_model("resnet20s", 0)


def test_register_model_adds_to_registry(monkeypatch):
    monkeypatch.setattr(models, "MODELS", dict(MODELS))

    @models.register_model("tiny")
    def tiny(num_classes, in_channels=3):
        net = nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes))
        net.fc = net[1]
        return net

    assert models.MODELS["tiny"] is tiny and "tiny" not in MODELS


@pytest.mark.parametrize(
    ("name", "linears", "parameters"), [("vgg16_bn", 3, 15_316_042), ("vgg16_bn_lth", 1, 14_728_266)]
)
def test_the_two_vggs_are_the_originals(name, linears, parameters):
    """Configuration D with 4 pools; vgg16_bn: 2x2 pooling and a 2048-256-256 MLP; _lth: global pooling and one
    linear layer; initialised as the original (Kaiming fan-out convs, N(0, 0.01²) linears, zero biases)."""
    net = build_model(name, 10).net
    found = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert len(found) == linears and found[-1] is net.fc and found[0].in_features == (2048 if linears == 3 else 512)
    assert sum(p.numel() for p in net.parameters()) == parameters
    assert sum(isinstance(m, models.vgg.MaxPoolKeepOne) for m in net.modules()) == 4
    conv = net.features[0]
    assert conv.weight.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.15) and not conv.bias.any()
    assert net.fc.weight.std().item() == pytest.approx(0.01, rel=0.15) and not net.fc.bias.any()
