"""Overfitting statistics: PSR, DSR (Bailey & López de Prado 2012/2014), PBO (CSCV, 2015) and the
DSR's trial clusters (López de Prado 2019: N = K clusters, V[SR] over their representatives).

Sharpe ratios here are **per observation** (not annualized) unless a function says
otherwise; divide an annualized Sharpe by √(periods per year) to convert.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from coinswarm.errors import ConfigError


def _sps():
    """``scipy.stats``, imported on first use (it takes about half a second to load)."""
    from scipy import stats

    return stats

EULER_GAMMA = 0.5772156649015329
ROUND_OFF = 64 * np.finfo(np.float64).eps  # a spread below this × |mean| is round-off, not variation


def _spread(r: np.ndarray) -> float:
    """Sample standard deviation (ddof 1) of finite ``r``, 0 when it is only round-off: a
    constant series whose mean is inexact in binary (0.001 repeated) has a std of ~1e-19,
    which would give it a Sharpe of ~1e16 instead of none."""
    std = float(r.std(ddof=1))
    return 0.0 if std <= ROUND_OFF * abs(float(r.mean())) else std


def sample_moments(returns: np.ndarray) -> tuple[float, float, float, int]:
    """(Sharpe per observation, skewness, kurtosis (non-excess), n) of a return series."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    n = r.size
    if n < 3:
        return math.nan, math.nan, math.nan, n
    std = _spread(r)
    if std == 0:
        return math.nan, 0.0, 3.0, n
    sharpe = r.mean() / std
    skew = float(_sps().skew(r, bias=False))
    kurt = float(_sps().kurtosis(r, fisher=False, bias=False))
    return float(sharpe), skew, kurt, n


def probabilistic_sharpe_ratio(
    sharpe: float, n: int, skew: float = 0.0, kurtosis: float = 3.0, benchmark: float = 0.0
) -> float:
    """Probability that the true Sharpe exceeds ``benchmark`` (Bailey & López de Prado 2012).

    PSR = Φ((SR − SR*)·√(n − 1) / √(1 − γ₃·SR + (γ₄ − 1)/4·SR²)), all per observation.
    """
    if not (np.isfinite(sharpe) and n > 1):
        return math.nan
    denom = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe**2
    if denom <= 0:
        return math.nan
    return float(_sps().norm.cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(denom)))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum Sharpe of ``n_trials`` unskilled trials (the DSR benchmark SR₀)."""
    if n_trials < 1:
        raise ConfigError("n_trials must be ≥ 1")
    if n_trials == 1 or sharpe_variance <= 0:
        return 0.0
    z1 = _sps().norm.ppf(1.0 - 1.0 / n_trials)
    z2 = _sps().norm.ppf(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe_ratio(
    sharpe: float, n: int, n_trials: int, sharpe_variance: float, skew: float = 0.0,
    kurtosis: float = 3.0,
) -> float:
    """Deflated Sharpe Ratio (Bailey & López de Prado 2014): PSR against SR₀ of ``n_trials``.

    ``sharpe_variance`` is V[SR], the variance of the trials' per-observation Sharpe ratios: with
    ``n_trials`` = K clusters of correlated trials, :meth:`coinswarm.backtest.ledger.TrialLedger.summary`
    gives the larger of the K cluster representatives' variance (:func:`trial_clusters`,
    :func:`cluster_returns`, :func:`sharpe_variance`) and every distinct trial's, so that
    near-copies of a trial neither add to N nor shrink V[SR].
    """
    benchmark = expected_max_sharpe(n_trials, sharpe_variance)
    return probabilistic_sharpe_ratio(sharpe, n, skew, kurtosis, benchmark)


def _sharpe_from_sums(total: np.ndarray, squares: np.ndarray, count: np.ndarray) -> np.ndarray:
    mean = total / count
    var = (squares - total * mean) / (count - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = mean / np.sqrt(var)
    return np.where(var > 0, out, -np.inf)


def probability_of_backtest_overfitting(
    returns: np.ndarray, n_splits: int = 16, max_combinations: int = 12_870, seed: int = 0
) -> float:
    """PBO by combinatorially symmetric cross-validation (Bailey et al. 2015).

    Parameters
    ----------
    returns : ndarray, shape (T, N)
        Per-period returns of N trials (parameter combinations) over the same T periods.
    n_splits : int
        Even number S of row blocks; every choice of S/2 blocks is one in-sample set.
    max_combinations : int
        Cap on the C(S, S/2) splits evaluated (a seeded random subset beyond it).
    seed : int
        Seed of that subset.

    Returns
    -------
    float
        Fraction of splits where the in-sample best trial ranks at or below the
        out-of-sample median (logit ≤ 0). NaN with fewer than 2 trials.
    """
    m = np.asarray(returns, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        return math.nan
    if n_splits % 2 or n_splits < 2:
        raise ConfigError("n_splits must be an even number ≥ 2")
    m = np.nan_to_num(m, nan=0.0)
    blocks = np.array_split(np.arange(m.shape[0]), n_splits)
    if min(len(b) for b in blocks) < 2:
        raise ConfigError(f"{m.shape[0]} periods are too few for {n_splits} splits")
    block_sum = np.stack([m[b].sum(axis=0) for b in blocks])
    block_sq = np.stack([(m[b] ** 2).sum(axis=0) for b in blocks])
    block_len = np.array([len(b) for b in blocks], dtype=np.float64)
    splits = list(itertools.combinations(range(n_splits), n_splits // 2))
    if len(splits) > max_combinations:
        rng = np.random.default_rng(seed)
        splits = [splits[i] for i in rng.choice(len(splits), max_combinations, replace=False)]
    chosen = np.zeros((len(splits), n_splits))
    for k, split in enumerate(splits):
        chosen[k, list(split)] = 1.0
    other = 1.0 - chosen
    is_sharpe = _sharpe_from_sums(chosen @ block_sum, chosen @ block_sq, (chosen @ block_len)[:, None])
    oos_sharpe = _sharpe_from_sums(other @ block_sum, other @ block_sq, (other @ block_len)[:, None])
    best = np.argmax(is_sharpe, axis=1)
    best_oos = oos_sharpe[np.arange(len(splits)), best][:, None]
    rank = (oos_sharpe < best_oos).sum(axis=1) + ((oos_sharpe == best_oos).sum(axis=1) + 1) / 2.0
    omega = rank / (m.shape[1] + 1.0)
    logit = np.log(omega / (1.0 - omega))
    return float(np.mean(logit <= 0.0))


# -- honest accounting: excess returns, autocorrelation, effective trial count ---------------

DAYS_PER_YEAR = 365.0


def daily_rate(annual: float, periods: float = DAYS_PER_YEAR) -> float:
    """The per-period rate that compounds to ``annual`` over a year of ``periods``:
    ``(1 + annual)^(1/periods) − 1`` — what :func:`excess_returns` subtracts and what
    :class:`coinswarm.Costs` credits on idle cash, so a book of idle cash has zero excess return."""
    return (1.0 + float(annual)) ** (1.0 / periods) - 1.0


def excess_returns(returns: np.ndarray, cash_rate: float = 0.0, periods: float = DAYS_PER_YEAR) -> np.ndarray:
    """Returns in excess of a cash rate: ``r − ((1 + cash_rate)^(1/periods) − 1)``.

    Parameters
    ----------
    returns : array
        Per-period simple returns (daily by default).
    cash_rate : float
        Annual cash (risk-free) rate as a fraction, −0.5 < cash_rate < 1 (0.04 = 4 % a year).
    periods : float
        Periods per year (365 for daily crypto returns).
    """
    if isinstance(cash_rate, bool) or not isinstance(cash_rate, int | float | np.floating) \
            or not math.isfinite(cash_rate) or not -0.5 < cash_rate < 1.0:
        raise ConfigError(f"cash_rate must be an annual fraction in (-0.5, 1), not {cash_rate!r}")
    return np.asarray(returns, dtype=np.float64) - daily_rate(cash_rate, periods)


def annualized_sharpe(returns: np.ndarray, periods: float = DAYS_PER_YEAR) -> float:
    """Mean / standard deviation (ddof 1) × √periods of the finite returns (NaN if undefined)."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    std = _spread(r) if r.size >= 3 else 0.0
    if not std > 0:
        return math.nan
    return float(r.mean() / std * math.sqrt(periods))


def autocorrelations(returns: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelations ρ₁ … ρ_max_lag of the finite returns (zeros when undefined)."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)] - np.nanmean(r) if np.isfinite(r).any() else np.zeros(0)
    denom = float((r * r).sum())
    out = np.zeros(max_lag)
    if r.size <= max_lag + 1 or denom <= 0:
        return out
    for k in range(1, max_lag + 1):
        out[k - 1] = float((r[k:] * r[:-k]).sum()) / denom
    return out


def lo_adjusted_sharpe(returns: np.ndarray, periods: float = DAYS_PER_YEAR, max_lag: int = 10) -> float:
    """Annualized Sharpe corrected for serial correlation (Lo 2002, eq. 17).

    ``SR_q = SR · q / √(q + 2 Σ_{k=1}^{q−1} (q − k) ρ_k)`` with q = ``periods``; autocorrelations
    beyond ``max_lag`` are taken as 0 (their estimates are mostly noise). Positive
    autocorrelation (smoothed returns, as in a carry trade) lowers the Sharpe below the
    naive √q scaling; negative raises it.
    """
    sharpe = annualized_sharpe(returns, 1.0)
    if not math.isfinite(sharpe):
        return math.nan
    q = float(periods)
    rho = autocorrelations(returns, int(min(max_lag, q - 1)))
    k = np.arange(1, rho.size + 1, dtype=np.float64)
    denom = q + 2.0 * float(((q - k) * rho).sum())
    if denom <= 0:
        return math.nan
    return float(sharpe * q / math.sqrt(denom))


def trial_clusters(returns: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Cluster label (0 … K − 1) of each trial: groups of correlated trials (López de Prado 2019).

    Trials (columns of ``returns``, aligned periods, NaN where a trial has no value) are
    clustered by average linkage on the distance √((1 − ρ)/2); trials more correlated than
    ``threshold`` end up in one cluster (deflate by independent trials, not by near-copies).
    Columns with fewer than 30 shared finite periods with the others are their own cluster.
    Labels are numbered in order of first appearance among the columns.
    """
    m = np.asarray(returns, dtype=np.float64)
    if m.ndim != 2:
        raise ConfigError(f"returns must be a 2-D periods × trials array, not {m.ndim}-D")
    if m.shape[1] < 2:
        return np.zeros(m.shape[1], dtype=np.int64)
    import pandas as pd
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    corr = pd.DataFrame(m).corr(min_periods=30).to_numpy()
    corr = np.where(np.isfinite(corr), corr, 0.0)
    np.fill_diagonal(corr, 1.0)
    dist = np.sqrt(np.clip((1.0 - corr) / 2.0, 0.0, 1.0))
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    raw = fcluster(tree, t=math.sqrt((1.0 - threshold) / 2.0), criterion="distance")
    return _first_seen(raw)


def _first_seen(labels: np.ndarray) -> np.ndarray:
    """``labels`` renumbered 0, 1, … in the order each first appears."""
    order: dict[int, int] = {}
    return np.array([order.setdefault(int(v), len(order)) for v in labels], dtype=np.int64)


def effective_trials(returns: np.ndarray, threshold: float = 0.5) -> int:
    """Number of clusters of correlated trials (the DSR's effective N): :func:`trial_clusters` counted."""
    m = np.asarray(returns, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] == 0:
        return 0
    return int(np.unique(trial_clusters(m, threshold)).size)


def cluster_returns(returns: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One representative return series per cluster: the inverse-variance weighted average of its members.

    López de Prado & Lewis (2019) replace each cluster of trials by the inverse-variance portfolio of
    its members (the cluster's covariance is too ill-conditioned for minimum variance). Trials here
    cover different dates, so the average is taken on each period over the members that have a
    value there, their weights ``1/σᵢ²`` (σᵢ over each member's own finite values) renormalised to
    sum to 1 on that period; a member without a spread (fewer than 3 values, or constant) has no
    variance to weight by and is left out. A period where no weighted member has a value is NaN.

    Parameters
    ----------
    returns : ndarray, shape (T, N)
        Per-period returns of N trials, NaN where a trial has none.
    labels : ndarray, shape (N,)
        Cluster of each trial, 0 … K − 1 (:func:`trial_clusters`).

    Returns
    -------
    ndarray, shape (T, K)
    """
    m = np.asarray(returns, dtype=np.float64)
    labels = np.asarray(labels)
    if m.ndim != 2 or labels.shape != (m.shape[1],):
        raise ConfigError(f"labels must give one cluster per trial column: {labels.shape} for {m.shape}")
    weights = np.zeros(m.shape[1])
    for j in range(m.shape[1]):
        r = m[:, j][np.isfinite(m[:, j])]
        spread = _spread(r) if r.size > 2 else 0.0
        weights[j] = 1.0 / spread**2 if spread > 0 else 0.0
    finite = np.isfinite(m) & (weights > 0)
    out = np.full((m.shape[0], int(labels.max()) + 1 if labels.size else 0), np.nan)
    for k in range(out.shape[1]):
        members = labels == k
        w = np.where(finite[:, members], weights[members], 0.0)
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, k] = np.where(total > 0, (w * np.nan_to_num(m[:, members])).sum(axis=1) / total, np.nan)
    return out


def sharpe_variance(returns: np.ndarray) -> float:
    """Variance (ddof 1) of the per-observation Sharpe ratios of ``returns``' columns (NaN-aware).

    Columns with fewer than 3 finite values or no spread have no Sharpe and are left out; 0.0
    with fewer than two Sharpes (one trial, or one cluster: the DSR is then the PSR).
    """
    sharpes = []
    for column in np.asarray(returns, dtype=np.float64).T:
        r = column[np.isfinite(column)]
        spread = _spread(r) if r.size > 2 else 0.0
        if spread > 0:
            sharpes.append(r.mean() / spread)
    return float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
