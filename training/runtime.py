"""Where and how tensors run: the device, bf16 autocast and channels-last (CUDA only), torch.compile."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass
class Runtime:
    """Where and how tensors run: bf16 autocast and channels-last are CUDA-only speed-ups.

    ``emulate_cuda_numerics`` (tests only; no flag sets it) takes that same fast path on any
    device, CPU included: bf16 autocast on ``device.type`` and channels-last models and inputs,
    so the code CUDA runs is executed, and its numerics checked, where no GPU is.
    """

    device: torch.device
    fast: bool = True  # bf16 autocast + channels-last on CUDA; off for bit-faithful float32 runs
    progress: bool = True
    compile: bool = False  # torch.compile the forward pass (opt-in: compiling takes a minute)
    emulate_cuda_numerics: bool = False

    def __post_init__(self):
        self._compiled = {}
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels

    @property
    def cuda_code_path(self) -> bool:
        """Take the branches written for CUDA (on CUDA, or anywhere when emulating it)."""
        return self.device.type == "cuda" or self.emulate_cuda_numerics

    @property
    def fast_path(self) -> bool:
        """bf16 autocast and channels-last are on."""
        return self.fast and self.cuda_code_path

    @property
    def autocast(self):
        if self.fast_path:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def memory_format(self):
        if self.fast_path:
            return torch.channels_last
        return torch.contiguous_format

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device, memory_format=self.memory_format)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=self.memory_format)

    def call(self, model):
        """The module to run forward passes with: ``model`` itself, or its compiled twin.

        The compiled twin shares parameters with ``model``, which is what gets saved, so state
        dict keys never carry torch.compile's prefix.
        """
        if not self.compile:
            return model
        if id(model) not in self._compiled:
            self._compiled[id(model)] = torch.compile(model)
        return self._compiled[id(model)]
