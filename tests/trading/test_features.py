from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from trading.features import FEATURE_COLUMNS, FeatureWindows, compute_features, wilder_rsi
from trading.regime import classify_regimes


def candles(closes: list[float], symbol: str = "ETH/BTC") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "symbol": symbol,
            "open_time": pd.date_range("2018-01-10", periods=len(closes), freq="5min", tz="UTC"),
            "open": closes,
            "high": closes,
            "low": closes,
            "close": closes,
            "volume": 1.0,
        }
    )


SMALL = FeatureWindows(sma_fast=2, sma_slow=3, z_window=3, rsi_window=2, momentum_window=2)


def test_features_match_hand_computed_values() -> None:
    out = compute_features(candles([10, 11, 10.5, 12, 11]), SMALL)
    assert list(out.columns) == ["symbol", "ts", *FEATURE_COLUMNS]
    nan = math.nan
    expected = {
        "ret_1": [nan, 0.1, 10.5 / 11 - 1, 12 / 10.5 - 1, 11 / 12 - 1],
        "sma_fast": [nan, 10.5, 10.75, 11.25, 11.5],
        "sma_slow": [nan, nan, 10.5, 33.5 / 3, 33.5 / 3],
        "zscore": [nan, nan, 0.0, 1.0910894511799618, -0.2182178902359924],
        "momentum": [nan, nan, 0.05, 12 / 11 - 1, 11 / 10.5 - 1],
        # Wilder, window 2: seed gains/losses (1, 0)/(0, .5) -> 2/.25; then smoothed.
        "rsi": [nan, nan, 100 - 100 / 3, 100 - 100 / 9, 100 - 100 / (1 + 0.5 / 0.5625)],
    }
    for column, values in expected.items():
        np.testing.assert_allclose(out[column].to_numpy(), values, rtol=1e-12, err_msg=column)
    assert out["vol_short"].isna().all() and out["vol_long"].isna().all()  # still warming up


def test_volatility_is_the_sample_std_of_the_last_returns() -> None:
    rng = np.random.default_rng(7)
    closes = list(100 * np.cumprod(1 + rng.normal(0, 0.01, 300)))
    out = compute_features(candles(closes))
    returns = [closes[i] / closes[i - 1] - 1 for i in range(1, len(closes))]
    assert out["vol_short"].iloc[:12].isna().all()
    assert out["vol_short"].iloc[12] == pytest.approx(statistics.stdev(returns[0:12]), rel=1e-9)
    assert out["vol_short"].iloc[299] == pytest.approx(statistics.stdev(returns[-12:]), rel=1e-9)
    assert out["vol_long"].iloc[:288].isna().all()
    assert out["vol_long"].iloc[299] == pytest.approx(statistics.stdev(returns[-288:]), rel=1e-9)


def test_rsi_edge_cases() -> None:
    assert wilder_rsi(np.array([1.0, 2.0, 3.0, 4.0]), 2)[2:].tolist() == [100.0, 100.0]
    assert wilder_rsi(np.array([1.0, 1.0, 1.0]), 2)[2] == 50.0
    assert np.isnan(wilder_rsi(np.array([1.0, 2.0]), 2)).all()


def test_many_symbols_are_computed_independently_and_sorted() -> None:
    both = pd.concat([candles([1, 2, 3, 4], "LTC/BTC"), candles([10, 11, 12, 13])])
    out = compute_features(both.sample(frac=1, random_state=1), SMALL)
    assert out["symbol"].tolist() == ["ETH/BTC"] * 4 + ["LTC/BTC"] * 4
    alone = compute_features(candles([1, 2, 3, 4], "LTC/BTC"), SMALL)
    pd.testing.assert_frame_equal(out.iloc[4:].reset_index(drop=True), alone)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="duplicate candles"):
        compute_features(pd.concat([candles([1, 2]), candles([1, 2])]))
    with pytest.raises(ValueError, match="missing columns"):
        compute_features(candles([1, 2]).drop(columns=["close"]))
    with pytest.raises(ValueError, match="finite and > 0"):
        compute_features(candles([1, 0]))


def test_features_are_point_in_time_on_real_data(january_candles: pd.DataFrame) -> None:
    """Changing bars after t changes nothing at or before t."""
    eth = january_candles[january_candles["symbol"] == "ETH/BTC"].reset_index(drop=True)
    full = compute_features(eth)
    cut = 3000
    rng = np.random.default_rng(42)
    altered = eth.copy()
    altered.loc[cut + 1 :, "close"] *= rng.uniform(0.5, 1.5, len(altered) - cut - 1)
    changed = compute_features(altered)
    pd.testing.assert_frame_equal(changed.iloc[: cut + 1], full.iloc[: cut + 1], check_exact=True)
    assert not changed.iloc[cut + 1 :].equals(full.iloc[cut + 1 :])
    truncated = compute_features(eth.iloc[: cut + 1])
    pd.testing.assert_frame_equal(truncated, full.iloc[: cut + 1], check_exact=True)

    regimes_full = classify_regimes(full)
    regimes_changed = classify_regimes(changed)
    cutoff = eth["open_time"].iloc[cut]
    pd.testing.assert_frame_equal(
        regimes_changed[regimes_changed["ts"] <= cutoff],
        regimes_full[regimes_full["ts"] <= cutoff],
        check_exact=True,
    )


def test_regime_rule_and_warm_up_rows_are_dropped() -> None:
    features = pd.DataFrame(
        {
            "symbol": "ETH/BTC",
            "ts": pd.date_range("2018-01-10", periods=5, freq="5min", tz="UTC"),
            "vol_short": [0.01, 0.03, 0.01, 0.01, 0.01],
            "vol_long": [np.nan, 0.01, 0.01, 0.01, 0.01],
            "sma_fast": [1.0, 1.0, 1.02, 0.98, 1.005],
            "sma_slow": [1.0, 1.0, 1.0, 1.0, 1.0],
        }
    )
    out = classify_regimes(features, volatile_ratio=2.0, trend_threshold=1.0)
    assert out["regime"].tolist() == ["volatile", "trending_up", "trending_down", "ranging"]
    assert out["ts"].tolist() == features["ts"].iloc[1:].tolist()
    np.testing.assert_allclose(out["vol_ratio"], [3.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(out["trend_strength"], [0.0, 2.0, -2.0, 0.5], atol=1e-12)


def test_regimes_on_real_data_use_every_label(january_candles: pd.DataFrame) -> None:
    regimes = classify_regimes(compute_features(january_candles))
    assert set(regimes["regime"]) == {"trending_up", "trending_down", "ranging", "volatile"}
    assert regimes[["trend_strength", "vol_ratio"]].notna().all().all()
