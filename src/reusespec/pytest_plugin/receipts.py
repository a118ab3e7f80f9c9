"""Receipts: what a run's and a spec's scores depend on (libraries, seeds, splits, preprocessing).

A baseline is only compared with a run whose receipt matches (:mod:`reusespec.gate.baseline`);
the JSON report carries the run's receipt for reproducibility.
"""

from __future__ import annotations

import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reusespec.gate.baseline import library_versions
from reusespec.gate.settings import GateSettings

if TYPE_CHECKING:
    from reusespec.session import ReuseSession

__all__ = ["compatibility_receipt", "describe_input", "git_state", "run_receipt", "spec_receipt"]


def compatibility_receipt(seed: int, settings: GateSettings) -> dict[str, Any]:
    """The part of a run's receipt a baseline must match: libraries, the seed and the seed count."""
    return {"libraries": library_versions(), "seed": seed, "seeds": settings.seeds}


def run_receipt(
    seed: int, settings: GateSettings, spec_receipts: Iterable[Mapping[str, Any]], git: Mapping[str, Any]
) -> dict[str, Any]:
    """The run's full receipt: :func:`compatibility_receipt`, platform, devices, gate settings, git."""
    receipts = list(spec_receipts)
    devices = sorted({str(r.get("device")) for r in receipts} - {"None"})
    receipt = compatibility_receipt(seed, settings)
    receipt.update(
        {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "devices": devices,
            "verdicts": settings.verdicts,
            "confidence": settings.confidence,
            "max_seeds": settings.max_seeds,
            **git,
        }
    )
    backbones: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    for spec in receipts:
        backbones.update(spec.get("backbones", {}))
        tasks.update(spec.get("tasks", {}))
    receipt["backbones"], receipt["tasks"] = backbones, tasks
    return receipt


def spec_receipt(session: ReuseSession) -> dict[str, Any]:
    """The backbones and task splits one spec used, with their fingerprints, and the device."""
    backbones = {
        role: {
            "name": bb.name,
            "fingerprint": bb.fingerprint,
            "transform": bb.input_spec.key(),
            "input": describe_input(bb.input_spec),
        }
        for role, bb in session.used_backbones.items()
    }
    tasks = {
        f"{name}@{seed}": {
            "task": name,
            "seed": seed,
            "fingerprint": task.fingerprint,
            "test": task.test.fingerprint,
        }
        for (name, seed), task in session.used_tasks.items()
    }
    return {"backbones": backbones, "tasks": tasks, "device": str(session.device)}


def describe_input(spec: Any) -> str:
    """An input specification in one line (size, normalisation, interpolation)."""
    size = "x".join(str(s) for s in spec.size)
    mean = ",".join(f"{m:.3g}" for m in spec.mean)
    std = ",".join(f"{s:.3g}" for s in spec.std)
    resize = f" resize={spec.resize}" if spec.resize else ""
    return f"{spec.channels}x{size}{resize} mean=({mean}) std=({std}) {spec.interpolation}"


def git_state(root: Path) -> dict[str, Any]:
    """The commit of the repository at ``root`` and whether it has local changes (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"git_commit": commit, "git_dirty": None if status is None else bool(status)}
