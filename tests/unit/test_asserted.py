"""Only comparisons that reached an ``assert`` are judged: the site of a comparison, from source."""

from __future__ import annotations

import contextlib
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reusespec.asserted import ComparisonSite, comparison_site


class Score(float):
    """A float that remembers where each comparison with it ran (as a spec's Metric would)."""

    sites: list[ComparisonSite]

    def __new__(cls, value: float) -> Score:
        obj = super().__new__(cls, value)
        obj.sites = []
        return obj

    def __ge__(self, other: object) -> bool:
        self.sites.append(comparison_site(sys._getframe(1)))
        return float(self) >= float(other)  # type: ignore[arg-type]

    __hash__ = float.__hash__


def _run(tmp_path: Path, body: str, name: str = "spec") -> Score:
    """Write ``body`` as a module with ``run(score)`` and call it, as pytest would call a spec."""
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    namespace: dict[str, Any] = {"__name__": name, "__file__": str(path)}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    score = Score(0.95)
    with contextlib.suppress(AssertionError):
        namespace["run"](score)
    return score


@pytest.mark.parametrize(
    ("body", "asserted", "statement"),
    [
        ("def run(s):\n    assert s >= 0.9\n", True, "assert"),
        ("def run(s):\n    assert s >= 0.99, 'too low'\n", True, "assert"),  # a failing assert too
        ("def run(s):\n    if s >= 0.999:\n        print('great')\n", False, "if"),
        ("def run(s):\n    s >= 0.9  # a forgotten assert\n", False, "expr"),
        ("def run(s):\n    ok = s >= 0.9\n    assert ok\n", False, "assign"),
        ("def run(s):\n    assert all(x >= 0.9 for x in [s])\n", True, "assert"),
        ("def run(s):\n    assert (\n        s\n        >= 0.9\n    )\n", True, "assert"),
        ("def run(s):\n    if True: assert s >= 0.9\n", True, "assert"),
        ("def good(x):\n    return x >= 0.9\n\ndef run(s):\n    assert good(s)\n", True, "assert"),
        ("def good(x):\n    return x >= 0.9\n\ndef run(s):\n    if good(s):\n        pass\n", False, "if"),
    ],
)
def test_the_statement_that_holds_the_comparison_decides(
    tmp_path: Path, body: str, asserted: bool, statement: str
) -> None:
    (site,) = _run(tmp_path, body).sites
    assert site.statement == statement and site.asserted is asserted
    assert site.filename.endswith("spec.py")


def test_assertion_rewriting_keeps_the_assert_visible(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        """
    )
    pytester.makepyfile(
        test_spec="""
        from test_asserted import Score

        def test_asserted_and_not():
            s = Score(0.95)
            if s >= 0.999:
                pass
            assert s >= 0.9
            kinds = [site.statement for site in s.sites]
            assert kinds == ["if", "assert"], kinds
        """
    )
    pytester.runpytest("-p", "no:reusespec", "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_source_that_cannot_be_read_is_unknown_not_asserted() -> None:
    namespace: dict[str, Any] = {}
    exec(compile("def run(s):\n    assert s >= 0.9\n", "<interactive>", "exec"), namespace)
    score = Score(0.95)
    namespace["run"](score)
    (site,) = score.sites
    assert site.asserted is None and site.statement is None


@settings(max_examples=25, deadline=None)
@given(
    padding=st.lists(st.sampled_from(["x = 1", "y = [1, 2]", "pass", "z = {'a': 1}"]), max_size=4),
    asserted=st.booleans(),
)
def test_any_surrounding_code_leaves_the_decision_to_the_comparing_statement(
    tmp_path_factory: pytest.TempPathFactory, padding: list[str], asserted: bool
) -> None:
    compare = "assert s >= 0.9" if asserted else "flag = s >= 0.9"
    lines = ["def run(s):", *(f"    {p}" for p in padding), f"    {compare}", *(f"    {p}" for p in padding)]
    (site,) = _run(tmp_path_factory.mktemp("spec"), "\n".join(lines) + "\n").sites
    assert site.asserted is asserted
    assert site.lineno == 2 + len(padding)
