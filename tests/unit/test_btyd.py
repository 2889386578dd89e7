"""BG/NBD and Gamma-Gamma as features: the closed form against pymc-marketing, and the
parameters kept per day, refit when the day's snapshot changes."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest

from clm.core.io import BatchError, partition_dir, read_partition, write_partition
from clm.core.settings import Settings
from clm.data import btyd
from clm.data.features import BTYD_FEATURES, BTYD_PARAMS_TABLE, ORDER_VIEW, write_snapshot
from clm.data.ingest import ingest

DS = date(2024, 2, 5)
HORIZON_DAYS = 30


@pytest.fixture
def snapshot(small_shop: Settings) -> Settings:
    ingest(small_shop, DS)
    write_snapshot(small_shop.features_dir, small_shop.validated_dir, DS)
    return small_shop


def _pymc_fits(data: pd.DataFrame) -> tuple[Any, Any, dict[str, float]]:
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel

    bg = BetaGeoModel(data=data[["customer_id", "frequency", "recency", "T"]])
    bg.fit(method="map", progressbar=False)
    repeat = data[(data["frequency"] > 0) & (data["monetary_value"] > 0)]
    gg = GammaGammaModel(data=repeat[["customer_id", "frequency", "monetary_value"]])
    gg.fit(method="map", progressbar=False)
    fits = {"bgnbd": bg, "gg": gg}
    params = {
        name: float(fits[name.split("_")[0]].fit_result[name.split("_", 1)[1]].values.item())
        for name in btyd.PARAMS
    }
    return bg, gg, params


def test_closed_form_and_fit_match_pymc_marketing(snapshot: Settings) -> None:
    orders = read_partition(snapshot.features_dir, ORDER_VIEW, DS)
    data = btyd.summary(orders)
    assert (data["frequency"] > 0).sum() > 10 and (data["frequency"] == 0).sum() > 10
    bg, gg, theirs = _pymc_fits(data)

    # The closed forms, from pymc-marketing's parameters, give its own predictions.
    ours = btyd.expectations(orders.assign(**theirs, **{btyd.HORIZON: float(HORIZON_DAYS)}))
    assert ours.notna().all().all() and list(ours.columns) == list(BTYD_FEATURES)

    def flat(values: object) -> np.ndarray:
        return np.asarray(values).reshape(-1)

    alive = flat(bg.expected_probability_alive(data=data))
    purchases = flat(bg.expected_purchases(data=data, future_t=HORIZON_DAYS))
    value = flat(gg.expected_customer_spend(data=data))
    np.testing.assert_allclose(ours["btyd_p_alive"], alive, rtol=1e-6)
    np.testing.assert_allclose(ours["btyd_expected_purchases"], purchases, rtol=1e-6)
    np.testing.assert_allclose(ours["gg_expected_order_value"], value, rtol=1e-6)
    np.testing.assert_allclose(ours["btyd_expected_spend"], purchases * value, rtol=1e-6)
    # one purchase day: alive by the model's definition, worth the shop's mean per day
    single = (data["frequency"] == 0).to_numpy()
    assert (ours.loc[single, "btyd_p_alive"] == 1.0).all()
    assert ours.loc[single, "gg_expected_order_value"].nunique() == 1

    # The maximum-likelihood fit is at least as likely as pymc-marketing's MAP (whose
    # default priors on BG/NBD's a and b move it off the likelihood's optimum).
    fitted = btyd.fit_params(orders)
    x, t_x, t, m = (data[c].to_numpy(dtype="float64") for c in btyd.SUMMARY)
    repeat = (x > 0) & (m > 0)

    def nll(params: dict[str, float]) -> tuple[float, float]:
        bgnbd = np.log([params[n] for n in btyd.BGNBD_PARAMS])
        gamma = np.log([params[n] for n in btyd.GG_PARAMS])
        return (
            btyd._bgnbd_nll(bgnbd, x, t_x, t),
            btyd._gg_nll(gamma, x[repeat], m[repeat]),
        )

    for ours_nll, their_nll in zip(nll(fitted), nll(theirs), strict=True):
        assert ours_nll <= their_nll + 1e-6 * abs(their_nll)


def test_a_row_the_view_does_not_have_gets_no_expectation() -> None:
    params = {name: 2.0 for name in btyd.PARAMS} | {btyd.HORIZON: 30.0}
    frame = pd.DataFrame(
        {
            "repeat_days": [np.nan, 2.0],
            "repeat_spend_mean": [np.nan, 10.0],
            "recency_days": [np.nan, 3.0],
            "tenure_days": [np.nan, 40.0],
        }
    ).assign(**params)
    out = btyd.expectations(frame)
    assert out.iloc[0].isna().all() and out.iloc[1].notna().all()


def test_params_are_kept_per_day_and_refit_when_the_snapshot_changes(
    snapshot: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    features = snapshot.features_dir
    first = btyd.params_at(features, DS)
    assert partition_dir(features, BTYD_PARAMS_TABLE, DS).exists()

    def no_refit(*_args: object, **_kwargs: object) -> dict[str, float]:
        raise AssertionError("the kept parameters must be read, not refit")

    with monkeypatch.context() as patch:
        patch.setattr(btyd, "fit_params", no_refit)
        assert btyd.params_at(features, DS) == first
    # rewriting the day's snapshot drops them; the refit of the same rows is the same
    write_snapshot(features, snapshot.validated_dir, DS)
    assert not partition_dir(features, BTYD_PARAMS_TABLE, DS).exists()
    assert btyd.params_at(features, DS) == pytest.approx(first)
    # parameters kept by another fitting method (or an older release) are refit
    kept = read_partition(features, BTYD_PARAMS_TABLE, DS)
    for stale in (kept.assign(method="pymc-map", bgnbd_r=99.0), kept.drop(columns="method")):
        write_partition(stale.assign(bgnbd_r=99.0), features, BTYD_PARAMS_TABLE, DS)
        assert btyd.params_at(features, DS) == pytest.approx(first)
    with pytest.raises(BatchError, match="no feature snapshot"):
        btyd.params_at(features, date(2024, 1, 20))


def test_a_large_shop_fits_on_a_seeded_draw(snapshot: Settings, monkeypatch) -> None:
    orders = read_partition(snapshot.features_dir, ORDER_VIEW, DS)
    monkeypatch.setattr(btyd, "FIT_CUSTOMERS", len(orders) // 2)
    drawn = btyd.fit_params(orders, seed=1)
    assert drawn == btyd.fit_params(orders, seed=1)
    assert drawn != btyd.fit_params(orders, seed=2)
