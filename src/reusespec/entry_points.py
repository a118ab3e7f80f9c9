"""Third-party schemes and tasks, found through package entry points (as pytest finds ``pytest11``).

A package adds a backbone scheme or a task without touching reusespec by declaring, in its
``pyproject.toml``::

    [project.entry-points."reusespec.schemes"]
    mylab = "mylab.reuse:load_backbone"     # resolves "mylab:..." : loader(spec, rest, context)

    [project.entry-points."reusespec.tasks"]
    satellite = "mylab.reuse:satellite_task"  # resolves "satellite[:SELECTOR]" (see register_task)

Entry points are read lazily, the first time a string names a scheme or task that nothing
registered in-process, so importing reusespec stays cheap and a broken plugin only fails the
strings that use it.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from reusespec.errors import ReuseSpecError

SCHEME_GROUP = "reusespec.schemes"
TASK_GROUP = "reusespec.tasks"


def find_entry_point(group: str, name: str) -> Any | None:
    """The object entry point ``name`` of ``group`` points to, loaded; None when none is declared."""
    matches = [ep for ep in metadata.entry_points(group=group) if ep.name == name]
    if not matches:
        return None
    entry = matches[0]
    try:
        return entry.load()
    except Exception as exc:  # the plugin's own import error: say which plugin, keep the cause
        raise ReuseSpecError(
            f"the {group} entry point {name!r} ({entry.value}, from package "
            f"{getattr(entry.dist, 'name', 'unknown')}) failed to load: {type(exc).__name__}: {exc}. "
            "Fix or uninstall that package."
        ) from exc


def entry_point_names(group: str) -> list[str]:
    """Names declared in ``group`` by installed packages (not loaded)."""
    return sorted({ep.name for ep in metadata.entry_points(group=group)})
