"""Task strings: ``NAME[:CLASSES][?key=value&...]``.

Examples::

    mnist5k                 all ten digits of the bundled MNIST sample
    mnist5k:5-9             digits 5..9, relabelled 0..4
    mnist5k:0,2,4           a class subset by index
    mnist5k:parity          digits relabelled even/odd
    sklearn-digits?shots=10 ten training examples per class
    cifar100                torchvision's CIFAR-100 from the data directory
    folder:/data/pets?size=128   your own images, one folder per class

Query keys: ``shots`` (k-shot training split), ``val`` (validation fraction; not for ``folder:``,
whose folders or fractions make the splits), ``size`` (image side for ``folder:`` only).

Strings are checked before anything is loaded (ASCII digits only, class ranges checked
arithmetically, options the task does not take refused), and the task that comes out is checked
once more: every split non-empty with at least two classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from reusespec.errors import TaskError, UnknownTaskError
from reusespec.tasks import plugins
from reusespec.tasks.base import Split, Task
from reusespec.tasks.bundled import BUNDLED, load_bundled_task
from reusespec.tasks.splits import check_splits, k_shot

QUERY_KEYS = {"shots", "val", "size", "per_class", "text", "label"}
TEXT_KEYS = {"per_class", "text", "label"}  # options only text tasks take
FOLDER_KEYS = {"shots", "size"}
MAX_IMAGE_SIDE = 4096
_CLASS_LIST = re.compile(r"[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*", re.ASCII)
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)


@dataclass(frozen=True)
class TaskRequest:
    spec: str
    name: str
    selector: str | None
    options: dict[str, str]


def parse_task_spec(spec: str) -> TaskRequest:
    base, _, query = spec.partition("?")
    options = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
    unknown = set(options) - QUERY_KEYS
    if unknown:
        raise UnknownTaskError(
            f"task {spec!r}: unknown option(s) {sorted(unknown)}; valid options are {sorted(QUERY_KEYS)}"
        )
    if base.startswith("folder:"):
        not_taken = set(options) - FOLDER_KEYS
        if not_taken:
            raise UnknownTaskError(
                f"task {spec!r}: a folder task does not take {sorted(not_taken)} (its train/val/test "
                f"folders, or fixed fractions, make the splits); it takes {sorted(FOLDER_KEYS)}"
            )
        return TaskRequest(spec, "folder", base[len("folder:") :], options)
    for kind in ("textfolder", "csv", "jsonl"):  # the rest is a path: may hold ':'
        if base.startswith(kind + ":"):
            return TaskRequest(spec, kind, base[len(kind) + 1 :], options)
    name, _, selector = base.partition(":")
    text_only = set(options) & TEXT_KEYS
    if text_only and name not in _TEXT_TASKS and registered_task(name) is None:
        raise UnknownTaskError(
            f"task {spec!r}: {sorted(text_only)} are options of text tasks (csv:, jsonl:, "
            f"{', '.join(_TEXT_TASKS[:4])}); {name!r} does not take them"
        )
    if "size" in options:
        raise UnknownTaskError(
            f"task {spec!r}: only folder: tasks take size= (the side images are resized to); "
            f"{name!r} has images of a fixed size"
        )
    if (
        selector
        and selector not in RELABELLINGS
        and not _CLASS_LIST.fullmatch(selector)
        and not _selector_of_registered_task(name, selector)
    ):
        raise UnknownTaskError(
            f"task {spec!r}: cannot read class selector {selector!r}; write a range '5-9', a list "
            f"'0,2,4' (ASCII digits), or one of {sorted(RELABELLINGS)}"
        )
    return TaskRequest(spec, name, selector or None, options)


def registered_task(name: str) -> plugins.RegisteredTask | None:
    """A task added through ``register_task`` or an entry point; the real-data tasks register first."""
    import reusespec.tasks.real  # noqa: F401  (registers elpv and animal-mnist; imports torch, so lazily)

    return plugins.registered_task(name)


def registered_task_names() -> list[str]:
    import reusespec.tasks.real  # noqa: F401

    return plugins.registered_task_names()


def _selector_of_registered_task(name: str, selector: str) -> bool:
    """Whether a task added through ``register_task`` (or an entry point) takes this selector itself."""
    registered = None if name in BUNDLED else registered_task(name)
    return registered is not None and selector in registered.selectors


def known_task_names() -> list[str]:
    from reusespec.tasks.text import PACKAGED
    from reusespec.tasks.torchvision_data import TORCHVISION_TASKS

    return sorted(
        [
            *BUNDLED,
            *TORCHVISION_TASKS,
            *PACKAGED,
            *registered_task_names(),
            "folder:PATH",
            "textfolder:DIR",
            "csv:PATH",
        ]
    )


def load_task(
    spec: str, *, seed: int = 0, data_dir: str | Path | None = None, allow_download: bool = False
) -> Task:
    """Resolve a task string into a :class:`Task` with deterministic splits."""
    request = parse_task_spec(spec)
    val_fraction = _float_option(request, "val", 0.2)
    if not 0 < val_fraction < 1:
        raise TaskError(
            f"task {spec!r}: val={val_fraction:g} must be a fraction between 0 and 1 (the share of the "
            "training data held out to choose the probe's L2 strength), e.g. '?val=0.2'"
        )
    registered = None if request.name in BUNDLED else registered_task(request.name)
    if registered is not None:
        own = request.selector in registered.selectors
        task = registered.load(request.selector if own else None, seed=seed, val_fraction=val_fraction)
        if own:
            request = replace(request, selector=None)
    elif request.name in BUNDLED:
        task = load_bundled_task(request.name, seed=seed, val_fraction=val_fraction)
    elif request.name in _TEXT_TASKS:
        task = _load_text_task(request, seed, val_fraction)
        if request.name in ("textfolder", "csv", "jsonl"):
            request = replace(request, selector=None)
    elif request.name == "folder":
        from reusespec.tasks.folder import load_image_folder

        size = _int_option(request, "size", 64)
        if not 1 <= size <= MAX_IMAGE_SIDE:
            raise TaskError(
                f"task {spec!r}: size={size} must be a side in pixels between 1 and {MAX_IMAGE_SIDE}, "
                "e.g. '?size=64'"
            )
        task = load_image_folder(request.selector or "", seed=seed, size=size)
        request = replace(request, selector=None)
    else:
        from reusespec.tasks.torchvision_data import (
            TORCHVISION_TASKS,
            default_data_dir,
            load_torchvision_task,
        )

        if request.name not in TORCHVISION_TASKS:
            raise UnknownTaskError(
                f"unknown task {spec!r}: no task named {request.name!r}. Known tasks: "
                f"{', '.join(known_task_names())}. Class subsets and options are written "
                "'mnist5k:5-9', 'cifar100?shots=10'."
            )
        root = Path(data_dir) if data_dir is not None else default_data_dir()
        task = load_torchvision_task(
            request.name, root, seed=seed, val_fraction=val_fraction, allow_download=allow_download
        )
    if request.selector:
        task = select_classes(task, request.selector)
    if "shots" in request.options:
        shots = _int_option(request, "shots", 0)
        task = few_shot(task, shots, seed)
    check_splits(task, spec)
    return replace(task, name=spec)


_TEXT_TASKS = (
    "bbc-news",
    "bbc-news-headlines",
    "rotten-tomatoes",
    "health-tweets",
    "textfolder",
    "csv",
    "jsonl",
)


def _load_text_task(request: TaskRequest, seed: int, val_fraction: float) -> Task:
    from reusespec.tasks import text

    if request.name in text.PACKAGED:
        per_class = _int_option(request, "per_class", 0) if "per_class" in request.options else None
        return text.load_packaged_text_task(
            request.name, seed=seed, val_fraction=val_fraction, per_class=per_class
        )
    return text.load_user_text_task(
        request.name,
        request.selector or "",
        seed=seed,
        val_fraction=val_fraction,
        text_key=request.options.get("text", "text"),
        label_key=request.options.get("label", "label"),
    )


def few_shot(task: Task, shots: int, seed: int) -> Task:
    """``shots`` training examples per class, and a validation split in proportion.

    The validation split shrinks with the training split (a quarter as many per class, at
    least one, as VTAB-1k's 800/200), otherwise choosing the L2 strength on a full
    validation split, and refitting on train + val, would leak a large labelled set into
    what is meant to be a few-shot result.
    """
    val_shots = max(1, round(shots / 4))
    train = task.train.subset(k_shot(task.train.labels, shots, seed), tag=f"shots={shots}")
    val = task.val.subset(k_shot(task.val.labels, val_shots, seed + 1), tag=f"shots={val_shots}")
    return replace(task, train=train, val=val)


def select_classes(task: Task, selector: str) -> Task:
    """Keep a subset of classes (relabelled 0..k-1), or apply a named relabelling."""
    relabel = RELABELLINGS.get(selector)
    if relabel is not None:
        names, mapping = relabel(task)
    else:
        keep = _parse_class_list(selector, task)
        names = [task.class_names[c] for c in keep]
        mapping = {c: i for i, c in enumerate(keep)}

    def apply(split: Split) -> Split:
        positions = np.flatnonzero(np.isin(split.labels, list(mapping)))
        labels = np.array([mapping[int(c)] for c in split.labels[positions]], dtype=np.int64)
        if len(positions) == 0:
            raise TaskError(f"task {task.name!r}: selector {selector!r} leaves the {split.name} split empty")
        return split.subset(positions, labels, tag=f"classes={selector}")

    return replace(
        task, class_names=names, train=apply(task.train), val=apply(task.val), test=apply(task.test)
    )


def _parity(task: Task) -> tuple[list[str], dict[int, int]]:
    return ["even", "odd"], {c: c % 2 for c in range(task.num_classes)}


def _low_high(task: Task) -> tuple[list[str], dict[int, int]]:
    half = task.num_classes // 2
    return ["low", "high"], {c: int(c >= half) for c in range(task.num_classes)}


RELABELLINGS: dict[str, Callable[[Task], tuple[list[str], dict[int, int]]]] = {
    "parity": _parity,
    "low-high": _low_high,
}


def _parse_class_list(selector: str, task: Task) -> list[int]:
    if not _CLASS_LIST.fullmatch(selector):
        raise UnknownTaskError(
            f"task {task.name!r}: cannot read class selector {selector!r}; write a range '5-9', a list "
            f"'0,2,4' (ASCII digits), or one of {sorted(RELABELLINGS)}"
        )
    chosen: list[int] = []
    for part in selector.split(","):
        lo_text, sep, hi_text = part.partition("-")
        lo, hi = int(lo_text), int(hi_text) if sep else int(lo_text)
        # Checked as numbers before any list is built: '0-30000000' fails at once.
        if not (0 <= lo < task.num_classes and 0 <= hi < task.num_classes):
            raise TaskError(
                f"task {task.name!r} has classes 0..{task.num_classes - 1}; selector {_short(selector)!r} "
                f"asks for {_out_of_range(lo, max(lo, hi), task.num_classes)}"
            )
        if hi < lo:
            raise TaskError(f"task {task.name!r}: class range {part!r} runs backwards; write '{hi}-{lo}'")
        chosen.extend(range(lo, hi + 1))
    if len(set(chosen)) < 2:
        raise TaskError(
            f"task {task.name!r}: selector {selector!r} keeps fewer than two classes; a classification "
            "task needs at least two, e.g. '5-9' or '0,2,4'"
        )
    return sorted(set(chosen))


def _out_of_range(lo: int, hi: int, num_classes: int, shown: int = 5) -> str:
    """The classes of ``lo..hi`` outside ``0..num_classes-1``: the first few, counted arithmetically."""
    first = max(lo, num_classes)
    count = hi - first + 1
    listed = list(range(first, min(hi, first + shown - 1) + 1))
    return f"{listed}" if count <= shown else f"[{', '.join(map(str, listed))}, ...] ({count:,} classes)"


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _int_option(request: TaskRequest, key: str, default: int) -> int:
    value = float(_float_option(request, key, default))
    if not value.is_integer():  # also refuses inf and nan
        raise UnknownTaskError(f"task {request.spec!r}: option {key}={value:g} must be a whole number")
    return int(value)


def _float_option(request: TaskRequest, key: str, default: float) -> float:
    raw = request.options.get(key)
    if raw is None:
        return default
    if not _NUMBER.fullmatch(raw.strip()):  # float() would also take '٥', 'inf', 'nan' and '1_0'
        raise UnknownTaskError(
            f"task {request.spec!r}: option {key}={_short(raw)!r} is not a number (ASCII digits)"
        )
    value = float(raw)
    if not np.isfinite(value):
        raise UnknownTaskError(f"task {request.spec!r}: option {key}={_short(raw)!r} is too large")
    return value
