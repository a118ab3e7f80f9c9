"""Reuse beyond the head: partial, full and LP-FT fine-tuning of the demo zoo."""


def test_partial_finetune(reuse):
    r = reuse.finetune("zoo:digits-cnn", "mnist5k:5-9", strategy="partial", unfreeze=1, epochs=5)
    assert r.accuracy >= 0.90


def test_full_finetune(reuse):
    r = reuse.finetune("zoo:digits-cnn", "mnist5k:5-9", strategy="full", epochs=5)
    assert r.accuracy >= 0.90


def test_lp_ft_does_not_forget_the_domain(reuse):
    r = reuse.finetune("zoo:digits-cnn", "sklearn-digits", strategy="lp-ft")
    assert r.accuracy >= reuse.probe("zoo:digits-cnn", "sklearn-digits").accuracy - 0.02
