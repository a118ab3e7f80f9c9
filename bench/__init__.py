"""reusespec's benchmark suite: each benchmark times reusespec against the usual way, in one process.

Run on demand, never as part of the tests::

    python -m bench                 # every benchmark, JSON results in bench/results/
    python -m bench --quick         # smaller sizes, one repeat: a smoke run of the suite
    python -m bench --only headfit  # one benchmark (repeat --only for more)
    python -m bench.render          # docs/benchmarks.md from the JSON results

See docs/benchmarks.md for what each benchmark compares and the latest table.
"""
