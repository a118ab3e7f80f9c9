"""The release gate's engine: verdicts, the sequential-seed decision, severities, baselines, calibration.

Imports no pytest: :mod:`reusespec.pytest_plugin` feeds it a spec's records and turns its
decisions into pytest outcomes, so every rule here is unit-tested without running pytest.

* :mod:`~reusespec.gate.rules`: threshold verdicts, severities and statuses;
* :mod:`~reusespec.gate.sequential`: adding seeds until a verdict is conclusive (one implementation);
* :mod:`~reusespec.gate.decision`: a spec's decision from its runs and its baseline;
* :mod:`~reusespec.gate.baseline`: the baseline file, tolerances and score comparisons;
* :mod:`~reusespec.gate.settings`: the run's and one spec's gate settings;
* :mod:`~reusespec.gate.calibration`: spreads over seeds and suggested thresholds.
"""
