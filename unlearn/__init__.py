"""Unlearning methods, one module each, registered under the original ``--unlearn`` names.

A method is ``fn(model, ctx) -> None``: it changes ``model`` in place, given an
``UnlearnContext`` (data, forget/retain indices, args, runtime). Adding one: write the
module, decorate its function with ``@register("name")``, import it below, document its flags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from utils import UsageError


@dataclass(frozen=True)
class Method:
    name: str
    fn: Callable
    paper_name: str
    loads_weights: bool = True  # retrain starts from a fresh initialisation under the same mask


METHODS: dict[str, Method] = {}


def register(name: str, paper_name: str | None = None, loads_weights: bool = True):
    def add(fn):
        METHODS[name] = Method(name, fn, paper_name or name, loads_weights)
        return fn

    return add


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise UsageError(f"unknown --unlearn '{name}'; choose from {', '.join(sorted(METHODS))}")
    return METHODS[name]


from unlearn import fisher, ft, ga, raw, retrain, sparse, wfisher  # noqa: E402,F401  (registration)
