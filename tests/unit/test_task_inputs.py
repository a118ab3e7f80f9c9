"""Task strings are checked at the boundary: one clear error each, before anything big is built."""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reusespec.errors import ResourceUnavailable, ReuseSpecError, TaskError, UnknownTaskError
from reusespec.tasks.registry import load_task


@pytest.fixture
def time_box() -> Iterator[None]:
    """Turn a hang into a failure: anything here should answer in well under a minute."""

    def hung(signum: int, frame: object) -> None:
        raise AssertionError("still running after 60 s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def write_images(folder: Path, count: int, value: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    for i in range(count):
        pixels = rng.integers(0, 256, (6, 6), dtype=np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")


def test_a_validation_fraction_that_leaves_val_empty_is_an_error() -> None:
    with pytest.raises(TaskError, match="val split is empty"):
        load_task("mnist5k?val=0.0001")


def test_a_class_folder_with_one_image_gives_no_single_class_split(tmp_path: Path) -> None:
    write_images(tmp_path / "cat", 10)
    write_images(tmp_path / "dog", 1, value=1)
    with pytest.raises(TaskError, match="single class") as info:
        load_task(f"folder:{tmp_path}")
    assert "cat" in str(info.value) or "dog" in str(info.value)


@pytest.mark.parametrize(
    ("spec", "error", "phrase"),
    [
        ("mnist5k?size=0", UnknownTaskError, "only folder: tasks take size="),
        ("mnist5k?size=100000000", UnknownTaskError, "only folder: tasks take size="),
        ("mnist5k:٥-٩", UnknownTaskError, "ASCII digits"),
        ("mnist5k:5-٩", UnknownTaskError, "ASCII digits"),
        ("mnist5k?shots=٥", UnknownTaskError, "ASCII digits"),
        ("mnist5k?shots=1_0", UnknownTaskError, "not a number"),
        ("mnist5k?shots=1e999", UnknownTaskError, "too large"),
        ("mnist5k:9-5", TaskError, "backwards"),
        ("mnist5k?val=nan", UnknownTaskError, "not a number"),
    ],
)
def test_options_and_selectors_a_task_does_not_take_are_refused(
    spec: str, error: type[Exception], phrase: str
) -> None:
    with pytest.raises(error, match=phrase):
        load_task(spec)


def test_an_enormous_class_range_fails_at_once_with_a_short_message(time_box: None) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(TaskError) as info:
        load_task("mnist5k:0-30000000")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    message = str(info.value)
    assert len(message) < 300 and "0..9" in message and "29,999,991 classes" in message
    assert grown_kib < 200 * 1024, f"peak memory grew by {grown_kib / 1024:.0f} MiB"


@pytest.mark.parametrize("size", ["0", "-3", "100000000"])
def test_folder_sizes_out_of_range_are_refused(tmp_path: Path, size: str, time_box: None) -> None:
    write_images(tmp_path / "a", 5)
    write_images(tmp_path / "b", 5, value=1)
    with pytest.raises(TaskError, match="size="):
        load_task(f"folder:{tmp_path}?size={size}")


def test_options_a_folder_does_not_take_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnknownTaskError, match="does not take"):
        load_task(f"folder:{tmp_path}?val=0.1")


@pytest.mark.parametrize("link", ["dot", "parent", "class-root"])
def test_a_symlink_loop_in_a_folder_is_detected_not_walked(tmp_path: Path, link: str, time_box: None) -> None:
    write_images(tmp_path / "a", 5)
    write_images(tmp_path / "b", 5, value=1)
    target = {"dot": ".", "parent": "..", "class-root": str(tmp_path / "a")}[link]
    os.symlink(target, tmp_path / "a" / "loop")
    with pytest.raises(TaskError, match="symbolic link") as info:
        load_task(f"folder:{tmp_path}")
    assert "loop" in str(info.value)


def test_a_missing_folder_fails_with_its_path_and_is_not_a_skip(tmp_path: Path) -> None:
    absent = tmp_path / "not-here"
    with pytest.raises(TaskError, match=str(absent)) as info:
        load_task(f"folder:{absent}")
    assert not isinstance(info.value, ResourceUnavailable)


def test_an_unknown_users_home_is_a_clear_error() -> None:
    with pytest.raises(TaskError, match="no user 'nosuchuser_rs'") as info:
        load_task("folder:~nosuchuser_rs/x")
    assert isinstance(info.value, ReuseSpecError)
