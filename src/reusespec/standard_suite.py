"""The standard reuse suite: a zero-code check of a checkpoint.

``pytest --reuse-backbone file:new.safetensors`` (no spec files needed) runs, on that backbone:

* ``head-only[TASK]`` for every configured task: a linear probe; its accuracy must beat
  chance (1 / number of classes), or ``reuse_suite_min_accuracy`` when set;
* ``budget``: parameters, MACs and checkpoint size (``reuse_suite_max_params`` and
  ``reuse_suite_max_gmacs`` as limits when set; latency only with ``reuse_suite_latency``,
  since it depends on the machine);
* ``shift[CORRUPTION@SEVERITY]``: a probe trained on the first task's clean data, scored on
  corrupted test images (``reuse_suite_max_relative_drop`` as the limit when set).

Checks without a limit still record their scores, so with ``--reuse-baseline`` the suite is a
regression gate against the last checkpoint. Settings come from the ini file
(``[tool.pytest.ini_options]``) and ``--reuse-suite-task``. The checks are plain functions of a
:class:`~reusespec.session.Reuse` facade (``check.run(reuse)``), usable without pytest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reusespec.errors import SuiteError

if TYPE_CHECKING:
    from reusespec.session import Reuse

DEFAULT_TASKS = ("sklearn-digits", "mnist5k:5-9")
DEFAULT_SHIFT = "gaussian_noise@3"

SUITE_INI = {
    "reuse_suite_tasks": f"tasks of the standard suite, one a line (default: {', '.join(DEFAULT_TASKS)})",
    "reuse_suite_shift": f"CORRUPTION@SEVERITY of the suite's shift check, or none (default {DEFAULT_SHIFT})",
    "reuse_suite_min_accuracy": "head-only accuracy every suite task must reach (default: beat chance)",
    "reuse_suite_max_params": "parameter budget of the suite's backbone (default: recorded only)",
    "reuse_suite_max_gmacs": "GMACs budget of the suite's backbone (default: recorded only)",
    "reuse_suite_max_relative_drop": "largest relative accuracy drop under the suite's shift (default: none)",
    "reuse_suite_latency": "true: the budget check also measures latency (machine-dependent)",
}


@dataclass(frozen=True)
class SuiteConfig:
    """What the standard suite checks, on which backbone."""

    backbone: str
    tasks: tuple[str, ...] = DEFAULT_TASKS
    shift: tuple[str, int] | None = ("gaussian_noise", 3)
    min_accuracy: float | None = None
    max_params: float | None = None
    max_gmacs: float | None = None
    max_relative_drop: float | None = None
    latency: bool = False

    @classmethod
    def from_settings(cls, backbone: str, tasks: Sequence[str], setting: Callable[[str], Any]) -> SuiteConfig:
        """Build from ``--reuse-suite-task`` values and a lookup of the ``reuse_suite_*`` ini keys."""

        def number(name: str) -> float | None:
            value = setting(name)
            if value in (None, ""):
                return None
            try:
                return float(value)
            except ValueError:
                raise SuiteError(f"{name} = {value!r} is not a number") from None

        configured = [t for t in (setting("reuse_suite_tasks") or []) if t.strip()]
        shift_text = str(setting("reuse_suite_shift") or DEFAULT_SHIFT)
        latency = str(setting("reuse_suite_latency") or "").strip().lower() in ("1", "true", "yes", "on")
        return cls(
            backbone=backbone,
            tasks=tuple(tasks) or tuple(t.strip() for t in configured) or DEFAULT_TASKS,
            shift=parse_shift(shift_text),
            min_accuracy=number("reuse_suite_min_accuracy"),
            max_params=number("reuse_suite_max_params"),
            max_gmacs=number("reuse_suite_max_gmacs"),
            max_relative_drop=number("reuse_suite_max_relative_drop"),
            latency=latency,
        )


def parse_shift(text: str) -> tuple[str, int] | None:
    """``"gaussian_noise@3"`` -> ``("gaussian_noise", 3)``; ``"none"`` -> None."""
    text = text.strip()
    if text.lower() in ("", "none", "off"):
        return None
    name, sep, severity = text.partition("@")
    if not sep or not severity.isdigit() or not 1 <= int(severity) <= 5:
        raise SuiteError(
            f"reuse_suite_shift = {text!r}: give CORRUPTION@SEVERITY (1..5), e.g. {DEFAULT_SHIFT}"
        )
    return name, int(severity)


@dataclass(frozen=True)
class SuiteCheck:
    """One check of the suite: ``run(reuse)`` raises AssertionError when it fails."""

    name: str
    description: str
    run: Callable[[Reuse], None]


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def standard_checks(config: SuiteConfig) -> list[SuiteCheck]:
    """The suite's checks for ``config``, in the order they run."""
    backbone = config.backbone
    checks = [_head_only(config, task) for task in config.tasks]

    def budget(reuse: Reuse) -> None:
        c = reuse.complexity(backbone, latency=config.latency, memory=False)
        if config.max_params is not None:
            _require(
                c.params <= config.max_params,
                f"{backbone} has {int(c.params):,} parameters, over the budget of {config.max_params:,.0f}",
            )
        if config.max_gmacs is not None:
            _require(
                c.gmacs <= config.max_gmacs,
                f"{backbone} needs {c.gmacs:.4g} GMACs, over the budget of {config.max_gmacs:g}",
            )

    checks.append(SuiteCheck("budget", f"parameters and compute of {backbone}", budget))
    if config.shift is not None and config.tasks:
        corruption, severity = config.shift
        task = config.tasks[0]

        def shift(reuse: Reuse) -> None:
            s = reuse.shift(backbone, task, corruption=corruption, severity=severity)
            if config.max_relative_drop is not None:
                _require(
                    s.relative_drop <= config.max_relative_drop,
                    f"{backbone} on {task} loses {s.relative_drop:.1%} of its accuracy under "
                    f"{corruption}@{severity}, more than {config.max_relative_drop:.1%}",
                )

        checks.append(
            SuiteCheck(f"shift[{corruption}@{severity}]", f"{task} under {corruption}@{severity}", shift)
        )
    return checks


def _head_only(config: SuiteConfig, task: str) -> SuiteCheck:
    backbone = config.backbone

    def check(reuse: Reuse) -> None:
        result = reuse.probe(backbone, task)
        if config.min_accuracy is not None:
            _require(
                result.accuracy >= config.min_accuracy,
                f"head-only accuracy of {backbone} on {task} is {result.accuracy:.4f}, "
                f"below {config.min_accuracy:.4f}",
            )
            return
        chance = 1.0 / reuse.task(task).num_classes
        _require(
            result.accuracy > chance,
            f"head-only accuracy of {backbone} on {task} is {result.accuracy:.4f}, "
            f"no better than chance ({chance:.4f})",
        )

    return SuiteCheck(f"head-only[{task}]", f"linear probe of {backbone} on {task}", check)
