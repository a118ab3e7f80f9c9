"""The machine a cost was measured on, and whether two measurements can be compared.

Latency and memory are properties of the model *and* the machine: the same weights ran in
0.2 ms and in 34 ms on one busy machine, and ResNet-18 takes three times as long on a laptop as
on a server. A measured cost is compared with a baseline only when both were measured on the
same kind of machine: CPU model, core count, device, torch version and torch's thread count
(a serial run and an xdist worker use different thread counts, which changes latency as much as
a slower CPU). Otherwise it is tracked, with the reason.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["FINGERPRINT_FIELDS", "MachineFingerprint", "comparable", "cpu_model", "machine_fingerprint"]

FINGERPRINT_FIELDS = ("cpu", "cores", "device", "torch", "threads")
_NAMES = {
    "cpu": "CPU model",
    "cores": "CPU cores",
    "device": "device",
    "torch": "torch version",
    "threads": "torch threads",
}


@dataclass(frozen=True)
class MachineFingerprint:
    """What a measured cost depends on besides the model."""

    cpu: str
    cores: int
    device: str
    torch: str
    threads: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MachineFingerprint:
        return cls(
            cpu=str(data["cpu"]),
            cores=int(data["cores"]),
            device=str(data["device"]),
            torch=str(data["torch"]),
            threads=int(data["threads"]),
        )


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_fingerprint(device: str = "cpu") -> MachineFingerprint:
    """The fingerprint of this machine for costs measured on ``device`` (``cpu``, ``cuda:0``...)."""
    import torch

    device_name = "cpu"
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index or 0
        device_name = f"cuda:{torch.cuda.get_device_name(index)}"
    elif device != "cpu":
        device_name = device
    return MachineFingerprint(
        cpu=cpu_model(),
        cores=os.cpu_count() or 1,
        device=device_name,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
    )


def comparable(baseline: Mapping[str, Any] | None, current: Mapping[str, Any] | None) -> tuple[bool, str]:
    """Whether a cost measured on ``current`` may be compared with one measured on ``baseline``.

    Both are fingerprint dicts (:meth:`MachineFingerprint.as_dict`). Returns ``(True, "")`` or
    ``(False, reason)``, the reason naming every field that differs, for a "tracked" line.
    """
    if not baseline:
        return False, "the baseline does not say which machine measured it (save the baseline again)"
    if not current:
        return False, "this run does not say which machine measured it"
    differences = [
        f"{_NAMES[name]} {baseline.get(name)!r} in the baseline, {current.get(name)!r} now"
        for name in FINGERPRINT_FIELDS
        if baseline.get(name) != current.get(name)
    ]
    if differences:
        return False, "measured on another machine: " + "; ".join(differences)
    return True, ""
