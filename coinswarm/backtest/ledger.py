"""The trial ledger: every configuration ever evaluated, so the DSR deflates for the whole search.

A walk-forward that reports "10 trials" for its 10 folds corrects for no search at all: the
configurations looked at while building it (other parameters, agent sets, universes, window
lengths, abandoned variants) are the real trial count. :class:`TrialLedger` appends one JSON
line per evaluated configuration to a file (``research/trials/*.jsonl`` by convention) with its
daily out-of-sample returns, so that

* ``n_trials`` is the number of distinct configurations recorded (configurations with the very
  same daily record count once),
* ``n_effective`` (K) clusters correlated trials (:func:`coinswarm.stats.trial_clusters`), and
* the DSR's benchmark uses V[SR], the larger of two variances of per-day Sharpe ratios: over the
  K clusters' representatives (each the inverse-variance weighted average of its members' daily
  returns; López de Prado 2019, López de Prado & Lewis 2019: a near-copy of a trial adds no
  cluster and barely moves it) and over every distinct trial (which keeps the spread between
  strategies that one cluster holds, but shrinks with every near-copy). The larger deflates more:
  near-copies cannot lower V[SR] below the clusters' figure, and a thin clusters' figure (few
  clusters, e.g. one per period) cannot lower it below the trials' spread.

A configuration evaluated twice (same strategy, parameters, universe, window, costs and
variant) is one trial: its id is a digest of that configuration.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from coinswarm.errors import ConfigError

#: Environment variable naming the default ledger file of :func:`coinswarm.walk_forward`.
LEDGER_ENV = "COINSWARM_TRIAL_LEDGER"


def _canonical(value):
    """JSON-safe, order-stable form of a configuration value."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def trial_id(config: dict) -> str:
    """A digest of a configuration (16 hex digits): equal configurations share it."""
    text = json.dumps(_canonical(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TrialLedger:
    """An append-only JSON-lines file of evaluated configurations and their daily returns.

    Parameters
    ----------
    path : str or Path
        The ``.jsonl`` file (created with its folder on the first :meth:`record`).
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.suffix != ".jsonl":
            raise ConfigError(f"a trial ledger is a .jsonl file, not {str(path)!r}")
        if path.exists() and not path.is_file():
            raise ConfigError(f"trial ledger {str(path)!r} exists and is not a file")
        self.path = path

    def record(self, config: dict, daily_returns: pd.Series, *, source: str = "") -> str:
        """Append one evaluated configuration; returns its trial id.

        Parameters
        ----------
        config : dict
            Everything that defines the trial (strategy, parameters, universe, data window,
            fold lengths, fees, variant). Its digest is the trial id.
        daily_returns : Series
            Daily net returns on a UTC ``DatetimeIndex`` (the trial's out-of-sample record).
        source : str
            Where it was evaluated (``"walk_forward"``, ``"evidence"``, a notebook …).
        """
        if not isinstance(config, dict) or not config:
            raise ConfigError("a trial's config must be a non-empty dict")
        if not isinstance(daily_returns, pd.Series) or not isinstance(daily_returns.index, pd.DatetimeIndex):
            raise ConfigError("daily_returns must be a Series on a DatetimeIndex")
        values = daily_returns.to_numpy(dtype=np.float64)
        entry = {
            "id": trial_id(config), "source": source, "config": _canonical(config),
            "dates": [t.strftime("%Y-%m-%d") for t in daily_returns.index],
            "returns": [round(float(v), 8) if math.isfinite(v) else None for v in values],
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
        return entry["id"]

    def entries(self) -> list[dict]:
        """Every recorded line, the last of each id winning (a re-run replaces its returns)."""
        if not self.path.exists():
            return []
        latest: dict[str, dict] = {}
        with open(self.path) as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    latest[entry["id"]] = entry
                except (ValueError, KeyError, TypeError):
                    raise ConfigError(f"trial ledger {self.path}: line {number} is not a trial record") from None
        return list(latest.values())

    def returns_matrix(self) -> pd.DataFrame:
        """Daily returns of every distinct trial: dates × trial ids (NaN where a trial has none); trials with
        the same daily record (same dates, same returns) are one trial (the first recorded id stays)."""
        columns = {}
        for entry in self.entries():
            index = pd.DatetimeIndex(pd.to_datetime(entry["dates"]), tz="UTC")
            columns[entry["id"]] = pd.Series(np.array(entry["returns"], dtype=np.float64), index=index)
        if not columns:
            return pd.DataFrame()
        frame = pd.DataFrame(columns).sort_index()
        # one out-of-sample record is one trial, whatever its configuration was called (a parameter added
        # later with a default that leaves the run unchanged gives a new id, not a new trial)
        digests = {c: hashlib.sha256(frame[c].to_numpy().tobytes()).hexdigest() for c in frame.columns}
        seen: set[str] = set()
        keep = [c for c in frame.columns if not (digests[c] in seen or seen.add(digests[c]))]
        return frame[keep]

    def summary(self, threshold: float = 0.5) -> dict:
        """The DSR's view of the search (per-day Sharpe ratios).

        ``n_trials`` (distinct trials), ``n_effective`` (K: clusters of trials correlated above
        ``threshold``, :func:`coinswarm.stats.trial_clusters`), ``sharpe_variance_clusters`` (the
        variance of the K cluster representatives' Sharpe ratios, :func:`coinswarm.stats.cluster_returns`),
        ``sharpe_variance_trials`` (over every distinct trial) and ``sharpe_variance``, the DSR's
        V[SR]: the larger of the two (see the module docstring).
        """
        from coinswarm.stats import cluster_returns, sharpe_variance, trial_clusters

        matrix = self.returns_matrix()
        if matrix.empty:
            return {"n_trials": 0, "n_effective": 0, "sharpe_variance": 0.0, "sharpe_variance_clusters": 0.0,
                    "sharpe_variance_trials": 0.0}
        values = matrix.to_numpy()
        labels = trial_clusters(values, threshold)
        clusters, trials = sharpe_variance(cluster_returns(values, labels)), sharpe_variance(values)
        return {"n_trials": int(matrix.shape[1]), "n_effective": int(np.unique(labels).size),
                "sharpe_variance": max(clusters, trials), "sharpe_variance_clusters": clusters,
                "sharpe_variance_trials": trials}


def default_ledger(ledger=None) -> TrialLedger | None:
    """``ledger`` as a :class:`TrialLedger` (a path or a ledger), else ``$COINSWARM_TRIAL_LEDGER``'s, else None."""
    if isinstance(ledger, TrialLedger):
        return ledger
    if ledger is not None:
        if not isinstance(ledger, str | os.PathLike):
            raise ConfigError(f"ledger must be a path to a .jsonl file or a TrialLedger, not {ledger!r:.60}")
        return TrialLedger(ledger)
    env = os.environ.get(LEDGER_ENV)
    return TrialLedger(env) if env else None
