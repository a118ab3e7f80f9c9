"""The linear probe (reusespec.probe) on features whose answer is known.

Features are synthetic: well separated Gaussian classes (a probe must be perfect), pure noise
with random labels (a probe must be at chance on held-out data, whatever L2 it picks), and a
logistic model (the probe must reach scikit-learn's optimum of the same objective). The CPU
solver's written-out gradient is checked against autograd, its fits against the torch solver
(the one other devices run), and its heads for independence from the thread count.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, top_k_accuracy_score
from threadpoolctl import threadpool_limits

from reusespec import probe as probe_module
from reusespec.metrics import classification_metrics
from reusespec.probe import DEFAULT_GRID, SOLVER_VERSION, ProbeFit, fit_probe

pytestmark = pytest.mark.usefixtures("one_thread")

Arrays = tuple[np.ndarray, np.ndarray]


def gaussian_classes(n: int, num_classes: int, dim: int, separation: float, seed: int) -> Arrays:
    """Balanced classes, unit-variance Gaussians around class means ``separation`` apart (x sqrt 2)."""
    rng = np.random.default_rng(seed)
    means = separation * np.eye(num_classes, dim)
    labels = np.arange(n) % num_classes
    rng.shuffle(labels)
    return means[labels] + rng.normal(size=(n, dim)), labels


def noise(n: int, num_classes: int, dim: int, seed: int) -> Arrays:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.integers(0, num_classes, n)


def fit(train: Arrays, val: Arrays, num_classes: int, **kwargs: object) -> ProbeFit:
    return fit_probe(train[0], train[1], val[0], val[1], num_classes=num_classes, **kwargs)  # type: ignore[arg-type]


def accuracy(probe: ProbeFit, test: Arrays) -> float:
    return float(np.mean(probe.head.logits(test[0]).argmax(1) == test[1]))


def test_well_separated_classes_are_classified_perfectly() -> None:
    make = lambda n, seed: gaussian_classes(n, num_classes=5, dim=16, separation=6.0, seed=seed)  # noqa: E731
    probe = fit(make(200, 0), make(50, 1), num_classes=5)
    assert accuracy(probe, make(300, 2)) >= 0.99
    assert probe.val_accuracy >= 0.98


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pure_noise_is_at_chance_on_held_out_data(seed: int) -> None:
    """Test labels are independent of everything the probe saw: correct answers are Binomial(n, 1/K)."""
    k, n_test = 4, 400
    probe = fit(noise(300, k, 20, seed), noise(100, k, 20, seed + 100), num_classes=k)
    correct = round(accuracy(probe, noise(n_test, k, 20, seed + 200)) * n_test)
    assert binomtest(correct, n_test, 1 / k).pvalue > 1e-4


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_chosen_l2_is_the_strongest_of_the_best_on_validation(seed: int) -> None:
    """On noise the winner is not always the strongest penalty (validation accuracy is itself noise),
    but it always has the best validation accuracy, and ties go to the stronger penalty."""
    probe = fit(noise(300, 4, 20, seed), noise(100, 4, 20, seed + 100), num_classes=4)
    sweep = dict(probe.sweep)
    assert set(DEFAULT_GRID) <= set(sweep)
    best = max(sweep.values())
    assert probe.val_accuracy == sweep[probe.l2] == best
    assert all(acc < best for l2, acc in sweep.items() if l2 > probe.l2)


def test_stronger_penalty_gives_smaller_weights_on_noise() -> None:
    """The penalised optimum's norm cannot grow with the penalty (a property of the convex objective)."""
    train, val = noise(300, 4, 20, 7), noise(100, 4, 20, 8)
    norms = [
        float(fit(train, val, 4, l2_grid=(l2,), refine=False, refit_on_train_val=False).head.weight.norm())
        for l2 in (1e-4, 1e-2, 1.0, 100.0)
    ]
    assert all(a >= b - 1e-6 for a, b in itertools.pairwise(norms))
    assert norms[-1] < 0.05 * norms[0]


@pytest.mark.parametrize("l2", [1e-3, 1e-1, 1.0])
def test_agrees_with_scikit_learn_at_a_fixed_l2(l2: float) -> None:
    """``mean CE + l2/2 |W|^2`` has the minimiser of LogisticRegression(C=1/(l2 n)) on the same features."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(400, 10)) * rng.uniform(0.5, 3.0, size=10) + rng.normal(size=10)
    y = (x @ rng.normal(size=(10, 3)) + rng.gumbel(size=(400, 3))).argmax(1)
    probe = fit((x, y), (x[:50], y[:50]), 3, l2_grid=(l2,), refine=False, refit_on_train_val=False)
    head = probe.head
    z = (x - head.mean.numpy()) / head.scale.numpy()  # the probe's own standardisation
    reference = LogisticRegression(C=1 / (l2 * len(x)), max_iter=10_000, tol=1e-10).fit(z, y)

    def objective(weight: np.ndarray, bias: np.ndarray) -> float:
        logits = z @ weight.T + bias
        top = logits.max(1, keepdims=True)
        log_norm = np.log(np.exp(logits - top).sum(1)) + top[:, 0]
        return float(np.mean(log_norm - logits[np.arange(len(y)), y]) + 0.5 * l2 * (weight**2).sum())

    ours = head.logits(x).argmax(1)
    assert np.mean(ours == reference.predict(z)) >= 0.99
    assert objective(head.weight.numpy(), head.bias.numpy()) == pytest.approx(
        objective(reference.coef_, reference.intercept_), rel=1e-6
    )


def test_top5_only_with_at_least_five_classes() -> None:
    for k in (4, 6):
        make = lambda n, seed, k=k: gaussian_classes(n, k, dim=8, separation=1.0, seed=seed)  # noqa: E731
        probe = fit(make(240, 0), make(60, 1), num_classes=k)
        test = make(240, 2)
        logits = probe.head.logits(test[0])
        metrics = classification_metrics(test[1], logits)
        if k < 5:
            assert "top5_accuracy" not in metrics
        else:
            expected = top_k_accuracy_score(test[1], logits, k=5, labels=np.arange(k))
            assert metrics["top5_accuracy"] == pytest.approx(expected)
            assert metrics["top5_accuracy"] >= metrics["accuracy"]


def test_macro_f1_is_scikit_learns_including_never_predicted_classes() -> None:
    k = 5
    probe = fit(noise(200, k, 6, 0), noise(60, k, 6, 1), num_classes=k)
    test = noise(150, k, 6, 2)
    logits = probe.head.logits(test[0])
    predictions = logits.argmax(1)
    expected = f1_score(test[1], predictions, average="macro", labels=np.arange(k), zero_division=0)
    assert classification_metrics(test[1], logits)["macro_f1"] == pytest.approx(expected)


def test_fits_are_deterministic() -> None:
    train, val = gaussian_classes(150, 3, 6, 1.5, 0), gaussian_classes(50, 3, 6, 1.5, 1)
    first, second = fit(train, val, 3), fit(train, val, 3)
    assert first.l2 == second.l2 and first.sweep == second.sweep
    assert torch.equal(first.head.weight, second.head.weight)
    assert torch.equal(first.head.bias, second.head.bias)


def test_one_class_is_refused() -> None:
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="two classes"):
        fit_probe(x, np.zeros(10, dtype=int), x, np.zeros(10, dtype=int), num_classes=2)


def _task(seed: int) -> tuple[Arrays, Arrays, Arrays]:
    make = lambda n, s: gaussian_classes(n, 3, dim=5, separation=1.5, seed=seed * 10 + s)  # noqa: E731
    return make(90, 0), make(30, 1), make(150, 2)


@settings(max_examples=12)
@given(seed=st.integers(0, 10_000), order_seed=st.integers(0, 10_000))
def test_accuracy_does_not_depend_on_the_order_of_training_examples(seed: int, order_seed: int) -> None:
    train, val, test = _task(seed)
    order = np.random.default_rng(order_seed).permutation(len(train[1]))
    shuffled = (train[0][order], train[1][order])
    assert accuracy(fit(shuffled, val, 3), test) == pytest.approx(
        accuracy(fit(train, val, 3), test), abs=0.02
    )


@settings(max_examples=12)
@given(seed=st.integers(0, 10_000), relabel=st.permutations([0, 1, 2]))
def test_accuracy_does_not_depend_on_class_names(seed: int, relabel: list[int]) -> None:
    mapping = np.array(relabel)
    train, val, test = _task(seed)
    renamed = [(x, mapping[y]) for x, y in (train, val, test)]
    original = fit(train, val, 3)
    relabelled = fit(renamed[0], renamed[1], 3)
    assert accuracy(relabelled, renamed[2]) == pytest.approx(accuracy(original, test), abs=0.02)
    # The same test points get the same (renamed) answers.
    same = mapping[original.head.logits(test[0]).argmax(1)] == relabelled.head.logits(test[0]).argmax(1)
    assert same.mean() >= 0.98


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_written_out_gradient_matches_autograd(dtype: type[np.floating]) -> None:
    """The CPU solver's loss and gradient are autograd's on the same objective, bias unpenalised."""
    rng = np.random.default_rng(5)
    n, d, k, l2 = 60, 7, 4, 0.3
    z = rng.normal(size=(n, d)).astype(dtype)
    y = rng.integers(0, k, n).astype(np.intp)
    params = rng.normal(size=k * (d + 1)) * 2.0  # large enough that the softmax saturates somewhere
    loss, grad = probe_module._Objective(z, y, k, l2)(params)

    flat = torch.tensor(params, requires_grad=True)
    weight, bias = flat[: k * d].reshape(k, d), flat[k * d :]
    logits = torch.from_numpy(z).double() @ weight.T + bias
    expected = (
        torch.nn.functional.cross_entropy(logits, torch.from_numpy(y).long()) + 0.5 * l2 * weight.pow(2).sum()
    )
    expected.backward()
    assert flat.grad is not None
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    assert loss == pytest.approx(expected.item(), rel=tolerance)
    np.testing.assert_allclose(grad, flat.grad.numpy(), rtol=tolerance * 10, atol=tolerance)


def _logistic_problem(seed: int, n: int = 300, d: int = 8, k: int = 3) -> tuple[Arrays, Arrays, Arrays]:
    rng = np.random.default_rng(seed)
    true_weight = rng.normal(size=(d, k))
    shift = rng.normal(size=d) * 3

    def draw(m: int) -> Arrays:
        x = rng.normal(size=(m, d)) * rng.uniform(0.5, 2.0, size=d)
        return x + shift, (x @ true_weight + rng.gumbel(size=(m, k))).argmax(1)

    return draw(n), draw(n // 3), draw(n)


def test_cpu_solver_agrees_with_the_torch_solver() -> None:
    """Both solvers minimise the same objective under the same protocol: same sweep, same head."""
    train, val, test = _logistic_problem(0)
    kwargs = dict(
        num_classes=3,
        l2_grid=(1e-3, 1e-2, 1e-1, 1.0),
        refine=True,
        refit_on_train_val=True,
        max_iter=500,
        device="cpu",
        dtype=torch.float64,
    )
    cpu = probe_module._fit_probe(*train, *val, use_torch=False, **kwargs)  # type: ignore[arg-type]
    on_torch = probe_module._fit_probe(*train, *val, use_torch=True, **kwargs)  # type: ignore[arg-type]
    assert cpu.l2 == on_torch.l2
    assert [l2 for l2, _ in cpu.sweep] == [l2 for l2, _ in on_torch.sweep]
    assert np.allclose([a for _, a in cpu.sweep], [a for _, a in on_torch.sweep], atol=0.02)
    for name in ("mean", "scale", "weight", "bias"):
        np.testing.assert_allclose(
            getattr(cpu.head, name).numpy(), getattr(on_torch.head, name).numpy(), rtol=1e-3, atol=1e-4
        )
    agree = cpu.head.logits(test[0]).argmax(1) == on_torch.head.logits(test[0]).argmax(1)
    assert agree.mean() >= 0.99


def test_float32_products_give_the_float64_answer() -> None:
    train, val, test = _logistic_problem(1)
    single = fit(train, val, 3, dtype=torch.float32)
    double = fit(train, val, 3, dtype=torch.float64)
    assert single.head.weight.dtype == torch.float32 and double.head.weight.dtype == torch.float64
    assert single.l2 == double.l2
    agree = single.head.logits(test[0]).argmax(1) == double.head.logits(test[0]).argmax(1)
    assert agree.mean() >= 0.99


def _fit_with_threads(threads: int, data: tuple[Arrays, Arrays]) -> ProbeFit:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            return fit(*data, 10, l2_grid=(1e-4, 1e-2, 1.0))
    finally:
        torch.set_num_threads(before)


def test_heads_do_not_depend_on_the_thread_count() -> None:
    """Serial pytest (two threads) and xdist workers (one each) must fit bit-identical heads. The
    problem is big enough for OpenBLAS to thread its products if it were let (it rounds differently
    then)."""
    rng = np.random.default_rng(4)
    means = rng.normal(size=(10, 64))
    labels = rng.integers(0, 10, 2400)
    x = (means[labels] + 2.0 * rng.normal(size=(2400, 64))).astype(np.float32)
    data = ((x[:2000], labels[:2000]), (x[2000:], labels[2000:]))
    one, two = _fit_with_threads(1, data), _fit_with_threads(2, data)
    assert one.sweep == two.sweep and one.l2 == two.l2
    for name in ("mean", "scale", "weight", "bias"):
        assert torch.equal(getattr(one.head, name), getattr(two.head, name)), name
    assert torch.get_num_threads() == 1  # the fixture's setting, restored after each fit


def test_solver_version_is_a_positive_int() -> None:
    assert isinstance(SOLVER_VERSION, int) and SOLVER_VERSION >= 2
