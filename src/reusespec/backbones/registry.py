"""Backbone strings resolved through one registry of schemes.

=================================  ===============================================
``torchvision:NAME[:WEIGHTS]``     torchvision builder + weights enum (offline)
``file:PATH[?arch=SPEC]``          a local safetensors / state-dict checkpoint
``zoo:NAME``                       the demo zoo, pretrained on first use
``package.module:callable``        any factory of yours
=================================  ===============================================

A factory returns a :class:`Backbone`, or an ``nn.Module`` classifier (its head at
``fc``/``classifier``/``head``) or feature extractor, with an ``input_spec`` attribute or as a
``(module, InputSpec)`` pair. New schemes (``timm:``, ``hf:``) plug in with
:func:`register_scheme`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reusespec.backbones.base import Backbone, InputSpec
from reusespec.backbones.convert import classifier_to_backbone, find_head, module_to_backbone
from reusespec.errors import ReuseSpecError, UnknownBackboneError


@dataclass
class BackboneContext:
    """What resolving a backbone may need from the run's configuration."""

    cache_dir: Path
    allow_download: bool = False
    trusted_pickles: Collection[Path] = ()
    progress: Callable[[str], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


SchemeLoader = Callable[[str, str, BackboneContext], Backbone]
_SCHEMES: dict[str, SchemeLoader] = {}


def register_scheme(scheme: str, loader: SchemeLoader) -> None:
    """Teach the registry a new ``scheme:...`` prefix; ``loader(spec, rest, context)``."""
    _SCHEMES[scheme] = loader


def schemes() -> list[str]:
    return sorted(_SCHEMES)


def resolve_backbone(spec: str, context: BackboneContext) -> Backbone:
    """Resolve a backbone string into a :class:`Backbone` (a fresh model; callers cache)."""
    scheme, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise UnknownBackboneError(_unknown_message(spec))
    loader = _SCHEMES.get(scheme)
    if loader is not None:
        return loader(spec, rest, context)
    return load_factory_backbone(spec, scheme, rest)


def build_architecture(arch: str) -> tuple[nn.Module, InputSpec]:
    """An untrained classifier for an architecture string, with the input it expects."""
    scheme, _, rest = arch.partition(":")
    if scheme == "zoo":
        from reusespec.backbones.zoo import ARCHITECTURES, MNIST_INPUT, recipe_for

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # parameters a checkpoint lacks (a head) start the same every run
            return ARCHITECTURES[recipe_for(rest).architecture](), MNIST_INPUT
    if scheme == "torchvision":
        from reusespec.backbones.torchvision_models import (
            build_torchvision_classifier,
            input_spec_for,
            resolve_weights,
        )

        model_name, _, weights_name = rest.partition(":")
        weights = resolve_weights(model_name, weights_name or None)
        return build_torchvision_classifier(model_name, None, False), input_spec_for(weights)
    obj = _call_factory(arch, scheme, rest)
    module, input_spec = _module_and_spec(obj, arch)
    return module, input_spec


def load_factory_backbone(spec: str, module_name: str, attr: str) -> Backbone:
    obj = _call_factory(spec, module_name, attr)
    if isinstance(obj, Backbone):
        obj.name = spec
        return obj
    module, input_spec = _module_and_spec(obj, spec)
    meta = {"source": "factory", "factory": spec}
    try:
        find_head(module)
    except ReuseSpecError:
        return module_to_backbone(spec, module, input_spec, meta=meta)
    return classifier_to_backbone(spec, module, input_spec, meta=meta)


def _call_factory(spec: str, module_name: str, attr: str) -> object:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise UnknownBackboneError(_unknown_message(spec)) from None
        raise  # the user's module itself failed to import something: show their error
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UnknownBackboneError(f"{spec}: module {module_name!r} has no callable {attr!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a factory that initialises randomly gives the same weights every run
        return factory()


def _module_and_spec(obj: object, spec: str) -> tuple[nn.Module, InputSpec]:
    if (
        isinstance(obj, tuple)
        and len(obj) == 2
        and isinstance(obj[0], nn.Module)
        and isinstance(obj[1], InputSpec)
    ):
        return obj[0], obj[1]
    if isinstance(obj, nn.Module):
        input_spec = getattr(obj, "input_spec", None)
        if isinstance(input_spec, InputSpec):
            return obj, input_spec
        raise ReuseSpecError(
            f"{spec}: the factory returned a {type(obj).__name__} without an input_spec; return "
            "(module, reusespec.InputSpec(...)) or a reusespec.Backbone so reusespec knows the input "
            "it expects"
        )
    raise ReuseSpecError(
        f"{spec}: the factory returned {type(obj).__name__}; expected a reusespec.Backbone, an nn.Module, "
        "or (nn.Module, InputSpec)"
    )


def _unknown_message(spec: str) -> str:
    return (
        f"unknown backbone {spec!r}. Write one of: torchvision:NAME[:WEIGHTS], file:PATH[?arch=SPEC], "
        f"zoo:NAME, or package.module:factory (registered schemes: {', '.join(schemes())})"
    )


def _load_zoo(spec: str, rest: str, context: BackboneContext) -> Backbone:
    from reusespec.backbones.text_zoo import TEXT_ZOO, load_text_zoo_backbone
    from reusespec.backbones.zoo import load_zoo_backbone

    if rest in TEXT_ZOO:
        return load_text_zoo_backbone(rest)

    return load_zoo_backbone(rest, context.cache_dir, context.progress)


def _load_torchvision(spec: str, rest: str, context: BackboneContext) -> Backbone:
    from reusespec.backbones.torchvision_models import load_torchvision_backbone

    return load_torchvision_backbone(spec, rest, context.allow_download)


def _load_file(spec: str, rest: str, context: BackboneContext) -> Backbone:
    from reusespec.backbones.files import load_file_backbone

    return load_file_backbone(spec, rest, build_architecture, context.trusted_pickles)


def _load_hf(spec: str, rest: str, context: BackboneContext) -> Backbone:
    from reusespec.backbones.huggingface import load_hf_backbone

    return load_hf_backbone(spec, rest, context.allow_download)


register_scheme("zoo", _load_zoo)
register_scheme("hf", _load_hf)
register_scheme("torchvision", _load_torchvision)
register_scheme("file", _load_file)
