"""Bad input fails (or skips) one spec with a message naming the cause and the fix; the run goes on.

Every test runs a small suite under pytester: the spec with the bad input, then a neighbour that
probes ``zoo:digits-cnn`` on ``sklearn-digits`` in the same session and must still pass. The
outcome and message of each spec are read from the run's JSON report, which is what a CI job
keeps. The cache is shared by the tests of this module (features of the neighbour extracted
once), so each run costs about a second.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

NEIGHBOUR = """

def test_neighbour(reuse):
    assert reuse.probe("zoo:digits-cnn", "sklearn-digits?shots=10").accuracy >= 0.5
"""


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """Probes fit tiny heads; on a busy machine two threads waiting on each other are 20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shared_cache(zoo_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache with the zoo checkpoints; the neighbour's features are added by the first run."""
    target = tmp_path_factory.mktemp("bad-input") / "cache"
    shutil.copytree(zoo_cache / "zoo", target / "zoo", ignore=shutil.ignore_patterns("*.lock"))
    return target


def run_specs(pytester: pytest.Pytester, cache: Path, specs: str, *args: str) -> dict[str, dict[str, Any]]:
    """Run ``specs`` plus the neighbour; each spec's outcome and message from the JSON report."""
    pytester.makepyfile(test_specs=textwrap.dedent(specs) + NEIGHBOUR)
    report = pytester.path / "report.json"
    options = ["--reuse-cache-dir", str(cache), "--reuse-report", str(report), "-p", "no:cacheprovider"]
    pytester.runpytest(*options, *args)
    document = json.loads(report.read_text())
    specs_by_name = {s["nodeid"].split("::")[-1]: s for s in document["specs"]}
    assert specs_by_name["test_neighbour"]["outcome"] == "passed", specs_by_name["test_neighbour"]
    return specs_by_name


def failed_with(spec: dict[str, Any], error: str, *phrases: str) -> None:
    assert spec["outcome"] == "failed", spec
    assert error in spec["message"], spec["message"]
    for phrase in phrases:
        assert phrase in spec["message"], f"{phrase!r} not in {spec['message']!r}"


def skipped_with(spec: dict[str, Any], *phrases: str) -> None:
    assert spec["outcome"] == "skipped", spec
    for phrase in phrases:
        assert phrase in spec["message"], f"{phrase!r} not in {spec['message']!r}"


def zoo_state_dict(cache: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    (checkpoint,) = (cache / "zoo").glob("digits-cnn-[0-9a-f]*.safetensors")
    return load_file(checkpoint)


def test_unknown_backbone_string(pytester: pytest.Pytester, shared_cache: Path) -> None:
    specs = run_specs(
        pytester,
        shared_cache,
        """
        def test_no_scheme(reuse):
            reuse.probe("resnet18", "sklearn-digits")

        def test_zoo_typo(reuse):
            reuse.probe("zoo:digits-cnm", "sklearn-digits")
        """,
    )
    failed_with(specs["test_no_scheme"], "UnknownBackboneError", "'resnet18'", "torchvision:NAME", "zoo:NAME")
    failed_with(specs["test_zoo_typo"], "UnknownBackboneError", "'zoo:digits-cnm'", "zoo:digits-cnn")


def test_unknown_task_string(pytester: pytest.Pytester, shared_cache: Path) -> None:
    specs = run_specs(
        pytester,
        shared_cache,
        """
        def test_task_typo(reuse):
            reuse.probe("zoo:digits-cnn", "mnist5:5-9")

        def test_option_typo(reuse):
            reuse.probe("zoo:digits-cnn", "sklearn-digits?shot=5")
        """,
    )
    failed_with(specs["test_task_typo"], "UnknownTaskError", "'mnist5'", "mnist5k", "sklearn-digits")
    failed_with(specs["test_option_typo"], "UnknownTaskError", "shot", "shots")


def test_missing_checkpoint_fails_with_the_path(pytester: pytest.Pytester, shared_cache: Path) -> None:
    specs = run_specs(
        pytester,
        shared_cache,
        """
        def test_missing_file(reuse):
            reuse.probe("file:weights/finetuned.safetensors?arch=zoo:digits-cnn", "sklearn-digits")
        """,
    )
    # An explicit path that is wrong fails (a typo must not pass a gate as a skip); it says where it looked.
    failed_with(
        specs["test_missing_file"],
        "CheckpointError",
        str(Path("weights/finetuned.safetensors")),
        str(pytester.path),
    )


def test_truncated_or_corrupt_checkpoint(pytester: pytest.Pytester, shared_cache: Path) -> None:
    state = zoo_state_dict(shared_cache)
    from safetensors.torch import save_file

    save_file(state, str(pytester.path / "good.safetensors"))
    whole = (pytester.path / "good.safetensors").read_bytes()
    (pytester.path / "cut.safetensors").write_bytes(whole[: len(whole) // 2])
    torch.save(state, pytester.path / "good.pt")
    whole = (pytester.path / "good.pt").read_bytes()
    (pytester.path / "cut.pt").write_bytes(whole[: len(whole) // 2])
    (pytester.path / "noise.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    specs = run_specs(
        pytester,
        shared_cache,
        """
        def test_cut_safetensors(reuse):
            reuse.probe("file:cut.safetensors?arch=zoo:digits-cnn", "sklearn-digits")

        def test_cut_pickle(reuse):
            reuse.probe("file:cut.pt?arch=zoo:digits-cnn", "sklearn-digits")

        def test_noise(reuse):
            reuse.probe("file:noise.pt?arch=zoo:digits-cnn", "sklearn-digits")

        def test_intact_copy(reuse):
            assert reuse.probe("file:good.pt?arch=zoo:digits-cnn", "sklearn-digits?shots=10").accuracy >= 0.5
        """,
    )
    failed_with(specs["test_cut_safetensors"], "CheckpointError", "cut.safetensors", "truncated")
    failed_with(specs["test_cut_pickle"], "CheckpointError", "cut.pt", "truncated or corrupt")
    failed_with(specs["test_noise"], "CheckpointError", "noise.pt")
    assert specs["test_intact_copy"]["outcome"] == "passed", specs["test_intact_copy"]


def test_state_dict_with_missing_or_unexpected_keys(pytester: pytest.Pytester, shared_cache: Path) -> None:
    state = zoo_state_dict(shared_cache)
    renamed = {("trunk." + k if k.startswith("features.0.") else k): v for k, v in state.items()}
    torch.save(renamed, pytester.path / "renamed.pt")
    specs = run_specs(
        pytester,
        shared_cache,
        """
        def test_renamed_keys(reuse):
            reuse.probe("file:renamed.pt?arch=zoo:digits-cnn", "sklearn-digits")
        """,
    )
    failed_with(
        specs["test_renamed_keys"],
        "CheckpointError",
        "missing keys [features.0.",
        "unexpected keys [trunk.features.0.",
        "?arch=",
    )


def test_pickle_that_runs_code_needs_an_opt_in(pytester: pytest.Pytester, shared_cache: Path) -> None:
    pytester.makepyfile(
        training_objects="""
        class TrainingConfig:
            lr = 0.1
        """
    )
    pytester.syspathinsert()
    import training_objects

    checkpoint = {"state_dict": zoo_state_dict(shared_cache), "config": training_objects.TrainingConfig()}
    torch.save(checkpoint, pytester.path / "with_objects.pt")
    specs = """
        def test_pickle_checkpoint(reuse):
            task = "sklearn-digits?shots=10"
            assert reuse.probe("file:with_objects.pt?arch=zoo:digits-cnn", task).accuracy >= 0.5
        """
    refused = run_specs(pytester, shared_cache, specs)
    failed_with(
        refused["test_pickle_checkpoint"],
        "UnsafeCheckpointError",
        "with_objects.pt",
        "refused",
        "training_objects.TrainingConfig",  # what in the file needs code to load
        "safetensors",
        "--reuse-trust-pickle with_objects.pt",
    )
    trusted = run_specs(pytester, shared_cache, specs, "--reuse-trust-pickle", "with_objects.pt")
    assert trusted["test_pickle_checkpoint"]["outcome"] == "passed", trusted["test_pickle_checkpoint"]


def test_class_count_mismatch_between_head_and_task(pytester: pytest.Pytester, shared_cache: Path) -> None:
    # The one place a trained head meets another task: shift(target=...). Fine-tuning and probing
    # always put a fresh head sized to the task, and file: checkpoints resize theirs to the file's.
    specs = run_specs(
        pytester,
        shared_cache,
        """
        def test_five_class_head_on_ten_classes(reuse):
            reuse.shift("zoo:digits-cnn", "mnist5k:5-9", target="sklearn-digits")
        """,
    )
    failed_with(
        specs["test_five_class_head_on_ten_classes"],
        "TaskError",
        "classes differ",
        "'mnist5k:5-9'",
        "'sklearn-digits'",
        "mnist5k:0-4",
    )


def test_empty_or_single_class_split(pytester: pytest.Pytester, shared_cache: Path) -> None:
    specs = run_specs(
        pytester,
        shared_cache,
        """
        def test_single_class(reuse):
            reuse.probe("zoo:digits-cnn", "mnist5k:5")

        def test_zero_shots(reuse):
            reuse.probe("zoo:digits-cnn", "mnist5k:5-9?shots=0")

        def test_more_shots_than_examples(reuse):
            reuse.probe("zoo:digits-cnn", "sklearn-digits?shots=1000")

        def test_empty_validation_split(reuse):
            reuse.probe("zoo:digits-cnn", "sklearn-digits?val=0")
        """,
    )
    failed_with(specs["test_single_class"], "TaskError", "'5'", "fewer than two classes")
    failed_with(specs["test_zero_shots"], "TaskError", "shots", "at least 1")
    failed_with(specs["test_more_shots_than_examples"], "TaskError", "shots=1000", "lower the shot count")
    failed_with(specs["test_empty_validation_split"], "TaskError", "val=0", "between 0 and 1")


def test_threshold_that_is_not_a_number(pytester: pytest.Pytester, shared_cache: Path) -> None:
    specs = run_specs(
        pytester,
        shared_cache,
        """
        import os

        def test_quoted_threshold(reuse):
            assert reuse.probe("zoo:digits-cnn", "sklearn-digits?shots=10").accuracy >= "0.9"

        def test_unset_threshold(reuse):
            threshold = os.environ.get("NO_SUCH_VAR")  # a gate whose setting was never filled in
            assert reuse.probe("zoo:digits-cnn", "sklearn-digits?shots=10").accuracy >= threshold
        """,
    )
    failed_with(
        specs["test_quoted_threshold"],
        "TypeError",
        "accuracy",
        "'0.9' (str)",
        "a threshold must be a number",
        "accuracy >= 0.9",
    )
    failed_with(specs["test_unset_threshold"], "TypeError", "None (NoneType)", "a threshold must be a number")


def test_dataset_missing_offline_skips_with_the_path(pytester: pytest.Pytester, shared_cache: Path) -> None:
    data_dir = pytester.mkdir("no-data")
    specs = run_specs(
        pytester,
        shared_cache,
        """
        def test_cifar(reuse):
            reuse.probe("zoo:digits-cnn", "cifar10")
        """,
        "--reuse-data-dir",
        str(data_dir),
    )
    skipped_with(specs["test_cifar"], str(data_dir), "--reuse-allow-download", "--reuse-data-dir")


def _write_images(root: Path, mode: str, per_class: int = 10) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, level in (("dark", 40), ("bright", 210)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 20, size=(12, 12, len(mode))), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode).save(root / label / f"{i}.png")


def test_images_of_another_shape_or_channel_count(pytester: pytest.Pytester, shared_cache: Path) -> None:
    _write_images(pytester.path / "rgba", "RGBA")
    pytester.makepyfile(
        odd_models="""
        from torch import nn
        from reusespec.backbones.base import InputSpec

        class ColourNet(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)
                self.fc = nn.Linear(4, 10)

            def forward(self, x):
                return self.fc(self.conv(x).mean(dim=(2, 3)))

        def says_grayscale():
            # The model's first layer takes 3 channels; the InputSpec claims 1.
            return ColourNet(), InputSpec(channels=1, size=(28, 28), mean=(0.5,), std=(0.5,))

        def four_channels():
            return ColourNet(), InputSpec(channels=4, size=(28, 28), mean=(0.5,) * 4, std=(0.5,) * 4)
        """
    )
    pytester.syspathinsert()
    specs = run_specs(
        pytester,
        shared_cache,
        """
        def test_rgba_images_on_a_grayscale_backbone(reuse):
            # Alpha is dropped when the folder is read, RGB becomes gray for the 1-channel zoo.
            assert reuse.probe("zoo:digits-cnn", "folder:rgba?size=16").accuracy >= 0.75

        def test_factory_input_spec_disagrees_with_model(reuse):
            reuse.probe("odd_models:says_grayscale", "sklearn-digits")

        def test_rgb_images_on_a_four_channel_backbone(reuse):
            reuse.probe("odd_models:four_channels", "folder:rgba?size=16")
        """,
    )
    assert specs["test_rgba_images_on_a_grayscale_backbone"]["outcome"] == "passed"
    failed_with(
        specs["test_factory_input_spec_disagrees_with_model"],
        "ReuseSpecError",
        "odd_models:says_grayscale",
        "1, 28, 28)",
        "channels=1",
        "to have 3 channels",
        "make the InputSpec your factory returns match",
    )
    failed_with(specs["test_rgb_images_on_a_four_channel_backbone"], "3 channels", "expects 4")
