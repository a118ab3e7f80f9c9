"""Every ``--reuse-*`` option and ``reuse_*`` ini value, declared once and parsed when read.

Command-line values are converted by argparse (``type=`` and ``choices=``), so a bad value ends
in a pytest usage error (exit code 4) that names the option and what it accepts, before any
spec runs. Ini values go through the same parsers when the settings are read, with the same
kind of message. :func:`reuse_config` and :func:`gate_settings` turn both into the plain
settings objects the core and the gate engine use.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from reusespec.config import ReuseConfig, default_cache_dir
from reusespec.gate.rules import VERDICT_MODES
from reusespec.gate.settings import (
    GATED_SCORES,
    INCONCLUSIVE_MODES,
    GateSettings,
    GateSettingsError,
    parse_swaps,
    spread_references,
)
from reusespec.standard_suite import SUITE_INI

__all__ = ["add_options", "gate_settings", "path_setting", "reuse_config", "setting"]


def _integer(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _open_unit(text: str) -> float:
    """A probability strictly between 0 and 1 (a confidence)."""
    try:
        value = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number between 0 and 1, e.g. 0.95; got {text!r}"
        ) from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a number strictly between 0 and 1, e.g. 0.95; got {value}"
        )
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = str(text).strip()
        if value not in choices:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(choices)}; got {text!r}")
        return value

    parse.__name__ = "choice"
    return parse


@dataclass(frozen=True)
class _Option:
    """One ``--reuse-NAME`` option with its ini twin ``reuse_NAME`` (when it has one)."""

    name: str
    help: str
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    ini: Literal["string", "paths"] | None = "string"  # the ini type; None: command line only
    ini_default: Any = None
    aliases: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        return "reuse_" + self.name.replace("-", "_")


_POSITIVE = _integer(1)
OPTIONS: tuple[_Option, ...] = (
    _Option(
        "cache-dir",
        "where backbones, zoo checkpoints and features are cached "
        "(default: $REUSESPEC_CACHE_DIR or ~/.cache/reusespec)",
        metavar="DIR",
        ini="paths",
    ),
    _Option(
        "data-dir",
        "where datasets are looked for (default: $REUSESPEC_DATA_DIR or ~/.cache/reusespec/data)",
        metavar="DIR",
        ini="paths",
    ),
    _Option("device", "auto (a GPU per xdist worker when CUDA is present, else CPU), cpu, cuda, cuda:N"),
    _Option(
        "seed",
        "the run's seed: of splits, head initialisation and data order (default 0); "
        "not to be confused with --reuse-seed-count",
        parse=_integer(0),
        metavar="N",
    ),
    _Option("report", "write the JSON report of every score to this path", metavar="PATH", ini="paths"),
    _Option("batch-size", "feature extraction batch size (default 256)", parse=_POSITIVE, metavar="N"),
    _Option(
        "verdicts",
        "off: the spec's assert decides (default); interval: pass/fail only when the score's "
        "confidence interval is wholly on one side of its threshold, else inconclusive",
        parse=_choice(VERDICT_MODES),
        choices=VERDICT_MODES,
        ini_default="off",
    ),
    _Option(
        "confidence",
        "confidence of the intervals verdicts use (default 0.95)",
        parse=_open_unit,
        ini_default="0.95",
    ),
    _Option(
        "seed-count",
        "replay every spec with N seeds (the run's --reuse-seed, +1, ...); scores become means "
        "(default 1). --reuse-seeds is the older spelling of this option",
        parse=_POSITIVE,
        metavar="N",
        ini=None,
        aliases=("--reuse-seeds",),
    ),
    _Option(
        "max-seeds",
        "with interval verdicts, add seeds to an inconclusive spec, one at a time, up to M",
        parse=_POSITIVE,
        metavar="M",
        ini=None,
    ),
    _Option(
        "inconclusive",
        "an inconclusive spec fails the run (block, default) or passes with a warning (warn)",
        parse=_choice(INCONCLUSIVE_MODES),
        choices=INCONCLUSIVE_MODES,
        ini_default="block",
    ),
    _Option(
        "gate-scores",
        "which scores a baseline gates: asserted (default: those a spec compared in an assert, and "
        "those a reuse_gate marker names; the others are tracked) or all",
        parse=_choice(GATED_SCORES),
        choices=GATED_SCORES,
        ini_default="asserted",
    ),
    _Option(
        "save-baseline",
        "store every score of this run (and its receipt) as a baseline at PATH",
        metavar="PATH",
        ini="paths",
    ),
    _Option(
        "baseline-spread",
        "with --reuse-save-baseline, replay every spec with N more seeds and store each score's "
        "spread, so that a later comparison allows what that noise needs (default 0: none)",
        parse=_integer(0),
        metavar="N",
        ini_default="0",
    ),
    _Option(
        "baseline",
        "compare every score with the baseline at PATH; fail specs that regressed",
        metavar="PATH",
        ini="paths",
    ),
    _Option(
        "markdown",
        "write a Markdown summary (for a CI job summary or a PR comment) to PATH",
        metavar="PATH",
        ini="paths",
    ),
    _Option(
        "html",
        "write a self-contained HTML report (matrix, per-spec charts) to PATH",
        metavar="PATH",
        ini="paths",
    ),
    _Option(
        "backbone",
        "zero-code check: run the standard reuse suite on this backbone (e.g. file:new.safetensors)",
        metavar="SPEC",
        ini=None,
    ),
)


def add_options(parser: pytest.Parser) -> None:
    """Declare every option and ini value (called from ``pytest_addoption``)."""
    group = parser.getgroup("reusespec", "reusespec: reusability specs")
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"dest": option.dest, "default": None, "help": option.help}
        if option.parse is not None:
            kwargs["type"] = option.parse
        if option.metavar is not None:
            kwargs["metavar"] = option.metavar
        elif option.choices is not None:
            kwargs["metavar"] = "{" + ",".join(option.choices) + "}"
        group.addoption(f"--reuse-{option.name}", *option.aliases, **kwargs)
        if option.ini is not None:
            parser.addini(
                option.dest, f"as --reuse-{option.name}", type=option.ini, default=option.ini_default
            )
    # The ini twin of --reuse-seed-count keeps the name it always had.
    parser.addini("reuse_seeds", "as --reuse-seed-count", type="string", default="1")
    group.addoption(
        "--reuse-allow-download",
        action="store_true",
        default=None,
        help="let torchvision download missing weights and datasets (off by default: specs skip instead)",
    )
    parser.addini("reuse_allow_download", "as --reuse-allow-download", type="bool", default=False)
    group.addoption(
        "--reuse-strict",
        action="store_true",
        default=None,
        help="a registry resource this machine lacks (torchvision weights, a dataset) fails the spec "
        "instead of skipping it; on by default with --reuse-baseline",
    )
    group.addoption(
        "--reuse-no-strict",
        dest="reuse_strict",
        action="store_false",
        help="let missing registry resources skip even with --reuse-baseline",
    )
    group.addoption(
        "--reuse-trust-pickle",
        action="append",
        default=[],
        metavar="PATH",
        help="allow this one checkpoint to unpickle arbitrary objects (runs code from the file; repeatable)",
    )
    group.addoption(
        "--reuse-swap-backbone",
        dest="reuse_swap_backbone",
        metavar="[OLD=]NEW",
        action="append",
        default=[],
        help="run the specs with NEW in place of OLD (without OLD=: in place of each spec's first backbone)",
    )
    group.addoption(
        "--reuse-baseline-spread-backbone",
        dest="reuse_baseline_spread_backbone",
        metavar="OLD=NEW",
        action="append",
        default=[],
        help="with --reuse-save-baseline, rerun every spec with NEW (a checkpoint of equal quality, e.g. "
        "a retrain) in place of OLD; the scores of two or more NEWs give each score's spread (repeatable)",
    )
    group.addoption(
        "--reuse-suite-task",
        dest="reuse_suite_task",
        metavar="TASK",
        action="append",
        default=[],
        help="a task of the standard suite (repeatable; default: ini reuse_suite_tasks)",
    )
    for name, help_text in SUITE_INI.items():
        if name == "reuse_suite_tasks":
            parser.addini(name, help_text, type="linelist")
        else:
            parser.addini(name, help_text, type="string")


_BY_DEST = {option.dest: option for option in OPTIONS}
_INI_OF = {"reuse_seed_count": "reuse_seeds"}


def setting(config: pytest.Config, dest: str) -> Any:
    """A command-line value (parsed by argparse), else the ini value of the same name, parsed alike."""
    value = config.getoption(dest, None)
    if value is not None:
        return value
    ini = _INI_OF.get(dest, dest)
    try:
        value = config.getini(ini)
    except ValueError:
        return None
    option = _BY_DEST.get(dest)
    if option is None or option.parse is None or value in (None, ""):
        return value
    try:
        return option.parse(value)
    except argparse.ArgumentTypeError as exc:
        raise pytest.UsageError(f"ini value {ini} = {value!r}: {exc}") from None


def path_setting(config: pytest.Config, dest: str) -> Path | None:
    """A path option: relative to where pytest started on the command line, to the ini file in it.

    As pytest does for its own path options, so that an ini path does not move with the working
    directory.
    """
    value = config.getoption(dest, None)
    if value:
        path = Path(value).expanduser()
        return path if path.is_absolute() else Path(config.invocation_params.dir) / path
    paths = config.getini(dest)
    if not paths:
        return None
    if len(paths) > 1:
        raise pytest.UsageError(
            f"ini value {dest} holds {len(paths)} paths; give one (quote one with spaces)"
        )
    return Path(paths[0]).expanduser()


def reuse_config(config: pytest.Config) -> ReuseConfig:
    """The core's settings (:class:`~reusespec.config.ReuseConfig`) from options and ini values."""
    seed = setting(config, "reuse_seed")
    batch = setting(config, "reuse_batch_size")
    return ReuseConfig(
        cache_dir=path_setting(config, "reuse_cache_dir") or default_cache_dir(),
        data_dir=path_setting(config, "reuse_data_dir"),
        device=setting(config, "reuse_device") or "auto",
        seed=0 if seed is None or seed == "" else int(seed),
        allow_download=bool(setting(config, "reuse_allow_download")),
        trusted_pickles=tuple(Path(p).resolve() for p in config.getoption("reuse_trust_pickle") or ()),
        batch_size=int(batch) if batch else 256,
    )


def strict_mode(config: pytest.Config) -> bool:
    """``--reuse-strict``; on by default when a baseline gates the run (a skip must not pass a gate)."""
    explicit = config.getoption("reuse_strict", None)
    if explicit is not None:
        return bool(explicit)
    return path_setting(config, "reuse_baseline") is not None


def gate_settings(config: pytest.Config) -> GateSettings:
    """The gate engine's run settings from options and ini values; a contradiction is a usage error."""
    seeds = int(setting(config, "reuse_seed_count") or 1)
    max_seeds = config.getoption("reuse_max_seeds")
    try:
        swaps, subject = parse_swaps(config.getoption("reuse_swap_backbone") or ())
        references = spread_references(config.getoption("reuse_baseline_spread_backbone") or ())
        settings = GateSettings(
            verdicts=str(setting(config, "reuse_verdicts") or "off"),
            confidence=float(setting(config, "reuse_confidence") or 0.95),
            seeds=seeds,
            max_seeds=seeds if max_seeds is None else int(max_seeds),
            inconclusive=str(setting(config, "reuse_inconclusive") or "block"),
            baseline=path_setting(config, "reuse_baseline"),
            save_baseline=path_setting(config, "reuse_save_baseline"),
            baseline_spread=int(setting(config, "reuse_baseline_spread") or 0),
            spread_backbones=references,
            markdown=path_setting(config, "reuse_markdown"),
            html=path_setting(config, "reuse_html"),
            backbone=config.getoption("reuse_backbone"),
            swaps=swaps,
            subject_swap=subject,
            strict=strict_mode(config),
            gate_scores=str(setting(config, "reuse_gate_scores") or "asserted"),
        )
        settings.check()
    except GateSettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    return settings
