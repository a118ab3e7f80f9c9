"""Reuse specs on the embedded demo: the digit zoo, MNIST-sample and scikit-learn digits.

They run offline on any machine: the zoo is pretrained on first use (MNIST-sample digits
0-4) and cached, and both datasets ship inside installed packages.
"""


def test_digits_cnn_transfers_to_unseen_digits(reuse):
    result = reuse.probe("zoo:digits-cnn", "mnist5k:5-9")  # head-only: a linear probe on frozen features
    assert result.accuracy >= 0.90


def test_pretrained_beats_its_random_init_twin(reuse):
    pretrained = reuse.probe("zoo:digits-cnn", "mnist5k:5-9?shots=10")
    random_init = reuse.probe("zoo:digits-cnn-random", "mnist5k:5-9?shots=10")
    assert pretrained.accuracy >= random_init.accuracy + 0.05
