"""Speed benchmark (run by hand, not by CI): training throughput, unlearning wall time, FF/IU vs loops.

    python benchmarks/bench.py                      # everything, sizes picked for the device
    python benchmarks/bench.py --parts train --arch resnet18 --images 4096
    python benchmarks/bench.py --json out.json

(a) ``train``: img/s of one model through our whole data path (uint8 tensor on the device,
    seeded permutation, device-side crop/flip, train_epoch) against the model alone on a batch
    that is already on the device, so the data path's share of an epoch is visible.
(b) ``unlearn``: wall time of every registered method on one fixed synthetic workload.
(c) ``ff_iu``: FF's per-class accumulator and IU's per-sample WoodFisher step, vectorised
    (torch.func) against the plain loops kept as references, with the largest difference.
(d) ``reference``: whole IU and FF runs against plain re-implementations of the original's loops
    (benchmarks/reference.py: batch-of-one forward + backward per sample for IU, one backward per
    class and batch for FF) on resnet20s and resnet18, 1x8x8 digits-sized images, D = 1,500 with
    200 forgotten; and FT's first epoch in a fresh process against its warm epochs.
Data are synthetic CIFAR-shaped uint8 images: speed does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dataset  # noqa: E402
import models  # noqa: E402
import reference  # noqa: E402
import unlearn  # noqa: E402
from training.runtime import Runtime
from training.trainer import cross_entropy, make_optimizer, train_epoch
from unlearn import fisher, wfisher  # noqa: E402
from unlearn.context import UnlearnContext  # noqa: E402
from utils import atomic_write_json, resolve_device  # noqa: E402

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def synthetic_data(n_train, n_test, device, seed=0, channels=3, size=32, classes=10):
    gen = torch.Generator().manual_seed(seed)
    raw = dataset.RawDataset(
        "synthetic-cifar",
        torch.randint(0, 256, (n_train, channels, size, size), dtype=torch.uint8, generator=gen),
        torch.randint(0, classes, (n_train,), generator=gen),
        torch.randint(0, 256, (n_test, channels, size, size), dtype=torch.uint8, generator=gen),
        torch.randint(0, classes, (n_test,), generator=gen),
        num_classes=classes,
        mean=CIFAR_MEAN,
        std=CIFAR_STD,
    )
    return dataset.build_data(raw, split_seed=1, device=device)


def make_model(arch, data, runtime, seed=0):
    torch.manual_seed(seed)
    model = models.build_model(arch, data.num_classes, data.in_channels, data.mean, data.std)
    return runtime.prepare(model)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(arch, images, batch_size, runtime, epochs=2, size=32):
    """img/s through the data path vs the model alone (same steps, same optimiser)."""
    data = synthetic_data(images, 16, runtime.device, size=size)
    model = make_model(arch, data, runtime)
    optimizer = make_optimizer(model, 0.1)
    batches = data.train_batches(batch_size=batch_size, augment=True, seed=0)
    train_epoch(model, batches, optimizer, runtime, desc="warm-up")  # cuDNN autotuning, compile, caches
    sync(runtime.device)
    full = []
    for epoch in range(epochs):
        batches.set_epoch(epoch + 1)
        start = time.perf_counter()
        train_epoch(model, batches, optimizer, runtime, desc="data path")
        sync(runtime.device)
        full.append(time.perf_counter() - start)
    fixed_x = torch.rand(batch_size, *data.train_images.shape[1:], device=runtime.device)
    fixed_y = torch.randint(0, data.num_classes, (batch_size,), device=runtime.device)
    steps = len(batches)
    alone = []
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for _ in range(steps):
            with runtime.autocast:
                loss, _ = cross_entropy(runtime.call(model), runtime.inputs(fixed_x), fixed_y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(runtime.device)
        alone.append(time.perf_counter() - start)
    n = batches.num_samples
    t_full, t_alone = min(full), min(alone)
    return {
        "arch": arch,
        "images_per_epoch": n,
        "batch_size": batch_size,
        "data_path_img_s": n / t_full,
        "model_alone_img_s": steps * batch_size / t_alone,
        "data_path_overhead_pct": 100.0 * (t_full - t_alone * n / (steps * batch_size)) / t_full,
        "epoch_seconds": t_full,
    }


def bench_unlearn(arch, n_train, runtime, epochs=1, size=32):
    """Seconds per registered method on one workload: 10% random forgetting, ``epochs`` epochs."""
    data = synthetic_data(n_train, 256, runtime.device, seed=1, size=size)
    labels = data.train_labels.cpu().numpy()
    forget = dataset.select_forget(labels, -1, max(1, len(labels) // 10), seed=2)
    retain = np.setdiff1d(np.arange(len(labels)), forget)
    args = argparse.Namespace(
        seed=2,
        batch_size=256,
        no_aug=False,
        unlearn_lr=0.01,
        unlearn_epochs=epochs,
        momentum=0.9,
        weight_decay=5e-4,
        decreasing_lr="91,136",
        warmup=0,
        alpha=1e-6,
        no_l1_epochs=0,
        dataset="cifar10",  # CIFAR-shaped data: RL takes CIFAR-10's epoch layout (D_f, then D_r)
        save_dir=tempfile.mkdtemp(prefix="bench_"),  # where SalUn writes its saliency mask
        **{flag.name: flag.default for flag in unlearn.method_flags()},
    )
    timings = {}
    for name in sorted(unlearn.METHODS):
        args.unlearn = name
        model = make_model(arch, data, runtime)
        ctx = UnlearnContext.build(data, forget, args, runtime, retain_indices=retain, log=lambda line: None)
        sync(runtime.device)
        start = time.perf_counter()
        unlearn.get_method(name).fn(model, ctx)
        sync(runtime.device)
        timings[name] = time.perf_counter() - start
    return {
        "arch": arch,
        "train_samples": len(labels),
        "forget_samples": len(forget),
        "epochs": epochs,
        "seconds": timings,
    }


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _timed(fn, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def bench_ff_iu(arch, samples, runtime, size=32):
    """Vectorised FF accumulator and IU recursion against their plain loops, same inputs."""
    fp32 = Runtime(runtime.device, fast=False, progress=False)  # compare in float32
    data = synthetic_data(
        samples * 10 // 9 + 16, 16, runtime.device, seed=3, size=size
    )  # D keeps 90% after the val split
    model = make_model(arch, data, fp32)
    model.eval()
    batches = data.train_batches(np.arange(samples), batch_size=32, shuffle=False, augment=False)
    loop_acc, t_ff_loop = _timed(
        lambda: fisher.fisher_accumulator_loop(model, batches, data.num_classes, fp32), runtime.device
    )
    vec_acc, t_ff_vec = _timed(
        lambda: fisher.fisher_accumulator(model, batches, data.num_classes, fp32), runtime.device
    )
    v = torch.randn(sum(p.numel() for p in model.parameters()), generator=torch.Generator().manual_seed(0))
    v = v.to(runtime.device) * 1e-3
    one_by_one = data.train_batches(np.arange(samples), batch_size=samples, shuffle=False, augment=False)
    k_loop, t_iu_loop = _timed(
        lambda: wfisher.woodfisher_loop(model, one_by_one, v.clone(), runtime=fp32), runtime.device
    )
    k_vec, t_iu_vec = _timed(lambda: wfisher.woodfisher(model, one_by_one, v.clone(), runtime=fp32), runtime.device)
    scale = float(k_loop.abs().max())
    return {
        "arch": arch,
        "samples": samples,
        "ff_loop_s": t_ff_loop,
        "ff_vectorised_s": t_ff_vec,
        "ff_speedup": t_ff_loop / t_ff_vec,
        "ff_max_abs_diff": _max_diff(loop_acc, vec_acc),
        "ff_max_rel_diff": _max_diff(loop_acc, vec_acc)
        / max(max(float(a.abs().max()) for a in loop_acc.values()), 1e-30),
        "iu_loop_s": t_iu_loop,
        "iu_vectorised_s": t_iu_vec,
        "iu_speedup": t_iu_loop / t_iu_vec,
        "iu_max_abs_diff": float((k_loop - k_vec).abs().max()),
        "iu_max_rel_diff": float((k_loop - k_vec).abs().max()) / max(scale, 1e-30),
    }


def _digits_sized(n_train, device):
    """Synthetic 1x8x8 data (the digits workload's shape) with D = ``n_train`` after the 10% val split."""
    global CIFAR_MEAN, CIFAR_STD
    saved, (CIFAR_MEAN, CIFAR_STD) = (CIFAR_MEAN, CIFAR_STD), ((0.5,), (0.5,))
    try:
        return synthetic_data(n_train * 10 // 9 + 1, 16, device, seed=4, channels=1, size=8)
    finally:
        CIFAR_MEAN, CIFAR_STD = saved


def _relative_gap(model_a, model_b, start) -> float:
    """max |θ_a − θ_b| / max |θ_b − θ_start|: how far the two results differ, relative to the update."""
    a, b, s = (torch.cat([p.detach().reshape(-1) for p in m.parameters()]) for m in (model_a, model_b, start))
    return float((a - b).abs().max() / (b - s).abs().max().clamp_min(1e-30))


def bench_reference(arch, runtime, n_train=1500, n_forget=200):
    """Seconds of our IU and FF against the plain references, same model and data; FT's first epoch."""
    fp32 = Runtime(runtime.device, fast=False, progress=False)
    data = _digits_sized(n_train, runtime.device)
    labels = data.train_labels.cpu().numpy()
    forget = np.sort(np.random.default_rng(2).choice(len(labels), n_forget, replace=False))
    retain = np.setdiff1d(np.arange(len(labels)), forget)
    args = argparse.Namespace(seed=2, batch_size=256, no_aug=True, alpha=1e-6)
    ctx = UnlearnContext.build(data, forget, args, fp32, "FT", retain_indices=retain, log=lambda line: None)
    images = data.train_images.float().div(255)
    out = {"arch": arch, "train_samples": len(labels), "forget_samples": n_forget}
    start = make_model(arch, data, fp32)
    _warm_up(start, images[retain[:64]], data, fp32)  # one-time kernel set-up must not count for whoever runs first

    ours = make_model(arch, data, fp32)
    _, out["iu_ours_s"] = _timed(lambda: unlearn.get_method("wfisher").fn(ours, ctx), runtime.device)
    plain = make_model(arch, data, fp32)
    f_x, f_y, r_x, r_y = images[forget], data.train_labels[forget], images[retain], data.train_labels[retain]
    k, out["iu_reference_s"] = _timed(lambda: reference.iu_update(plain, f_x, f_y, r_x, r_y), runtime.device)
    wfisher.add_flat_(plain, args.alpha * k)
    out["iu_speedup"] = out["iu_reference_s"] / out["iu_ours_s"]
    out["iu_max_rel_diff"] = _relative_gap(ours, plain, start)

    ours = make_model(arch, data, fp32)
    _, out["ff_ours_s"] = _timed(lambda: unlearn.get_method("fisher_new").fn(ours, ctx), runtime.device)
    plain = make_model(arch, data, fp32)
    acc, out["ff_reference_s"] = _timed(
        lambda: reference.ff_accumulator(plain, r_x, data.num_classes, fisher.FISHER_BATCH_SIZE), runtime.device
    )
    _apply_fisher_noise(plain, acc, data.num_classes, args)
    out["ff_speedup"] = out["ff_reference_s"] / out["ff_ours_s"]
    out["ff_max_rel_diff"] = _relative_gap(ours, plain, start)
    out["ft_epoch_s"] = _first_and_warm_epochs(arch, runtime.device)
    first, warm = out["ft_epoch_s"][0], min(out["ft_epoch_s"][1:])
    out["ft_first_vs_warm_pct"] = 100.0 * (first - warm) / warm
    return out


def _warm_up(model, images, data, runtime) -> None:
    """Both sides' code paths once on a few samples (shapes of FF's batches of 32 and IU's batches), untimed."""
    labels = torch.zeros(len(images), dtype=torch.int64, device=images.device)
    reference.ff_accumulator(model, images, data.num_classes, fisher.FISHER_BATCH_SIZE)
    fisher.fisher_accumulator_loop(model, [(images[:32], labels[:32])], data.num_classes, runtime)
    v = torch.zeros(sum(p.numel() for p in model.parameters()), device=images.device)
    wfisher.woodfisher(model, [(images, labels)], v, runtime=runtime)
    reference.iu_update(model, images[:4], labels[:4], images[4:8], labels[4:8])


def _apply_fisher_noise(model, acc_list, num_classes, args) -> None:
    """FF's perturbation from a reference accumulator, with the noise stream our method draws."""
    params = dict(model.named_parameters())
    acc = dict(zip(params, acc_list, strict=True))
    detached = {name: p.detach() for name, p in params.items()}
    generator = torch.Generator().manual_seed(args.seed)
    new = fisher.fisher_perturbation(detached, acc, num_classes, args.alpha, None, generator)
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(new[name])


FIRST_EPOCH_SCRIPT = """
import sys, time, numpy as np, torch
sys.path.insert(0, {root!r})
sys.path.insert(0, {here!r})
import bench
from training.runtime import Runtime
from training.trainer import make_optimizer, train_epoch
runtime = Runtime(torch.device({device!r}), fast=False, progress=False)
data = bench._digits_sized(1300, runtime.device)
model = bench.make_model({arch!r}, data, runtime)
optimizer = make_optimizer(model, 0.01)
batches = data.train_batches(batch_size=256, augment=True, seed=0)
for epoch in range(4):
    batches.set_epoch(epoch)
    bench.sync(runtime.device)
    start = time.perf_counter()
    train_epoch(model, batches, optimizer, runtime)
    bench.sync(runtime.device)
    print(time.perf_counter() - start)
"""


def _first_and_warm_epochs(arch, device) -> list[float]:
    """Seconds of 4 FT epochs (batch 256, 1,300 images) in a fresh Python process: the first pays any warm-up."""
    here = Path(__file__).resolve().parent
    code = FIRST_EPOCH_SCRIPT.format(root=str(here.parent), here=str(here), device=str(device), arch=arch)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [float(line) for line in result.stdout.split()]


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--parts", default="train,unlearn,ff_iu,reference", help="comma list of train, unlearn, ff_iu, reference"
    )
    parser.add_argument("--reference_archs", default="resnet20s,resnet18", help="models for part (d), comma-separated")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--arch", default="resnet18", help="model for the training throughput part")
    parser.add_argument("--images", type=int, default=None, help="images per epoch (default: 45000 GPU, 1024 CPU)")
    parser.add_argument("--batch_size", type=int, default=256, help="training batch size")
    parser.add_argument(
        "--unlearn_arch", default=None, help="model for parts (b) and (c) (default resnet18 GPU, resnet20s CPU)"
    )
    parser.add_argument("--unlearn_images", type=int, default=None, help="workload size of part (b)")
    parser.add_argument("--ff_iu_samples", type=int, default=None, help="samples for part (c)")
    parser.add_argument(
        "--image_size", type=int, default=32, help="side of the synthetic images of parts (a)-(c) (CIFAR: 32)"
    )
    parser.add_argument("--fp32", action="store_true", help="CUDA: no bf16 autocast / channels-last")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--json", default="benchmarks/results.json", help="where to write the results")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    runtime = Runtime(device, fast=not args.fp32, progress=False, compile=args.compile)
    parts = args.parts.split(",")
    unlearn_arch = args.unlearn_arch or ("resnet18" if gpu else "resnet20s")
    results = {
        "device": device_name(device),
        "torch": torch.__version__,
        "bf16_channels_last": gpu and not args.fp32,
        "compile": args.compile,
        "image_size": args.image_size,
    }
    print(f"device: {results['device']}  torch {torch.__version__}")
    if "train" in parts:
        r = bench_train(
            args.arch, args.images or (45000 if gpu else 1024), args.batch_size, runtime, size=args.image_size
        )
        results["train"] = r
        print(
            f"(a) {r['arch']} training: {r['data_path_img_s']:.0f} img/s through the data path, "
            f"{r['model_alone_img_s']:.0f} img/s model alone -> data path {r['data_path_overhead_pct']:.1f}% "
            f"of the epoch ({r['epoch_seconds']:.2f} s for {r['images_per_epoch']} images)"
        )
    if "unlearn" in parts:
        r = bench_unlearn(unlearn_arch, args.unlearn_images or (45000 if gpu else 2000), runtime, size=args.image_size)
        results["unlearn"] = r
        print(
            f"(b) unlearning wall time, {r['arch']}, {r['train_samples']} train / {r['forget_samples']} forget, "
            f"{r['epochs']} epoch(s) for iterative methods:"
        )
        for name, seconds in r["seconds"].items():
            print(f"    {name:12s} {seconds:8.2f} s")
    if "ff_iu" in parts:
        r = bench_ff_iu(unlearn_arch, args.ff_iu_samples or (512 if gpu else 64), runtime, size=args.image_size)
        results["ff_iu"] = r
        print(
            f"(c) {r['arch']}, {r['samples']} samples: FF loop {r['ff_loop_s']:.2f} s vs vectorised "
            f"{r['ff_vectorised_s']:.2f} s ({r['ff_speedup']:.1f}x, max rel diff {r['ff_max_rel_diff']:.1e}); "
            f"IU loop {r['iu_loop_s']:.2f} s vs vectorised {r['iu_vectorised_s']:.2f} s "
            f"({r['iu_speedup']:.1f}x, max rel diff {r['iu_max_rel_diff']:.1e})"
        )
    if "reference" in parts:
        results["reference"] = [
            _print_reference(bench_reference(arch, runtime)) for arch in args.reference_archs.split(",")
        ]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(results, args.json)
    print(f"wrote {args.json}")


def _print_reference(r: dict) -> dict:
    print(
        f"(d) {r['arch']}, {r['train_samples']} train / {r['forget_samples']} forget: "
        f"IU {r['iu_ours_s']:.2f} s vs plain {r['iu_reference_s']:.2f} s ({r['iu_speedup']:.2f}x, rel diff "
        f"{r['iu_max_rel_diff']:.1e}); FF {r['ff_ours_s']:.2f} s vs plain {r['ff_reference_s']:.2f} s "
        f"({r['ff_speedup']:.2f}x, rel diff {r['ff_max_rel_diff']:.1e}); FT epochs in a fresh process "
        f"{' '.join(f'{t:.2f}' for t in r['ft_epoch_s'])} s (first {r['ft_first_vs_warm_pct']:+.0f}% vs warm)"
    )
    return r


if __name__ == "__main__":
    main()
