"""``python -m reusespec``: the ``reusespec`` command (:mod:`reusespec.cli`)."""

from reusespec.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
