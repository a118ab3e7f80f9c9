"""Tasks registered by name: :func:`register_task` (the twin of ``register_scheme``) and entry points.

A task loader is called as ``loader(selector, seed=..., val_fraction=...)`` and returns a
:class:`~reusespec.tasks.base.Task` with deterministic splits. ``selector`` is the part after the
colon (``elpv:type``) when it is one of the loader's own ``selectors``, else None: then the usual
class subsets and relabellings (``:0-2``, ``:parity``) and options (``?shots=``) apply on top.
Other packages register tasks through the ``reusespec.tasks`` entry-point group
(:mod:`reusespec.entry_points`): the entry point is a loader, or a :class:`RegisteredTask`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reusespec.tasks.base import Task

TaskLoader = Callable[..., Task]


@dataclass(frozen=True)
class RegisteredTask:
    load: TaskLoader
    selectors: tuple[str, ...] = ()
    description: str = ""


_TASKS: dict[str, RegisteredTask] = {}


def register_task(
    name: str, loader: TaskLoader, *, selectors: tuple[str, ...] = (), description: str = ""
) -> None:
    """Teach ``load_task`` a task name; ``loader(selector, seed=, val_fraction=)`` builds it."""
    _TASKS[name] = RegisteredTask(loader, tuple(selectors), description)


def registered_task(name: str) -> RegisteredTask | None:
    """The task registered as ``name`` in-process or by an installed package's entry point."""
    if name in _TASKS:
        return _TASKS[name]
    from reusespec.entry_points import TASK_GROUP, find_entry_point

    found = find_entry_point(TASK_GROUP, name)
    if found is None:
        return None
    entry = found if isinstance(found, RegisteredTask) else RegisteredTask(found)
    _TASKS[name] = entry
    return entry


def registered_task_names() -> list[str]:
    from reusespec.entry_points import TASK_GROUP, entry_point_names

    names = set(_TASKS) | set(entry_point_names(TASK_GROUP))
    for name, entry in list(_TASKS.items()):
        names.update(f"{name}:{selector}" for selector in entry.selectors)
    return sorted(names)
