"""Reuse specs over the real zoo: published ImageNet backbones against their random twins on real data.

Needs the asset groups (``python -m reusespec.assets install real-zoo real-data``); every spec skips
with the install command where they are missing. To finish in CI time on 2 CPU cores the specs run
the backbones at 128 px (``?res=128``; the published models take 224-260 px) on fixed 600-image
subsets of the tasks (``:small``); docs/benchmarks.md ("Real zoo") has the measurements behind every
threshold, at these settings.
"""

import pytest

RES = 128
FAMILIES = ["mobilenet-v2", "efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
TASKS = ["elpv:small", "elpv:type-small", "animal-mnist:small"]
ZOO = [f"zoo:{family}-{kind}?res={RES}" for family in FAMILIES for kind in ("imagenet", "random")]


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("family", FAMILIES)
def test_imagenet_backbone_beats_its_random_twin(reuse, family, task):
    pretrained = reuse.probe(f"zoo:{family}-imagenet?res={RES}", task)
    random_twin = reuse.probe(f"zoo:{family}-random?res={RES}", task)
    assert pretrained.accuracy > random_twin.accuracy


@pytest.mark.parametrize(
    ("task", "floor"), [("elpv:small", 0.70), ("elpv:type-small", 0.90), ("animal-mnist:small", 0.75)]
)
def test_imagenet_mobilenet_transfers_to_real_data(reuse, task, floor):
    assert reuse.probe(f"zoo:mobilenet-v2-imagenet?res={RES}", task).accuracy >= floor


@pytest.mark.parametrize("task", TASKS)
def test_logme_ranks_the_real_zoo_like_probing(reuse, task):
    agreement = reuse.rank_agreement(ZOO, task, method="logme")
    assert agreement.weighted_kendall_tau >= 0.3


@pytest.mark.parametrize(
    ("family", "max_mparams", "max_gmacs"),
    # Published parameters (+0.5%); MACs counted at the native resolution (224 / 224 / 240 / 260 px).
    [
        ("mobilenet-v2", 3.51, 0.31),
        ("efficientnet-lite0", 4.68, 0.39),
        ("efficientnet-lite1", 5.45, 0.61),
        ("efficientnet-lite2", 6.13, 0.87),
    ],
)
def test_real_zoo_fits_its_cost_budget(reuse, family, max_mparams, max_gmacs):
    cost = reuse.complexity(f"zoo:{family}-imagenet", latency=False, memory=False)
    assert cost.params <= max_mparams * 1e6
    assert cost.gmacs <= max_gmacs
