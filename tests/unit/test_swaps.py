"""Backbone swaps: ``OLD=NEW`` where both sides may contain ``=`` and ``?``, and OLD must match."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reusespec.errors import ReuseSpecError
from reusespec.gate.swaps import Swap, SwapError, is_backbone_string, parse_swap, parse_swaps, unmatched_swaps

SCHEMES = ("file", "torchvision", "zoo")


def test_the_readme_form_with_arch_on_both_sides_splits_between_the_two_checkpoints() -> None:
    value = "file:a.pt?arch=torchvision:resnet18=file:b.pt?arch=torchvision:resnet18"
    assert parse_swap(value, SCHEMES) == Swap(
        "file:a.pt?arch=torchvision:resnet18", "file:b.pt?arch=torchvision:resnet18"
    )


def test_a_new_backbone_alone_may_contain_an_equals_sign() -> None:
    assert parse_swap("file:new.safetensors?arch=zoo:digits-cnn", SCHEMES) == Swap(
        None, "file:new.safetensors?arch=zoo:digits-cnn"
    )


def test_a_path_with_an_equals_sign_is_split_where_both_sides_are_complete() -> None:
    assert parse_swap("zoo:digits-cnn=file:runs/lr=0.1/model.pt", SCHEMES) == Swap(
        "zoo:digits-cnn", "file:runs/lr=0.1/model.pt"
    )


def test_two_complete_readings_are_refused_with_both_named() -> None:
    # A path may hold "=", so with three file strings either "=" could be the separator.
    with pytest.raises(SwapError, match="more than one way") as caught:
        parse_swap("file:a=file:b=file:c", SCHEMES)
    assert isinstance(caught.value, ReuseSpecError)
    assert "'file:a'" in str(caught.value) and "'file:a=file:b'" in str(caught.value)


@pytest.mark.parametrize(
    "value", ["", "=", "zoo:digits-cnn=", "=zoo:digits-cnn", "digits-cnn", "file:a.pt?arch"]
)
def test_values_that_are_no_swap_give_a_usage_message(value: str) -> None:
    with pytest.raises(SwapError, match="OLD=NEW"):
        parse_swap(value, SCHEMES)


def test_swapping_one_old_twice_is_refused() -> None:
    with pytest.raises(SwapError, match="more than once"):
        parse_swaps(["zoo:a=zoo:b", "zoo:a=zoo:c"], SCHEMES)


def test_an_old_that_no_spec_loads_is_named_with_the_closest_candidates() -> None:
    problems = unmatched_swaps(
        {"zoo:digits_cnn": "zoo:digits-mlp", "zoo:digits-mlp": "zoo:digits-cnn"},
        ["zoo:digits-cnn", "zoo:digits-mlp"],
    )
    assert len(problems) == 1
    assert "'zoo:digits_cnn'" in problems[0] and "did you mean 'zoo:digits-cnn'" in problems[0]


def test_registered_schemes_of_unknown_grammar_hold_no_equals_sign() -> None:
    assert is_backbone_string("timm:resnet50.a1_in1k", (*SCHEMES, "timm"))
    assert not is_backbone_string("timm:a=b", (*SCHEMES, "timm"))
    assert is_backbone_string("my_pkg.models:build", SCHEMES)
    assert not is_backbone_string("my-pkg:build", SCHEMES)


_name = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_path = st.from_regex(r"[a-z0-9_./=-]{1,12}", fullmatch=True).filter(lambda p: "=" not in p[:1])
_arch = st.one_of(
    _name.map(lambda n: f"zoo:{n}"),
    st.tuples(_name, st.none() | _name).map(lambda t: f"torchvision:{t[0]}" + (f":{t[1]}" if t[1] else "")),
    st.tuples(_name, _name).map(lambda t: f"{t[0]}.models:{t[1]}"),
)
_plain = st.one_of(_arch, _path.map(lambda p: f"file:{p}"))
_with_arch = st.tuples(_path, _arch).map(lambda t: f"file:{t[0]}?arch={t[1]}")
_backbone = st.one_of(_plain, _with_arch)


@settings(max_examples=60, deadline=None)
@given(old=_backbone, new=_backbone)
def test_any_two_backbone_strings_round_trip_unless_the_reading_is_ambiguous(old: str, new: str) -> None:
    try:
        swap = parse_swap(f"{old}={new}", SCHEMES)
    except SwapError as exc:
        assert "more than one way" in str(exc)  # never a wrong reading, at worst a refusal
        assert "=" in old.split("?")[0] or "=" in new.split("?")[0]
        return
    assert swap == Swap(old, new)


@settings(max_examples=40, deadline=None)
@given(new=_backbone)
def test_any_backbone_string_alone_is_a_new_only_swap(new: str) -> None:
    if "=" in new.split("?")[0]:
        return  # a file path with "=" may also read as OLD=NEW; covered above
    assert parse_swap(new, SCHEMES) == Swap(None, new)
