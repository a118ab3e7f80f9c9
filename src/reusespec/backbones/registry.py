"""Backbone strings resolved through one registry of schemes.

=================================  ===============================================
``torchvision:NAME[:WEIGHTS]``     torchvision builder + weights enum (offline)
``file:PATH[?arch=SPEC]``          a local safetensors / state-dict checkpoint
``zoo:NAME``                       the demo zoo, pretrained on first use; the real zoo
``timm:NAME[?file=PATH]``          timm's ``create_model`` and its pretrained config
``package.module:callable``        any factory of yours
=================================  ===============================================

A factory returns a :class:`Backbone`, or an ``nn.Module`` classifier (its head at
``fc``/``classifier``/``head``) or feature extractor, with an ``input_spec`` attribute or as a
``(module, InputSpec)`` pair. New schemes plug in with :func:`register_scheme`, or from another
package through the ``reusespec.schemes`` entry-point group (:mod:`reusespec.entry_points`).
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
from reusespec.hashing import digest


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
    if not sep or not rest or not scheme:
        raise UnknownBackboneError(_unknown_message(spec))
    loader = _SCHEMES.get(scheme) or _entry_point_scheme(scheme)
    try:
        if loader is not None:
            return loader(spec, rest, context)
        return load_factory_backbone(spec, scheme, rest)
    except ReuseSpecError:
        raise
    except Exception as exc:  # a loader's or factory's own failure: say which backbone, keep the cause
        raise ReuseSpecError(f"{spec}: loading the backbone failed: {_cause(exc)}") from exc


def _entry_point_scheme(scheme: str) -> SchemeLoader | None:
    """A scheme a package declares in the ``reusespec.schemes`` entry-point group, registered on first use."""
    from reusespec.entry_points import SCHEME_GROUP, find_entry_point

    loader = find_entry_point(SCHEME_GROUP, scheme)
    if loader is not None:
        register_scheme(scheme, loader)
    return loader


def build_architecture(arch: str) -> tuple[nn.Module, InputSpec]:
    """An untrained classifier for an architecture string, with the input it expects."""
    scheme, _, rest = arch.partition(":")
    if scheme == "zoo" and rest.partition("?")[0] in _real_zoo_names():
        from reusespec.backbones.real_zoo import architecture_for

        return architecture_for(rest)
    if scheme == "timm":
        from reusespec.backbones.timm_models import build_timm_classifier, input_spec_from_cfg

        model = build_timm_classifier(rest.partition("?")[0])
        return model, input_spec_from_cfg(dict(getattr(model, "pretrained_cfg", {}) or {}))
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


def _real_zoo_names() -> set[str]:
    from reusespec.backbones.real_zoo import REAL_ZOO

    return set(REAL_ZOO)


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
        backbone = module_to_backbone(spec, module, input_spec, meta=meta)
    else:
        backbone = classifier_to_backbone(spec, module, input_spec, meta=meta)
    # The factory string is part of what computes the features: two factories may wire the same
    # weights and classes differently (hooks, closures) in ways the code identity cannot see.
    backbone.fingerprint = digest("factory", spec, backbone.fingerprint)
    return backbone


def _call_factory(spec: str, module_name: str, attr: str) -> object:
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise UnknownBackboneError(_unknown_message(spec))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            found = exc.name.rpartition(".")[0]  # the part of the path that does exist, if any
            missing = exc.name.rpartition(".")[2]
            hint = (
                f" ({found!r} was found but has no {missing!r}: is the module name misspelt?)"
                if found
                else ""
            )
            raise UnknownBackboneError(
                f"{_unknown_message(spec)}. Importing {module_name!r} failed: {exc}{hint}"
            ) from None
        needed = exc.name.split(".")[0] if exc.name else "..."
        raise ReuseSpecError(
            f"{spec}: the module {module_name!r} was found but failed to import: {_cause(exc)}. "
            f"Install what it needs (pip install {needed}) or fix its imports"
        ) from exc
    except Exception as exc:  # the user's module raised while importing: their error, with context
        raise ReuseSpecError(f"{spec}: importing the module {module_name!r} failed: {_cause(exc)}") from exc
    try:
        factory = getattr(module, attr, None)
    except Exception:  # a module __getattr__ that raises
        factory = None
    if not callable(factory):
        raise UnknownBackboneError(f"{spec}: module {module_name!r} has no callable {attr!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a factory that initialises randomly gives the same weights every run
        try:
            return factory()
        except ReuseSpecError:
            raise
        except Exception as exc:
            raise ReuseSpecError(
                f"{spec}: the factory {module_name}.{attr}() raised {_cause(exc)}; the traceback above "
                "shows where"
            ) from exc


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:300]}" if first else type(exc).__name__


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
    from reusespec.backbones.real_zoo import REAL_ZOO, load_real_zoo_backbone
    from reusespec.backbones.text_zoo import TEXT_ZOO, load_text_zoo_backbone
    from reusespec.backbones.zoo import load_zoo_backbone

    if rest.partition("?")[0] in REAL_ZOO:
        return load_real_zoo_backbone(rest)
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


def _load_timm(spec: str, rest: str, context: BackboneContext) -> Backbone:
    from reusespec.backbones.timm_models import load_timm_backbone

    return load_timm_backbone(spec, rest, context.allow_download)


register_scheme("timm", _load_timm)
