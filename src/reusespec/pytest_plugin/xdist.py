"""pytest-xdist support: backbone groups for ``--dist loadgroup`` and run-wide extraction counts.

Scheduling
    Under ``--dist loadgroup`` every reuse spec (a test using the ``reuse``, ``reuse_session`` or
    ``reuse_device`` fixture, or marked as below) is given ``@pytest.mark.xdist_group(<backbone>)``,
    so the specs that use one backbone run on one worker and the backbone is loaded (and its
    features extracted) there only. Nothing changes under other ``--dist`` modes or without xdist. A spec's
    backbone is only known when it runs, so it is read at collection, first match wins:

    1. ``@pytest.mark.reuse_backbone("zoo:digits-cnn")`` on the spec (or its class or module);
    2. a parametrize value that is a backbone string: the parameter named ``backbone`` first,
       then the others in the order pytest lists them;
    3. the first backbone string in the spec function's body, in reading order: a string
       literal, or a module-level name bound to one (``BACKBONE = "zoo:digits-cnn"``); decorators
       and the docstring are not read.

    A backbone string here is ``SCHEME:REST`` for a registered scheme (``zoo``, ``torchvision``,
    ``file`` and any added with :func:`reusespec.backbones.registry.register_scheme`), without
    whitespace. Factory strings (``pkg.module:factory``) are not recognised in source, because task
    strings such as ``mnist5k:parity`` look the same; name them with the marker. A spec that
    already has an ``xdist_group`` keeps it; a spec without a backbone gets no group and is
    distributed as under ``--dist load``.

Building the demo zoo
    On a cold cache the demo zoo's checkpoints are the largest cost of a run, and the specs that
    need them ask for them one at a time: the first spec to need a checkpoint trains it while
    every other worker that needs it waits. So each worker, before running its first spec, trains
    its share of the zoo checkpoints the collected specs mention (source literals,
    parameters and markers as above; all of them where a spec calls ``reuse.zoo()``), shared
    out over the workers by estimated cost (longest first). Nothing changes on a warm cache or
    without xdist.

Counting
    Each worker sends the number of feature sets it extracted back to the controller (xdist's
    ``workeroutput``); :func:`extraction_counts` sums them for the JSON report, and the terminal
    summary prints them, so "each feature set extracted once across workers" can be checked.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from reusespec.errors import MarkerError
from reusespec.pytest_plugin.specs import is_reuse_spec

MARKER = "reuse_backbone"
WORKER_OUTPUT_KEY = "reusespec_extractions"
WORKER_REPAIRS_KEY = "reusespec_cache_repairs"
PLUGIN_NAME = "reusespec-xdist"


def is_backbone_string(value: object, schemes: frozenset[str] | None = None) -> bool:
    """True for ``SCHEME:REST`` with a registered scheme, a non-empty rest and no whitespace."""
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    scheme, sep, rest = value.partition(":")
    return bool(sep and rest) and scheme in (schemes if schemes is not None else _registered_schemes())


def _registered_schemes() -> frozenset[str]:
    from reusespec.backbones.registry import schemes

    return frozenset(schemes())


def backbones_in_source(function: Any, schemes: frozenset[str] | None = None) -> list[str]:
    """Backbone strings a function's body mentions, in reading order (literals and module names).

    Decorators are left out: their parametrize values are read from the item's parameters, and
    reading them here would give every parametrized case the first value.
    """
    tree = _parsed_source(function)
    if tree is None:
        return []
    definition = tree.body[0] if tree.body else None
    if not isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
        return []
    schemes = schemes if schemes is not None else _registered_schemes()
    module_globals: dict[str, Any] = getattr(function, "__globals__", {})
    docstring = _docstring_node(definition)
    found: list[tuple[int, int, str]] = []
    for statement in definition.body:
        for node in ast.walk(statement):
            value: object = None
            if isinstance(node, ast.Constant) and node is not docstring:
                value = node.value
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                value = module_globals.get(node.id)
            if isinstance(node, ast.expr) and isinstance(value, str) and is_backbone_string(value, schemes):
                found.append((node.lineno, node.col_offset, value))
    return [value for _, _, value in sorted(found)]


@functools.lru_cache(maxsize=1024)
def _parsed_source(function: Any) -> ast.Module | None:
    """A function's source, parsed once (grouping and the zoo's share both read it)."""
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):  # no source (built in, generated, a notebook)
        return None


def _docstring_node(definition: ast.FunctionDef | ast.AsyncFunctionDef) -> ast.Constant | None:
    """A function's docstring: prose that may mention a backbone in passing."""
    first = definition.body[0] if definition.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        return first.value if isinstance(first.value.value, str) else None
    return None


def spec_backbone(item: pytest.Item, schemes: frozenset[str] | None = None) -> str | None:
    """The backbone a spec will use, read at collection by the rule in the module docstring."""
    schemes = schemes if schemes is not None else _registered_schemes()
    marker = item.get_closest_marker(MARKER)
    if marker is not None:
        named = marker.args[0] if marker.args else marker.kwargs.get("backbone")
        if not isinstance(named, str) or not named:
            raise MarkerError(
                f"@pytest.mark.{MARKER} needs the backbone string, "
                f'e.g. @pytest.mark.{MARKER}("zoo:digits-cnn"); got {marker.args or marker.kwargs}'
            )
        return named
    for value in _parameter_values(item):
        if is_backbone_string(value, schemes):
            return str(value)
    function = getattr(item, "function", None)
    if function is None:
        return None
    literals = backbones_in_source(function, schemes)
    return literals[0] if literals else None


def _parameter_values(item: pytest.Item) -> Iterator[object]:
    """The item's parameter values, ``backbone`` first; tuples and lists opened one level."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return
    params: dict[str, object] = callspec.params
    ordered = [params["backbone"]] if "backbone" in params else []
    ordered += [value for name, value in params.items() if name != "backbone"]
    for value in ordered:
        yield value
        if isinstance(value, tuple | list):
            yield from value


def group_name(backbone: str) -> str:
    """An xdist group name for a backbone: xdist appends ``@<group>`` to node ids and splits there."""
    return backbone.replace("@", "%40").replace("]", "%5D")


def loadgroup_active(config: pytest.Config) -> bool:
    """True on an xdist worker of a ``--dist loadgroup`` run (collection happens on the workers)."""
    return hasattr(config, "workerinput") and bool(getattr(config.option, "loadgroup", False))


def _xdist_group_suffix(item: pytest.Item) -> str | None:
    """The ``@group`` suffix pytest-xdist gives an item's node id (its own rule, remote.py)."""
    names = {
        str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
        for mark in item.iter_markers("xdist_group")
    }
    return "@" + "_".join(sorted(names)) if names else None


def _ensure_group_suffixes(items: list[pytest.Item]) -> None:
    """Give grouped items the node id suffix by which xdist's loadgroup scheduler groups them.

    pytest-xdist (3.8) writes the suffix to ``item._nodeid``, which pytest 9.2 no longer reads
    (node ids became structured ``NodeId`` objects), so loadgroup silently stops grouping:
    https://github.com/pytest-dev/pytest-xdist/issues/1386. Where xdist's suffix did not take,
    set it on the structured id the way pytest itself parses one; where it did, do nothing.
    """
    for item in items:
        suffix = _xdist_group_suffix(item)
        if suffix is None or item.nodeid.endswith(suffix):
            continue
        node_id = getattr(item, "_id", None)
        parse = getattr(type(node_id), "parse", None)
        if callable(parse):
            item._id = parse(item.nodeid + suffix)


class XdistSupport:
    """Groups specs by backbone under ``--dist loadgroup``; collects workers' extraction counts."""

    def __init__(self, config: pytest.Config, cache_dir: Path, own_extractions: Callable[[], int]) -> None:
        self.config = config
        self.cache_dir = cache_dir
        self.own_extractions = own_extractions  # feature sets this process extracted
        self.worker_extractions: dict[str, int] = {}
        self.worker_repairs: dict[str, dict[str, int]] = {}

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> Generator[None, object, object]:
        if not loadgroup_active(config):
            return (yield)
        self._group_by_backbone(items)  # before xdist reads the groups (its hook runs inside the yield)
        result = yield
        _ensure_group_suffixes(items)
        return result

    def _group_by_backbone(self, items: list[pytest.Item]) -> None:
        schemes = _registered_schemes()
        for item in items:
            if item.get_closest_marker("xdist_group") is not None:
                continue  # the user's own grouping wins
            if not is_reuse_spec(item) and item.get_closest_marker(MARKER) is None:
                continue  # other tests may mention "file:..." URLs; only specs are guessed at
            try:
                backbone = spec_backbone(item, schemes)
            except MarkerError as exc:  # one bad marker must not stop the run: warn, leave ungrouped
                item.warn(pytest.PytestWarning(f"{exc}; the spec is not grouped"))
                continue
            if backbone is not None:
                item.add_marker(pytest.mark.xdist_group(group_name(backbone)))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        # Here rather than at collection: each worker has sent its collection to the controller,
        # so scheduling is not held up while the workers train.
        workerinput = getattr(self.config, "workerinput", None)
        if workerinput is not None and not session.config.option.collectonly:
            specs = [item for item in session.items if is_reuse_spec(item)]
            index = int(str(workerinput["workerid"]).removeprefix("gw"))
            share = zoo_share(specs, index, int(workerinput["workercount"]), self.cache_dir)
            if share:
                build_zoo_share(share, self.cache_dir)
        return (yield)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(self.config, "workeroutput", None)
        if workeroutput is not None:  # on a worker: send the count to the controller
            workeroutput[WORKER_OUTPUT_KEY] = self.own_extractions()
            workeroutput[WORKER_REPAIRS_KEY] = _own_repairs()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        count = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT_KEY)
        if isinstance(count, int):
            self.worker_extractions[str(node.gateway.id)] = count
        repairs = getattr(node, "workeroutput", {}).get(WORKER_REPAIRS_KEY)
        if isinstance(repairs, dict):
            self.worker_repairs[str(node.gateway.id)] = {str(k): int(v) for k, v in repairs.items()}

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if hasattr(self.config, "workerinput") or self.config.get_verbosity() < 0:
            return
        repairs = repair_counts(self.config)
        if repairs:  # damaged cache entries were discarded and rebuilt: say so, never silently
            kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(repairs.items()))
            terminalreporter.write_line(f"reusespec: damaged cache entries discarded and rebuilt: {kinds}")
        counts = extraction_counts(self.config)
        total = counts["feature_extractions"]
        if not total:
            return
        by_worker = counts.get("feature_extractions_by_worker")
        where = f" ({', '.join(f'{w}: {n}' for w, n in sorted(by_worker.items()))})" if by_worker else ""
        terminalreporter.write_line(f"reusespec: {total} feature set(s) extracted{where}")


def zoo_backbones_used(items: list[pytest.Item]) -> list[str]:
    """The demo zoo's backbones these specs mention, in the zoo's order."""
    from reusespec.backbones.zoo import zoo_names

    names = zoo_names()
    used: set[str] = set()
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is not None and marker.args:
            used.add(str(marker.args[0]))
        used.update(str(v) for v in _parameter_values(item) if isinstance(v, str))
        function = getattr(item, "function", None)
        if function is not None:
            used.update(backbones_in_source(function))
            if _calls_zoo(function):
                used.update(names)
    return [name for name in names if name in used]


def _calls_zoo(function: Any) -> bool:
    """Whether a spec's body calls ``<something>.zoo()``, which lists every zoo backbone."""
    tree = _parsed_source(function)
    return tree is not None and any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "zoo"
        for node in ast.walk(tree)
    )


def zoo_share(
    items: list[pytest.Item], worker_index: int, worker_count: int, cache_dir: Path | None = None
) -> list[str]:
    """This worker's share of the zoo checkpoints the specs use (those missing from ``cache_dir``).

    Longest processing time first: the most expensive checkpoint goes to the least loaded worker,
    with the same answer on every worker (the loads are estimates, the order is deterministic).
    """
    from reusespec.backbones.zoo import checkpoint_path, pretraining_cost

    used = [name.removeprefix("zoo:") for name in zoo_backbones_used(items)]
    if cache_dir is not None:  # a warm cache: nothing to share out, and no cost to estimate
        used = [name for name in used if not checkpoint_path(name, cache_dir).exists()]
    costs = {f"zoo:{name}": pretraining_cost(name) for name in used}
    loads = [0] * worker_count
    shares: list[list[str]] = [[] for _ in range(worker_count)]
    for name in sorted(costs, key=lambda n: -costs[n]):  # stable: ties keep the zoo's order
        least = loads.index(min(loads))
        shares[least].append(name)
        loads[least] += costs[name]
    return shares[worker_index] if worker_index < worker_count else []


def build_zoo_share(share: list[str], cache_dir: Path) -> None:
    """Train the missing checkpoints of ``share``; a failure is left for the spec that needs it to report."""
    from reusespec.backbones.zoo import ensure_checkpoint

    for name in share:
        try:
            ensure_checkpoint(name.removeprefix("zoo:"), cache_dir)
        except Exception:
            return


def extraction_counts(config: pytest.Config) -> dict[str, Any]:
    """Feature sets extracted in this run: by this process plus, on an xdist controller, its workers."""
    support = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if not isinstance(support, XdistSupport):
        return {"feature_extractions": 0}
    by_worker = dict(support.worker_extractions)
    counts: dict[str, Any] = {"feature_extractions": support.own_extractions() + sum(by_worker.values())}
    if by_worker:
        counts["feature_extractions_by_worker"] = by_worker
    return counts


def _own_repairs() -> dict[str, int]:
    from reusespec.cache import repair_counts as own_repair_counts

    return own_repair_counts()


def repair_counts(config: pytest.Config) -> dict[str, int]:
    """Damaged cache entries repaired in this run, by kind: this process and, on a controller, its workers."""
    totals = dict(_own_repairs())
    support = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(support, XdistSupport):
        for repairs in support.worker_repairs.values():
            for kind, count in repairs.items():
                totals[kind] = totals.get(kind, 0) + count
    return totals


def register(config: pytest.Config, cache_dir: Path, own_extractions: Callable[[], int]) -> None:
    """Called from ``pytest_configure`` (:mod:`reusespec.pytest_plugin`)."""
    config.addinivalue_line(
        "markers",
        f'{MARKER}(backbone): the backbone a spec uses, e.g. @pytest.mark.{MARKER}("zoo:digits-cnn"); '
        "groups specs on one worker under --dist loadgroup",
    )
    config.pluginmanager.register(XdistSupport(config, cache_dir, own_extractions), PLUGIN_NAME)
