"""Backbone swaps (``--reuse-swap-backbone [OLD=]NEW``) parsed so that they cannot silently miss.

Backbone strings may themselves contain ``=`` and ``?`` (``file:a.pt?arch=torchvision:resnet18``),
so ``OLD=NEW`` is split at the one ``=`` that has a complete backbone string on both sides. The
grammar of each scheme comes from the backbone registry's documented forms:

=================================  ===============================================
``zoo:NAME``                       NAME of letters, digits, ``_ . -``
``torchvision:NAME[:WEIGHTS]``     identifiers with dots (``ResNet18_Weights.IMAGENET1K_V1``)
``file:PATH[?arch=SPEC]``          any PATH without ``?``; SPEC an architecture string
``package.module:callable``        dotted Python identifiers, then one identifier
=================================  ===============================================

A scheme registered with :func:`reusespec.backbones.registry.register_scheme` that this module
does not know (``timm:``, ``hf:``) accepts any text without ``=`` after its prefix, so a split
that would need an ``=`` inside such a string is reported as ambiguous rather than guessed.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reusespec.errors import GateSettingsError

__all__ = [
    "Swap",
    "SwapError",
    "is_backbone_string",
    "known_schemes",
    "parse_swap",
    "parse_swaps",
    "unmatched_swaps",
]

BUILTIN_SCHEMES = ("file", "torchvision", "zoo")

_ZOO_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_TORCHVISION = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.]*)?")
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_MODULE = re.compile(rf"{_IDENTIFIER}(\.{_IDENTIFIER})*")
_ATTRIBUTE = re.compile(_IDENTIFIER)

_USAGE = (
    "give NEW (it replaces the first backbone each spec loads) or OLD=NEW, where OLD and NEW are "
    "backbone strings such as zoo:digits-cnn, torchvision:resnet18 or file:new.pt?arch=torchvision:resnet18"
)


class SwapError(GateSettingsError):
    """A ``--reuse-swap-backbone`` value that cannot be read, or whose OLD names no backbone."""


@dataclass(frozen=True)
class Swap:
    """NEW in place of OLD; ``old`` None: in place of the first backbone each spec loads."""

    old: str | None
    new: str


def known_schemes() -> tuple[str, ...]:
    """The built-in schemes, plus any registered so far (without importing torch to ask)."""
    registry = sys.modules.get("reusespec.backbones.registry")
    registered = tuple(registry.schemes()) if registry is not None else ()
    return tuple(sorted(set(BUILTIN_SCHEMES) | set(registered)))


def _is_architecture(text: str, schemes: tuple[str, ...]) -> bool:
    """An architecture string for ``?arch=``: a zoo, torchvision or factory string (not a file)."""
    scheme = text.partition(":")[0]
    return scheme != "file" and is_backbone_string(text, schemes)


def is_backbone_string(text: str, schemes: Iterable[str] | None = None) -> bool:
    """Whether ``text`` is one complete backbone string in the registry's grammar."""
    known = tuple(schemes) if schemes is not None else known_schemes()
    scheme, sep, rest = text.partition(":")
    if not sep or not rest or not scheme:
        return False
    if scheme == "zoo":
        return _ZOO_NAME.fullmatch(rest) is not None
    if scheme == "torchvision":
        return _TORCHVISION.fullmatch(rest) is not None
    if scheme == "file":
        path, query_sep, query = rest.partition("?")
        if not path:
            return False
        if not query_sep:
            return True
        key, eq, arch = query.partition("=")
        return key == "arch" and bool(eq) and _is_architecture(arch, known)
    if scheme in known:
        return "=" not in rest  # an unknown grammar: an "=" in it could be the separator
    return _MODULE.fullmatch(scheme) is not None and _ATTRIBUTE.fullmatch(rest) is not None


def parse_swap(value: str, schemes: Iterable[str] | None = None) -> Swap:
    """Read one ``--reuse-swap-backbone`` value: ``NEW`` or ``OLD=NEW``.

    The value is split at the ``=`` that has a complete backbone string on each side; when the
    whole value is itself one backbone string (``file:b.pt?arch=zoo:digits-cnn``) and no such
    ``=`` exists, it is a NEW alone. Raises :class:`SwapError` when no reading fits or when more
    than one does.
    """
    known = tuple(schemes) if schemes is not None else known_schemes()
    text = value.strip()
    splits = [
        Swap(text[:i], text[i + 1 :])
        for i, char in enumerate(text)
        if char == "=" and is_backbone_string(text[:i], known) and is_backbone_string(text[i + 1 :], known)
    ]
    if len(splits) == 1:
        return splits[0]
    if len(splits) > 1:
        readings = "; ".join(f"OLD={s.old!r} NEW={s.new!r}" for s in splits)
        raise SwapError(
            f"--reuse-swap-backbone {value!r} can be read in more than one way ({readings}); "
            "rename the checkpoint file so that its path has no '='"
        )
    if is_backbone_string(text, known):
        return Swap(None, text)
    raise SwapError(f"--reuse-swap-backbone {value!r} is not a backbone swap: {_USAGE}")


def parse_swaps(values: Iterable[str], schemes: Iterable[str] | None = None) -> list[Swap]:
    """Every value read by :func:`parse_swap`; one OLD swapped twice, or two NEW-only swaps, fail."""
    swaps = [parse_swap(value, schemes) for value in values]
    olds = [s.old for s in swaps if s.old is not None]
    repeated = sorted({old for old in olds if olds.count(old) > 1})
    if repeated:
        raise SwapError(
            f"--reuse-swap-backbone swaps {', '.join(repeated)} more than once; give one NEW each"
        )
    if sum(s.old is None for s in swaps) > 1:
        raise SwapError(
            "--reuse-swap-backbone without OLD= may be given once (it replaces each spec's first)"
        )
    return swaps


def unmatched_swaps(
    swaps: Mapping[str, str], named: Iterable[str], option: str = "--reuse-swap-backbone"
) -> list[str]:
    """A usage message for each OLD that no backbone in ``named`` matches (empty: all matched).

    ``named`` are the backbone strings the selected specs asked for. A swap whose OLD is asked
    for by no spec would run the old checkpoint and compare it with its own baseline, so it is
    an error; the message suggests the closest names.
    """
    asked = sorted(set(named))
    problems = []
    for old, new in swaps.items():
        if old in asked:
            continue
        close = difflib.get_close_matches(old, asked, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        listed = ", ".join(asked) if asked else "none"
        problems.append(f"{option} {old}={new}: no selected spec loads {old!r} (they load: {listed}){hint}")
    return problems
