"""ImageNet backbones on CIFAR: run where the weights and data are on the machine, skip elsewhere.

Put the torchvision weights in $TORCH_HOME/hub/checkpoints and CIFAR in the data directory
(--reuse-data-dir or $REUSESPEC_DATA_DIR), or pass --reuse-allow-download.
Thresholds are for a linear probe at 224 px on the full training set (docs/reference.md,
"Realistic thresholds").
"""

import pytest


@pytest.mark.parametrize("backbone", ["torchvision:resnet18", "torchvision:resnet50"])
def test_cifar100_head_only(reuse, backbone):
    assert reuse.probe(backbone, "cifar100").accuracy >= 0.60


def test_resnet50_cifar10_head_only(reuse):
    assert reuse.probe("torchvision:resnet50", "cifar10").accuracy >= 0.85
