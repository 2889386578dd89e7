"""Review sentiment: each review text's VADER compound score, scored once per day.

VADER (Hutto and Gilbert, 2014; the ``vaderSentiment`` package) is a lexicon
and rule-based model whose lexicon ships inside the package: nothing is
downloaded, and the same text gets the same score on any machine. The compound
score runs from -1 (most negative) to +1; below :data:`NEGATIVE_BELOW` a text
counts as negative, the package's own convention.

The scores of one validated ``events`` day are kept beside the feature
snapshots (``features/review_sentiment/ds=…``), so a review is scored once, not
at every snapshot whose 90-day window holds it. A day whose validated events
change (a re-ingest) is scored again: each day's partition is recorded with the
fingerprint of the validated files it came from (``_sources.json``).
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from clm.core.io import fingerprint, landed_files, list_partitions, partition_dir, write_partition

log = logging.getLogger(__name__)

TABLE = "review_sentiment"
NEGATIVE_BELOW = -0.05  # VADER's threshold for a negative text
WINDOW_DAYS = 90
SOURCES = "_sources.json"
COLUMNS = ["customer_id", "event_ts", "compound"]


def compound(texts: pd.Series) -> np.ndarray:
    """VADER's compound score of each text (-1 to 1)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    return np.fromiter(
        (analyzer.polarity_scores(str(t))["compound"] for t in texts),
        dtype="float64",
        count=len(texts),
    )


def score_reviews(events: pd.DataFrame) -> pd.DataFrame:
    """``customer_id, event_ts, compound`` of the events that are reviews with a text."""
    if "review_text" not in events:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    reviews = events.loc[
        (events["event_type"] == "review") & events["review_text"].notna(),
        ["customer_id", "event_ts", "review_text"],
    ]
    out = reviews[["customer_id", "event_ts"]].reset_index(drop=True)
    out["compound"] = compound(reviews["review_text"])
    return out.astype(_DTYPES)


_DTYPES = {"customer_id": "string", "event_ts": "datetime64[us, UTC]", "compound": "float64"}


def _sources(cache_dir: Path) -> dict[str, str]:
    path = cache_dir / TABLE / SOURCES
    return json.loads(path.read_text()) if path.exists() else {}


def ensure_scored(validated_dir: Path, cache_dir: Path, days: list[date]) -> list[date]:
    """Score the reviews of each validated ``events`` day in ``days`` that has no
    current scores in ``cache_dir``.

    Returns:
        The days scored now.
    """
    sources = _sources(cache_dir)
    done = []
    for day in days:
        folder = partition_dir(validated_dir, "events", day)
        stamp = fingerprint(landed_files(folder))
        if sources.get(day.isoformat()) == stamp and partition_dir(cache_dir, TABLE, day).exists():
            continue
        events = pd.read_parquet(folder)
        write_partition(score_reviews(events), cache_dir, TABLE, day)
        sources[day.isoformat()] = stamp
        done.append(day)
    if done:
        path = cache_dir / TABLE / SOURCES
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sources, indent=0, sort_keys=True))
        tmp.replace(path)
        log.info("review sentiment: scored the reviews of %d day(s) with VADER", len(done))
    return done


def window(validated_dir: Path, cache_dir: Path | None, ds: date) -> pd.DataFrame:
    """The scored reviews of the :data:`WINDOW_DAYS` days up to ``ds``: those of the
    validated events days in the window (the gate keeps an event on its own day).
    ``cache_dir`` None scores them without keeping the scores."""
    days = [
        d
        for d in list_partitions(validated_dir, "events")
        if ds - timedelta(days=WINDOW_DAYS) < d <= ds
    ]
    if cache_dir is None:
        frames = [
            score_reviews(pd.read_parquet(partition_dir(validated_dir, "events", d))) for d in days
        ]
    else:
        ensure_scored(validated_dir, cache_dir, days)
        frames = [pd.read_parquet(partition_dir(cache_dir, TABLE, d)) for d in days]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _DTYPES.items()})
    return pd.concat(frames, ignore_index=True).astype(_DTYPES)
