"""Category recommendation: the three categories to put in front of each customer.

Every candidate learns from purchase history up to a cutoff (customer x category
counts of completed orders) and recommends the top three categories the customer
has not bought in the last :data:`RECENT_DAYS` days: cross-sell, not
replenishment.

Models (collaborative filtering, the ``implicit`` package):
- ``als``: alternating least squares on the counts as confidence (Hu, Koren and
  Volinsky, 2008), in few factors: tastes shared across customers;
- ``item_item``: cosine item-item neighbours (co-occurrence of categories in
  customers' histories).

Baselines:
- ``popularity``: the shop's most bought categories, the same for everyone;
- ``own_top``: the customer's own most bought categories.

Evaluated on the next H days: among customers with a history who then buy a
category they had not bought recently, the hit rate at 3 (one of the three was
bought) and NDCG at 3. On the simulated shop, the customers' latent category
preferences are the ceiling (``oracle``).
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import sparse

from clm.core.io import partition_glob

log = logging.getLogger(__name__)

K = 3  # categories recommended per customer
RECENT_DAYS = 30  # a category bought this recently is not recommended
MODELS = ("als", "item_item")
BASELINES = ("popularity", "own_top")
DESCRIPTIONS = {
    "als": "implicit ALS on log order counts, 4 factors",
    "item_item": "implicit cosine item-item neighbours",
    "popularity": "the shop's most bought categories",
    "own_top": "the customer's own most bought categories",
    "oracle": "the customer's latent category preferences (simulated shop only)",
}

_HISTORY_SQL = """
SELECT customer_id, category, COUNT(*) AS orders, MAX(CAST(order_ts AS DATE)) AS last_day
FROM read_parquet($orders, hive_partitioning = true)
WHERE status = 'completed' AND ds <= $cutoff AND CAST(order_ts AS DATE) <= $cutoff
GROUP BY ALL
ORDER BY customer_id, category
"""

_AFTER_SQL = """
SELECT DISTINCT customer_id, category
FROM read_parquet($orders, hive_partitioning = true)
WHERE status = 'completed' AND ds > $cutoff AND ds <= $until
    AND CAST(order_ts AS DATE) > $cutoff AND CAST(order_ts AS DATE) <= $until
ORDER BY customer_id, category
"""


@dataclass
class History:
    """Purchase counts up to a cutoff: customers x categories, and what is recent."""

    cutoff: date
    customers: pd.Index
    categories: pd.Index
    counts: sparse.csr_matrix  # customers x categories, completed orders
    recent: np.ndarray  # customers x categories, bought in the last RECENT_DAYS days

    def scores_frame(self, scores: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(scores, index=self.customers, columns=self.categories)


def history(validated_dir: Path, cutoff: date, recent_days: int = RECENT_DAYS) -> History:
    """Every customer's completed orders per category up to ``cutoff``.

    Raises:
        ValueError: if no completed order has a category by ``cutoff``.
    """
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.execute(
            _HISTORY_SQL, {"orders": partition_glob(validated_dir, "orders"), "cutoff": cutoff}
        ).df()
    rows = rows.dropna(subset=["category"])
    if rows.empty:
        raise ValueError(f"no completed order with a category by {cutoff}")
    customers = pd.Index(sorted(rows["customer_id"].unique()), name="customer_id")
    categories = pd.Index(sorted(rows["category"].unique()), name="category")
    i = customers.get_indexer(rows["customer_id"])
    j = categories.get_indexer(rows["category"])
    shape = (len(customers), len(categories))
    counts = sparse.csr_matrix((rows["orders"].to_numpy(dtype="float32"), (i, j)), shape=shape)
    recent = np.zeros(shape, dtype=bool)
    since = pd.Timestamp(cutoff - timedelta(days=recent_days))
    hot = (pd.to_datetime(rows["last_day"]) > since).to_numpy()
    recent[i[hot], j[hot]] = True
    return History(cutoff, customers, categories, counts, recent)


def bought_after(validated_dir: Path, cutoff: date, horizon_days: int) -> pd.DataFrame:
    """``customer_id, category`` pairs with a completed order in (cutoff, cutoff + H]."""
    until = cutoff + timedelta(days=horizon_days)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        return con.execute(
            _AFTER_SQL,
            {"orders": partition_glob(validated_dir, "orders"), "cutoff": cutoff, "until": until},
        ).df()


def _popularity(h: History) -> np.ndarray:
    """Customers who bought each category, scaled to [0, 1)."""
    buyers = np.asarray((h.counts > 0).sum(axis=0), dtype=float).reshape(-1)
    return buyers / (buyers.max() + 1.0)


@dataclass
class Recommender:
    """A fitted candidate: what scoring needs to rank categories for any purchase history.

    The learned state is small and stored with the model version in MLflow
    (:meth:`save`, :meth:`load`): the categories it knows, their popularity
    (the tie-break), and for ``als`` the item factors (a customer's own factors
    are recomputed from their history at scoring: implicit's fold-in) or for
    ``item_item`` the category-category similarity. So the version scores a
    later day's histories, new customers included, without refitting.
    """

    kind: str
    categories: list[str]
    popularity: np.ndarray
    state: dict[str, np.ndarray]
    als: object | None = None

    @classmethod
    def fit(
        cls, kind: str, h: History, *, seed: int = 42, factors: int = 4, iterations: int = 20
    ) -> Recommender:
        """Fit ``kind`` on the history.

        Raises:
            ValueError: for an unknown candidate.
        """
        state: dict[str, np.ndarray] = {}
        als = None
        if kind == "item_item":
            from implicit.nearest_neighbours import CosineRecommender
            from implicit.utils import ParameterWarning

            knn = CosineRecommender(K=len(h.categories))
            with warnings.catch_warnings():
                # implicit converts its own normalized copy to CSR, and says so
                warnings.simplefilter("ignore", ParameterWarning)
                knn.fit(h.counts, show_progress=False)
            state["similarity"] = np.asarray(knn.similarity.todense(), dtype="float64")
        elif kind == "als":
            from implicit.cpu.als import AlternatingLeastSquares
            from threadpoolctl import threadpool_limits

            # One BLAS thread, as implicit asks: its own threads already split the users.
            with threadpool_limits(1, "blas"):
                als = AlternatingLeastSquares(
                    factors=min(factors, len(h.categories) - 1),
                    regularization=0.05,
                    iterations=iterations,
                    random_state=seed,
                    num_threads=1,  # the same factors on any machine
                )
                als.fit(_confidence(h.counts), show_progress=False)
            state["item_factors"] = np.asarray(als.item_factors)
            state["regularization"] = np.array([als.regularization])
        elif kind not in BASELINES:
            raise ValueError(f"unknown recommender {kind!r}; expected one of {MODELS + BASELINES}")
        return cls(kind, [str(c) for c in h.categories], _popularity(h), state, als)

    def scores(self, counts: sparse.csr_matrix) -> np.ndarray:
        """Scores, customers x :attr:`categories` (higher: recommend first), from each
        customer's completed orders per category (columns in :attr:`categories` order).

        Ties are broken by popularity, so every category is ranked.
        """
        n = counts.shape[0]
        tie = self.popularity * 1e-6
        if self.kind == "popularity":
            return np.tile(self.popularity, (n, 1))
        if self.kind == "own_top":
            return counts.toarray() + tie
        if self.kind == "item_item":
            return np.asarray(counts @ self.state["similarity"]) + tie
        # als: the customer's factors from their history and the fitted item factors
        import implicit.cpu.als  # noqa: F401  # its BLAS loaded before the limit is set
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, "blas"):  # implicit checks it when the model is made
            users = self._als().recalculate_user(np.arange(n), _confidence(counts))
        return np.asarray(users @ self.state["item_factors"].T, dtype="float64") + tie

    def _als(self) -> Any:
        if self.als is None:
            from implicit.cpu.als import AlternatingLeastSquares

            items = self.state["item_factors"]
            model = AlternatingLeastSquares(
                factors=items.shape[1],
                regularization=float(self.state["regularization"][0]),
                num_threads=1,
            )
            model.item_factors = items.astype("float32")
            self.als = model
        return self.als

    def save(self, directory: Path) -> None:
        """Write the fitted state to ``directory`` (created)."""
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {"popularity": self.popularity, **self.state}
        np.savez(directory / "state.npz", **arrays)  # type: ignore[arg-type]
        (directory / "recommender.json").write_text(
            json.dumps({"kind": self.kind, "categories": self.categories, "k": K})
        )

    @classmethod
    def load(cls, directory: Path) -> Recommender:
        """Read what :meth:`save` wrote."""
        meta = json.loads((directory / "recommender.json").read_text())
        with np.load(directory / "state.npz") as arrays:
            state = {name: arrays[name] for name in arrays.files}
        popularity = state.pop("popularity")
        return cls(meta["kind"], list(meta["categories"]), popularity, state)

    def recommend(self, h: History, customers: pd.Index, k: int = K) -> list[list[str]]:
        """The top ``k`` categories for each of ``customers`` from their history in ``h``
        (none for a customer without one: popularity), recently bought ones left out."""
        counts, recent = align(h, customers, pd.Index(self.categories))
        cats = np.asarray(self.categories, dtype=object)
        top = _top(recent, self.scores(counts), k)
        return [[str(cats[j]) for j in row if j >= 0] for row in top]


def align(
    h: History, customers: pd.Index, categories: pd.Index
) -> tuple[sparse.csr_matrix, np.ndarray]:
    """``h``'s counts and recent flags for ``customers`` x ``categories``: zeros for a
    customer or a category ``h`` does not have."""
    rows = h.customers.get_indexer(customers)
    cols = h.categories.get_indexer(categories)
    row_ok, col_ok = rows >= 0, cols >= 0
    picked_rows, picked_cols = np.maximum(rows, 0), np.maximum(cols, 0)
    counts = h.counts[picked_rows][:, picked_cols]
    counts = (
        sparse.diags(row_ok.astype("float32")) @ counts @ sparse.diags(col_ok.astype("float32"))
    )
    recent = h.recent[np.ix_(picked_rows, picked_cols)] & row_ok[:, None] & col_ok[None, :]
    return sparse.csr_matrix(counts, dtype="float32"), recent


def _confidence(counts: sparse.csr_matrix) -> sparse.csr_matrix:
    """log-scaled confidence: a hundred orders of one category do not drown the rest."""
    return counts.log1p().tocsr().astype("float32")


def fit_scores(
    name: str, h: History, *, seed: int = 42, factors: int = 4, iterations: int = 20
) -> np.ndarray:
    """A candidate's scores on the history it was fit on, customers x categories.

    Raises:
        ValueError: for an unknown candidate.
    """
    fitted = Recommender.fit(name, h, seed=seed, factors=factors, iterations=iterations)
    return fitted.scores(h.counts)


def recommend(h: History, scores: np.ndarray, k: int = K) -> np.ndarray:
    """The top ``k`` category indices per customer, recently bought ones left out
    (-1 where fewer than ``k`` remain)."""
    return _top(h.recent, scores, k)


def _top(recent: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    masked = np.where(recent, -np.inf, scores)
    order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(masked, order, axis=1)
    return np.where(np.isfinite(picked), order, -1)


def names(h: History, top: np.ndarray) -> list[list[str]]:
    """Category names of :func:`recommend`'s indices, per customer."""
    cats = h.categories.to_numpy()
    return [[str(cats[j]) for j in row if j >= 0] for row in top]


def relevant(h: History, after: pd.DataFrame) -> np.ndarray:
    """customers x categories: bought in the window and not recently before it."""
    out = np.zeros(h.recent.shape, dtype=bool)
    i = h.customers.get_indexer(pd.Index(after["customer_id"]))
    j = h.categories.get_indexer(pd.Index(after["category"]))
    known = (i >= 0) & (j >= 0)  # new customers and new categories: nothing to learn from
    out[i[known], j[known]] = True
    return out & ~h.recent


def per_customer(top: np.ndarray, rel: np.ndarray) -> pd.DataFrame:
    """Hit at k and NDCG at k for each customer with something relevant (row order)."""
    k = top.shape[1]
    rows = np.flatnonzero(rel.any(axis=1))
    gains = np.zeros((len(rows), k))
    for pos in range(k):
        col = top[rows, pos]
        gains[:, pos] = np.where(col >= 0, rel[rows, np.maximum(col, 0)], False)
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    ideal = np.cumsum(discount)[np.minimum(rel[rows].sum(axis=1), k) - 1]
    return pd.DataFrame(
        {
            "row": rows,
            f"hit_at_{k}": gains.any(axis=1).astype(float),
            f"ndcg_at_{k}": (gains * discount).sum(axis=1) / ideal,
        }
    )


def latent_preferences(truth_dir: Path) -> pd.DataFrame:
    """The simulated customers' latent category preferences: customers x categories."""
    truth = pd.read_parquet(truth_dir / "customers.parquet").set_index("customer_id")
    prefs = [c for c in truth.columns if c.startswith("pref_")]
    return truth[prefs].rename(columns=lambda c: c.removeprefix("pref_"))


def evaluate(
    validated_dir: Path,
    cutoff: date,
    horizon_days: int,
    *,
    seed: int = 42,
    oracle: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Each candidate's per-customer hit and NDCG at :data:`K` on the window after
    ``cutoff``; ``oracle`` (customers x categories of latent preference) adds the ceiling."""
    h = history(validated_dir, cutoff)
    rel = relevant(h, bought_after(validated_dir, cutoff, horizon_days))
    out = {}
    for name in (*MODELS, *BASELINES):
        out[name] = per_customer(recommend(h, fit_scores(name, h, seed=seed)), rel)
    if oracle is not None:
        truth = oracle.reindex(index=h.customers, columns=h.categories).fillna(0.0)
        out["oracle"] = per_customer(recommend(h, truth.to_numpy() + _popularity(h) * 1e-9), rel)
    log.info(
        "recommendation at %s, %d customers with a new category in %d days: %s",
        cutoff,
        len(next(iter(out.values()))),
        horizon_days,
        {n: round(float(f[f"hit_at_{K}"].mean()), 4) for n, f in out.items()},
    )
    return out
