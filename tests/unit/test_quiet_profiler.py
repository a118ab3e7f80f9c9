"""Complexity measurements print nothing of torch's profiler chatter."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from torch import nn
from reusespec.complexity import measure_complexity

model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
for _ in range(2):
    result = measure_complexity(model, (1, 8, 8), latency_repeats=2, warmup=1)
print("peak", result.peak_memory_mb is not None)
print("to stderr", file=sys.stderr)
"""


def test_the_profiler_prints_nothing_around_a_memory_measurement() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "USDT" not in output and "profiler_start" not in output, output
    assert "gpuGetDeviceCount" not in output, output
    # What the program itself prints afterwards still arrives, on the right stream.
    assert done.stdout.strip() == "peak True" and done.stderr.strip() == "to stderr"
