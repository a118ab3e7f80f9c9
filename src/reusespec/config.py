"""The settings of a run, importable without torch (the pytest controller reads only these)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def default_cache_dir(env: dict[str, str] | None = None) -> Path:
    """``REUSESPEC_CACHE_DIR`` if set, else ``~/.cache/reusespec``."""
    env = dict(os.environ) if env is None else env
    return Path(env.get("REUSESPEC_CACHE_DIR") or Path.home() / ".cache" / "reusespec")


@dataclass
class ReuseConfig:
    """Settings of a run (the pytest plugin fills these from ``--reuse-*`` options)."""

    cache_dir: Path = field(default_factory=default_cache_dir)
    data_dir: Path | None = None
    device: str = "auto"
    seed: int = 0
    allow_download: bool = False
    trusted_pickles: tuple[Path, ...] = ()
    batch_size: int = 256
    progress: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        # Paths given as strings (ReuseConfig(cache_dir="some/dir")) are joined with "/" later.
        self.cache_dir = Path(self.cache_dir).expanduser()
        if self.data_dir is not None:
            self.data_dir = Path(self.data_dir).expanduser()
        self.trusted_pickles = tuple(Path(p) for p in self.trusted_pickles)
