"""Ranking backbones without training: transferability scores on cached features."""


def test_logme_prefers_pretrained(reuse):
    candidates = ["zoo:digits-cnn", "zoo:digits-cnn-random", "zoo:digits-mlp"]
    ranking = reuse.rank(candidates, "mnist5k:5-9", method="logme")
    assert ranking.best == "zoo:digits-cnn"


def test_scores_agree_with_probing(reuse):
    agreement = reuse.rank_agreement(reuse.zoo(), "mnist5k:5-9", method="logme")
    assert agreement.weighted_kendall_tau >= 0.5
