"""Linear probes: ridge against np.linalg.lstsq, logistic against its optimality condition and a hand-solved case,
scores pinned by hand, the split by episode, and probes that find a planted signal and refuse to find noise."""

from __future__ import annotations

import numpy as np
import pytest

from robonav.eval.linear_probe import (
    accuracy,
    bootstrap_scores,
    fit_logistic,
    fit_ridge,
    predict_logistic,
    probe_score,
    r2_score,
    select_alpha,
    split_episodes,
    standardize,
)


def test_split_by_episode_is_disjoint_complete_and_seeded():
    train, test = split_episodes(13, test_fraction=0.3, seed=4)
    assert len(test) == 4 and len(train) == 9  # round(13 * 0.3) = 4
    assert np.intersect1d(train, test).size == 0
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(13))
    again = split_episodes(13, test_fraction=0.3, seed=4)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], test)
    assert not np.array_equal(split_episodes(13, 0.3, seed=5)[1], test)
    # Never an empty side: 2 episodes at any fraction give 1 + 1.
    assert [len(s) for s in split_episodes(2, 0.01)] == [1, 1]
    assert [len(s) for s in split_episodes(2, 0.99)] == [1, 1]
    with pytest.raises(ValueError, match="at least 2 episodes"):
        split_episodes(1)


def test_standardize_uses_training_statistics_and_leaves_constant_columns_unscaled():
    x_tr = np.array([[1.0, 5.0], [3.0, 5.0]])  # column 0: mean 2, std 1; column 1 constant
    a, b = standardize(x_tr, np.array([[4.0, 6.0]]))
    assert np.allclose(a, [[-1.0, 0.0], [1.0, 0.0]])
    assert np.allclose(b, [[2.0, 1.0]])


@pytest.mark.parametrize("n,f,k", [(37, 5, 1), (101, 13, 3)])
def test_ridge_without_penalty_is_least_squares_with_an_intercept(n, f, k):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, f)) * rng.uniform(0.1, 10, size=f) + rng.normal(size=f)
    y = rng.normal(size=(n, k))
    ((w, b),) = fit_ridge(x, y, [0.0])
    ref = np.linalg.lstsq(np.hstack([x, np.ones((n, 1))]), y, rcond=None)[0]  # [f + 1, k], intercept last
    assert np.allclose(w, ref[:-1], atol=1e-8) and np.allclose(b, ref[-1], atol=1e-8)


def test_ridge_matches_lstsq_on_the_augmented_system_for_every_alpha():
    rng = np.random.default_rng(3)
    n, f = 41, 7
    x, y = rng.normal(size=(n, f)), rng.normal(size=(n, 2))
    alphas = [0.5, 10.0, 1e3]
    for alpha, (w, b) in zip(alphas, fit_ridge(x, y, alphas)):
        xc, yc = x - x.mean(0), y - y.mean(0)  # the intercept is not penalised: solve on centred data
        aug_x = np.vstack([xc, np.sqrt(alpha) * np.eye(f)])
        aug_y = np.vstack([yc, np.zeros((f, 2))])
        ref = np.linalg.lstsq(aug_x, aug_y, rcond=None)[0]
        assert np.allclose(w, ref, atol=1e-9)
        assert np.allclose(b, y.mean(0) - x.mean(0) @ ref, atol=1e-9)


def test_logistic_solves_a_hand_made_symmetric_case():
    # x = [-1, 1], y = [0, 1], alpha = 1: by symmetry b = 0, and the gradient -sigma(-w) + (sigma(w) - 1) + w = 0
    # gives w = 2 sigma(-w) = 2 / (1 + e^w); by bisection w = 0.674832...
    w, b = fit_logistic(np.array([[-1.0], [1.0]]), np.array([0, 1]), alpha=1.0)
    assert abs(b) < 1e-9
    assert w[0] == pytest.approx(0.674832, abs=1e-6)
    assert w[0] == pytest.approx(2.0 / (1.0 + np.exp(w[0])), abs=1e-9)


def test_logistic_meets_its_optimality_condition():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 6))
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0, 0.0, 1.0]) + 0.3 + rng.normal(size=200) > 0).astype(np.int64)
    alpha = 3.0
    w, b = fit_logistic(x, y, alpha)
    p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
    assert np.allclose(x.T @ (p - y) + alpha * w, 0.0, atol=1e-6)  # gradient of the penalised loss in w
    assert abs(float(np.sum(p - y))) < 1e-5  # and in the unpenalised intercept
    # A warm start lands on the same optimum.
    w2, b2 = fit_logistic(x, y, alpha, init=fit_logistic(x, y, 100.0))
    assert np.allclose(w2, w, atol=1e-6) and b2 == pytest.approx(b, abs=1e-6)
    assert accuracy(y, predict_logistic(x, w, b)) > 0.8


def test_scores_pinned_by_hand():
    # SST = (1-2)^2 + 0 + (3-2)^2 = 2, SSE = (3-4)^2 = 1: R^2 = 1 - 1/2.
    assert r2_score(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])) == pytest.approx(0.5)
    # Two outputs pooled: SST = 2 + 8, SSE = 1 + 0: R^2 = 0.9.
    y = np.array([[1.0, 0.0], [2.0, 2.0], [3.0, 4.0]])
    assert r2_score(y, y + np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])) == pytest.approx(0.9)
    assert np.isnan(r2_score(np.ones(4), np.zeros(4)))
    assert accuracy(np.array([1, 0, 1, 1]), np.array([1, 1, 1, 0])) == 0.5


def _episodes(n_eps: int, ticks: int, f: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_eps * ticks, f)) + np.repeat(rng.normal(size=(n_eps, f)), ticks, axis=0)
    return x, np.repeat(np.arange(n_eps), ticks)


def test_alpha_selection_follows_the_signal():
    x, groups = _episodes(12, 30, 8, seed=1)
    signal = x @ np.arange(1.0, 9.0)
    assert select_alpha(x, signal, groups, "regression") <= 1.0  # an exact linear target wants no shrinkage
    noise = np.random.default_rng(2).normal(size=len(x))
    assert select_alpha(x, noise, groups, "regression") >= 1e4  # pure noise: shrink to the mean


def test_probe_finds_a_planted_signal_and_no_signal_in_noise():
    x, groups = _episodes(20, 40, 10, seed=5)
    train, test = split_episodes(20, 0.3, seed=0)
    w = np.random.default_rng(6).normal(size=10)
    good = probe_score(x, x @ w + 0.05 * np.random.default_rng(7).normal(size=len(x)), groups, train, test,
                       "regression")
    assert good.score > 0.99 and good.test_rows == 6 * 40 and good.train_rows == 14 * 40
    bad = probe_score(x, np.random.default_rng(8).normal(size=len(x)), groups, train, test, "regression")
    assert bad.score < 0.05
    label = (x[:, 0] - x[:, 3] > 0).astype(np.int64)
    cls = probe_score(x, label, groups, train, test, "classification")
    assert cls.score > 0.9
    with pytest.raises(ValueError, match="rows in both splits"):
        probe_score(x, label, groups, train, np.array([99]), "classification")
    with pytest.raises(ValueError, match="regression' or 'classification"):
        probe_score(x, label, groups, train, test, "ranking")


def test_bootstrap_resamples_whole_episodes_and_pairs_the_sets():
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    groups = np.array([0, 0, 1, 1, 2, 2])
    boot = bootstrap_scores(y, groups, {"exact": y.copy(), "same": y.copy(), "shifted": y + 1.0}, "regression",
                            resamples=50, seed=0)
    assert boot.shape == (50, 3)
    assert np.allclose(boot[:, 0], 1.0)
    assert np.array_equal(boot[:, 0], boot[:, 1])  # identical predictions, identical draws
    assert (boot[:, 2][np.isfinite(boot[:, 2])] < 1.0).all()
