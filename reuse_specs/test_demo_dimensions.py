"""The three dimensions of reusability: many tasks, domain shift, and cost."""


def test_profile(reuse):
    p = reuse.profile("zoo:digits-cnn", ["mnist5k:5-9", "sklearn-digits", "mnist5k:parity"])
    assert p.min_accuracy >= 0.80 and p.mean_accuracy >= 0.88


def test_noise_robustness(reuse):
    s = reuse.shift("zoo:digits-cnn", "mnist5k:5-9", corruption="gaussian_noise", severity=1)
    assert s.relative_drop <= 0.10


def test_corruption_suite(reuse):
    suite = reuse.shift_suite("zoo:digits-cnn", "mnist5k:5-9", severities=(1, 3, 5))
    assert suite.mean_accuracy >= 0.60


def test_demo_budget(reuse):
    c = reuse.complexity("zoo:digits-cnn")
    assert c.params <= 50_000 and c.gmacs <= 0.01


def test_resnet50_budget_offline(reuse):
    # Counting needs no weights: this passes on a machine without ResNet-50's checkpoint.
    c = reuse.complexity("torchvision:resnet50", input_size=(3, 224, 224), latency=False)
    assert c.params <= 26e6 and c.gmacs <= 4.2
