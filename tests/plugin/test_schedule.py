"""Scheduling under xdist: longest specs first from saved timings, and the zoo shared out to workers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reusespec.backbones.zoo import ZOO, pretraining_cost
from reusespec.pytest_plugin.schedule import TIMINGS_FILE, longest_first, read_timings, write_timings

pytest.importorskip("xdist")

nodeids = st.lists(st.text(min_size=1, max_size=8), min_size=0, max_size=30, unique=True)


@settings(max_examples=50, deadline=None)
@given(nodeids, st.data(), st.integers(1, 4))
def test_longest_first_is_a_permutation_with_the_longest_sent_first(
    ids: list[str], data: st.DataObject, workers: int
) -> None:
    known = data.draw(st.lists(st.sampled_from(ids), unique=True) if ids else st.just([]))
    seconds = {i: data.draw(st.floats(0, 100)) for i in known}
    order = longest_first(ids, seconds, workers)
    assert sorted(order) == list(range(len(ids)))
    if not seconds:
        assert order == list(range(len(ids)))  # nothing known: xdist's own order
        return
    typical = sorted(seconds.values())[len(seconds) // 2] if len(seconds) % 2 else None
    cost = [seconds.get(i, typical if typical is not None else 0.0) for i in ids]
    head = 2 * workers
    if len(ids) >= head and typical is not None:
        first, rest = [cost[i] for i in order[:head]], [cost[i] for i in order[head:]]
        assert min(first) >= max(rest, default=0.0)  # the longest are handed out first
        pairs = [first[k : k + 2] for k in range(0, head, 2)]  # each worker's first two
        assert all(a >= b for a, b in pairs)
        sums = [a + b for a, b in pairs]
        assert max(sums) - min(sums) <= max(first) - min(first) + 1e-9  # longest paired with shortest


def test_timings_merge_and_a_bad_file_is_ignored(tmp_path: Path) -> None:
    assert read_timings(tmp_path) == {}
    write_timings(tmp_path, {"a": 1.0, "b": 2.0})
    write_timings(tmp_path, {"b": 3.0})
    assert read_timings(tmp_path) == {"a": 1.0, "b": 3.0}
    (tmp_path / TIMINGS_FILE).write_text("{not json")
    assert read_timings(tmp_path) == {}


SPECS = """
    import pytest


    @pytest.mark.parametrize("name", ["a", "b", "c", "d", "e", "f", "long1", "long2"])
    def test_spec(reuse, name, worker_id):
        with open(f"order-{worker_id}.log", "a") as log:
            log.write(f"{name}\\n")
"""


def test_a_parallel_run_starts_each_worker_on_one_of_the_longest_specs(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_specs=textwrap.dedent(SPECS))
    cache = tmp_path / "cache"
    args = ("-n", "2", "--reuse-cache-dir", str(cache), "-p", "no:cacheprovider")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=8)
    saved = read_timings(cache)
    assert {k.rsplit("::", 1)[1] for k in saved} == {f"test_spec[{n}]" for n in "abcdef"} | {
        "test_spec[long1]",
        "test_spec[long2]",
    }
    assert all(seconds >= 0 for seconds in saved.values())

    # As if the last two had taken long: collection order puts them last, xdist would start with a-d.
    write_timings(cache, {k: (9.0 if "long" in k else 0.01) for k in saved})
    for log in pytester.path.glob("order-*.log"):
        log.unlink()
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=8)
    first = {log.name: log.read_text().split()[0] for log in pytester.path.glob("order-*.log")}
    assert sorted(first.values()) == ["long1", "long2"], first


def test_the_zoo_is_shared_out_longest_first_and_completely() -> None:
    from reusespec.pytest_plugin.xdist import zoo_share

    class Item:  # what zoo_share reads of an item: markers, parameters, the function's source
        def __init__(self, function: object) -> None:
            self.function = function

        def get_closest_marker(self, name: str) -> None:
            return None

    def spec(reuse):  # type: ignore[no-untyped-def]
        return reuse.zoo()  # every zoo backbone

    items = [Item(spec)]
    shares = [zoo_share(items, w, 2) for w in range(2)]  # type: ignore[arg-type]
    assert sorted(shares[0] + shares[1]) == sorted(f"zoo:{n}" for n in ZOO)
    loads = [sum(pretraining_cost(n.removeprefix("zoo:")) for n in share) for share in shares]
    heaviest = max(ZOO, key=pretraining_cost)
    assert any(share[0] == f"zoo:{heaviest}" for share in shares)
    assert abs(loads[0] - loads[1]) <= pretraining_cost(heaviest)

    def one(reuse):  # type: ignore[no-untyped-def]
        return reuse.probe("zoo:digits-mlp", "mnist5k")

    assert zoo_share([Item(one)], 0, 2) == ["zoo:digits-mlp"]  # type: ignore[list-item]
    assert zoo_share([Item(one)], 1, 2) == []  # type: ignore[list-item]


def test_timings_match_ids_relative_to_another_root() -> None:
    from reusespec.pytest_plugin.schedule import matched

    timings = {"specs/test_a.py::t": 2.0, "test_b.py::u[x/y]": 1.0}
    ids = ["repo/specs/test_a.py::t", "test_b.py::u[x/y]", "b/test_b.py::u[x/y]", "test_c.py::v"]
    assert matched(ids, timings) == {ids[0]: 2.0, ids[1]: 1.0, ids[2]: 1.0}
    assert matched(["test_a.py::t"], timings) == {"test_a.py::t": 2.0}


def test_checkpoints_already_in_the_cache_are_not_shared_out(tmp_path: Path) -> None:
    from reusespec.backbones.zoo import checkpoint_path
    from reusespec.pytest_plugin.xdist import zoo_share

    class Item:
        function = staticmethod(lambda reuse: reuse.zoo())

        def get_closest_marker(self, name: str) -> None:
            return None

    built = checkpoint_path("digits-cnn-wide", tmp_path)
    built.parent.mkdir(parents=True)
    built.touch()
    shares = [zoo_share([Item()], w, 2, tmp_path) for w in range(2)]  # type: ignore[list-item]
    assert sorted(shares[0] + shares[1]) == sorted(f"zoo:{n}" for n in ZOO if n != "digits-cnn-wide")
