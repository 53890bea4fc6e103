"""Sharpness-aware minimisation (Foret et al., 2021) in its adaptive form (ASAM, Kwon et al., 2021).

One step at weights w with gradient g (from a first forward/backward pass):

    e(w) = ρ · T² g / ‖T g‖₂    with T = diag(|w|) when adaptive, the identity otherwise,

the weights move to w + e(w), a second forward/backward pass there gives g', the weights go back
to w exactly and the base optimiser (SGD) steps with g'. The norm is one norm over every
parameter with a gradient, and the denominator carries 1e-12 against a zero gradient. This is
the rule of the optimiser the original code trains with (``SAM.py``; ρ = 2, adaptive), written
from the papers: ``retrain_sam`` and ``main_imp.py --optimizer sam`` use it.

A pruned weight (``weight_orig`` under a 0 in its mask) has a zero gradient, so it is neither
perturbed nor counted in the norm.
"""

from __future__ import annotations

import torch

RHO = 2.0  # the original's SAM settings, for retrain_sam and main_sam.py alike
ADAPTIVE = True


class SAM(torch.optim.Optimizer):
    """SAM around SGD: ``step(closure)`` perturbs, calls ``closure`` (a forward/backward), restores, steps.

    The gradients of the first pass must already be in ``.grad`` when ``step`` is called.
    ``param_groups`` and the state (the momentum buffers) are the base optimiser's, so a learning-rate
    scheduler, warm-up and ``state_dict``/``load_state_dict`` work as on plain SGD.
    """

    def __init__(self, params, lr: float, momentum=0.9, weight_decay=5e-4, rho=RHO, adaptive=ADAPTIVE):
        if rho < 0:
            raise ValueError(f"SAM's rho must be non-negative, got {rho}")
        super().__init__(params, {"lr": lr, "rho": rho, "adaptive": adaptive})
        self.base = torch.optim.SGD(self.param_groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.param_groups = self.base.param_groups
        self.state = self.base.state

    @torch.no_grad()
    def _perturbations(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(parameter, e(w)) for every parameter with a gradient."""
        scaled = []
        for group in self.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None:
                    scale = parameter.abs() if group["adaptive"] else torch.ones_like(parameter)
                    scaled.append((group, parameter, scale))
        if not scaled:
            return []
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(s * p.grad) for _, p, s in scaled]))
        return [(p, group["rho"] / (norm + 1e-12) * s * s * p.grad) for group, p, s in scaled]

    def step(self, closure=None):
        if closure is None:
            raise ValueError("SAM needs a closure that recomputes the loss and its gradients")
        with torch.no_grad():
            moved = self._perturbations()
            saved = [parameter.detach().clone() for parameter, _ in moved]
            for parameter, perturbation in moved:
                parameter.add_(perturbation)
        self.zero_grad(set_to_none=True)
        with torch.enable_grad():
            result = closure()
        with torch.no_grad():
            for (parameter, _), original in zip(moved, saved, strict=True):
                parameter.copy_(original)
        self.base.step()
        return result

    def state_dict(self):
        return self.base.state_dict()

    def load_state_dict(self, state_dict):
        self.base.load_state_dict(state_dict)
        self.param_groups = self.base.param_groups
        self.state = self.base.state
