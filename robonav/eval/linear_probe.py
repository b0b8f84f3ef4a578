"""Linear probes in NumPy: ridge regression and L2 logistic regression, fitted and judged by episode.

A probe asks whether a quantity can be read linearly from a set of features (a policy's LSTM state, the
observation of the moment). Samples of one episode are strongly correlated, so every split is by episode:
`split_episodes` holds out whole episodes, the penalty is chosen by cross-validation over folds of training
episodes (`select_alpha`), and the score (R^2, or accuracy for a yes/no target) is measured once on the held-out
episodes, with a percentile interval from resampling those episodes (`bootstrap_scores`).

    train, test = split_episodes(n_episodes, test_fraction=0.3, seed=0)
    score = probe_score(features, target, episode_of_row, train, test, kind="regression")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ALPHAS", "ProbeScore", "accuracy", "bootstrap_scores", "fit_logistic", "fit_ridge", "predict_logistic",
           "probe_score", "r2_score", "select_alpha", "split_episodes", "standardize"]

ALPHAS = (1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6)
"""L2 penalties tried (on standardised features, loss summed over samples), chosen by cross-validation."""
STD_FLOOR = 1e-6
"""Features whose training standard deviation is below this are constant: scaled by 1, not blown up."""


def split_episodes(n: int, test_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) episode indices: a seeded permutation of range(n) cut at ``test_fraction``; both non-empty,
    disjoint and sorted. Needs n >= 2."""
    if n < 2:
        raise ValueError(f"a split by episode needs at least 2 episodes, got {n}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    k = min(max(1, round(n * test_fraction)), n - 1)
    return np.sort(perm[k:]), np.sort(perm[:k])


def standardize(x_train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Centre and scale every array by ``x_train``'s column mean and standard deviation (constant columns are
    only centred); returns [x_train', *others'] as float64."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std < STD_FLOOR, 1.0, std)
    return [(np.asarray(a, dtype=np.float64) - mean) / std for a in (x_train, *others)]


def fit_ridge(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ridge fits of y [n, k] on x [n, f] with an unpenalised intercept, one per alpha: [(w [f, k], b [k])].

    Minimises ||y - x w - b||^2 + alpha ||w||^2. One eigendecomposition of the centred Gram matrix serves every
    alpha: w = V diag(1 / (s + alpha)) V^T xc^T yc."""
    y2 = y.reshape(len(y), -1)
    xm, ym = x.mean(axis=0), y2.mean(axis=0)
    xc, yc = x - xm, y2 - ym
    s, v = np.linalg.eigh(xc.T @ xc)  # [f], [f, f]
    s = np.maximum(s, 0.0)
    proj = v.T @ (xc.T @ yc)  # [f, k]
    fits = []
    for a in alphas:
        w = v @ (proj / (s + a)[:, None])
        fits.append((w, ym - xm @ w))
    return fits


def fit_logistic(x: np.ndarray, y: np.ndarray, alpha: float, iters: int = 50, tol: float = 1e-6,
                 init: tuple[np.ndarray, float] | None = None) -> tuple[np.ndarray, float]:
    """L2 logistic regression of y in {0, 1} [n] on x [n, f] by Newton's method: (w [f], b).

    Minimises sum(log(1 + exp(-s_i (x_i w + b)))) + alpha/2 ||w||^2 with s_i = 2 y_i - 1; b is not penalised.
    Stops when no coefficient moves by more than ``tol``; ``init`` warm-starts from another fit."""
    n, f = x.shape
    xa = np.hstack([x, np.ones((n, 1))])  # [n, f + 1], intercept last
    reg = np.full(f + 1, float(alpha))
    reg[-1] = 1e-8  # keeps the Hessian invertible when one class is absent; b is effectively free
    theta = np.zeros(f + 1) if init is None else np.append(init[0], init[1])
    yf = np.asarray(y, dtype=np.float64)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(xa @ theta)))
        grad = xa.T @ (p - yf) + reg * theta
        hess = (xa * (p * (1.0 - p))[:, None]).T @ xa + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if float(np.abs(step).max()) < tol:
            break
    return theta[:-1], float(theta[-1])


def predict_logistic(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    """Predicted class (0 or 1) per row: 1 where x w + b > 0."""
    return (x @ w + b > 0).astype(np.int64)


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """Coefficient of determination, pooled over outputs: 1 - sum of squared errors / sum of squares about the
    mean of ``y`` (per output). A constant ``y`` gives nan."""
    y2, p2 = y.reshape(len(y), -1), pred.reshape(len(pred), -1)
    sst = float(((y2 - y2.mean(axis=0)) ** 2).sum())
    if sst <= 0.0:
        return float("nan")
    return 1.0 - float(((y2 - p2) ** 2).sum()) / sst


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Fraction of rows where the predicted class is the true one."""
    return float(np.mean(np.asarray(y).reshape(-1) == np.asarray(pred).reshape(-1)))


def _fit_predict(kind: str, x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray,
                 alphas: Sequence[float]) -> list[np.ndarray]:
    """Predictions on x_te for each alpha (features already standardised)."""
    if kind == "regression":
        return [x_te @ w + b for w, b in fit_ridge(x_tr, y_tr, alphas)]
    preds: dict[float, np.ndarray] = {}
    fit = None
    for a in sorted(alphas, reverse=True):  # strongest penalty first, each fit warm-starting the next
        fit = fit_logistic(x_tr, y_tr, a, init=fit)
        preds[a] = predict_logistic(x_te, *fit)
    return [preds[a] for a in alphas]


def _score(kind: str) -> Callable[[np.ndarray, np.ndarray], float]:
    if kind not in ("regression", "classification"):
        raise ValueError(f"probe kind must be 'regression' or 'classification', got {kind!r}")
    return r2_score if kind == "regression" else accuracy


def select_alpha(x: np.ndarray, y: np.ndarray, groups: np.ndarray, kind: str, folds: int = 3,
                 alphas: Sequence[float] = ALPHAS, seed: int = 0) -> float:
    """The alpha of ``alphas`` with the best mean score over ``folds`` folds of whole groups (episodes).

    ``x`` is standardised per fold on its training rows. Fewer groups than folds: as many folds as groups."""
    score = _score(kind)
    uniq = np.unique(groups)
    k = min(folds, len(uniq))
    if k < 2:
        return float(alphas[len(alphas) // 2])
    fold_of = dict(zip(np.random.default_rng(seed).permutation(uniq).tolist(), np.arange(len(uniq)) % k))
    fold = np.array([fold_of[g] for g in groups.tolist()])
    totals = np.zeros(len(alphas))
    for f in range(k):
        tr, te = fold != f, fold == f
        x_tr, x_te = standardize(x[tr], x[te])
        for j, pred in enumerate(_fit_predict(kind, x_tr, y[tr], x_te, alphas)):
            s = score(y[te], pred)
            totals[j] += s if np.isfinite(s) else -np.inf
    return float(alphas[int(np.argmax(totals))])


@dataclass
class ProbeScore:
    """One probe's held-out result."""

    score: float
    """R^2 (regression) or accuracy (classification) on the held-out episodes."""
    alpha: float
    """Penalty chosen by cross-validation on the training episodes."""
    train_rows: int
    test_rows: int
    predictions: np.ndarray = field(repr=False)
    """Held-out predictions, row-aligned with the held-out targets (for paired intervals)."""


def probe_score(x: np.ndarray, y: np.ndarray, groups: np.ndarray, train: np.ndarray, test: np.ndarray,
                kind: str, alphas: Sequence[float] = ALPHAS, seed: int = 0) -> ProbeScore:
    """Fit on the rows whose group (episode) is in ``train``, choosing alpha by grouped cross-validation there,
    and score on the rows whose group is in ``test``."""
    score = _score(kind)
    tr, te = np.isin(groups, train), np.isin(groups, test)
    if not tr.any() or not te.any():
        raise ValueError(f"probe needs rows in both splits, got {int(tr.sum())} training and {int(te.sum())} "
                         "held-out rows")
    alpha = select_alpha(x[tr], y[tr], groups[tr], kind, alphas=alphas, seed=seed)
    x_tr, x_te = standardize(x[tr], x[te])
    pred = _fit_predict(kind, x_tr, y[tr], x_te, [alpha])[0]
    return ProbeScore(score(y[te], pred), alpha, int(tr.sum()), int(te.sum()), pred)


def bootstrap_scores(y: np.ndarray, groups: np.ndarray, predictions: dict[str, np.ndarray], kind: str,
                     resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Scores [resamples, len(predictions)] on held-out episodes drawn with replacement (the same draw for every
    feature set, so differences are paired). ``y``, ``groups`` and each prediction are the held-out rows."""
    score = _score(kind)
    uniq = np.unique(groups)
    rows = [np.flatnonzero(groups == g) for g in uniq]
    rng = np.random.default_rng(seed)
    preds = list(predictions.values())
    out = np.empty((resamples, len(preds)))
    for r in range(resamples):
        idx = np.concatenate([rows[i] for i in rng.integers(0, len(uniq), len(uniq))])
        out[r] = [score(y[idx], p[idx]) for p in preds]
    return out
