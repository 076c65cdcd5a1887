"""Join candles, features and regimes into the snapshots a session steps through.

Used by the trading job (rows read back from signals.*) and by backtests (frames computed in
memory) alike, so both feed the committee exactly the same objects.
"""

from __future__ import annotations

import pandas as pd

from trading.domain import MarketSnapshot
from trading.features import FEATURE_COLUMNS

_OHLCV = ("open", "high", "low", "close", "volume")


def _keyed(frame: pd.DataFrame, what: str) -> pd.DataFrame:
    time_column = "open_time" if "open_time" in frame.columns else "ts"
    if "symbol" not in frame.columns or time_column not in frame.columns:
        raise ValueError(f"{what} need columns symbol and open_time|ts")
    keyed = frame.rename(columns={time_column: "ts"}).copy()
    keyed["ts"] = pd.to_datetime(keyed["ts"], utc=True)
    if keyed.duplicated(["symbol", "ts"]).any():
        raise ValueError(f"{what} have duplicate (symbol, ts) rows")
    return keyed


def build_snapshots(
    candles: pd.DataFrame,
    features: pd.DataFrame,
    regimes: pd.DataFrame | None = None,
    *,
    extra_features: tuple[str, ...] = (),
) -> list[MarketSnapshot]:
    """One snapshot per candle, in (ts, symbol) order.

    A candle without a feature row gets empty features (agents then abstain); one without a
    regime row (warm-up) gets ``regime=None``. ``extra_features`` names further numeric columns
    of ``features`` to pass on (e.g. ``peer_close``, another venue's close for the Arbitrage
    agent).
    """
    bars = _keyed(candles, "candles")
    missing = [c for c in _OHLCV if c not in bars.columns]
    if missing:
        raise ValueError(f"candles are missing columns {missing}")
    bars = bars[["symbol", "ts", *_OHLCV]]
    feature_columns = [c for c in FEATURE_COLUMNS if c != "close"] + list(extra_features)
    feats = _keyed(features, "features")
    feats = feats[["symbol", "ts", *[c for c in feature_columns if c in feats.columns]]]
    merged = bars.merge(feats, on=["symbol", "ts"], how="left", validate="one_to_one")
    if regimes is not None:
        regime_rows = _keyed(regimes, "regimes")[["symbol", "ts", "regime"]]
        merged = merged.merge(regime_rows, on=["symbol", "ts"], how="left", validate="one_to_one")
    else:
        merged["regime"] = None
    merged = merged.sort_values(["ts", "symbol"], kind="stable")
    present = [c for c in feature_columns if c in merged.columns]

    snapshots = []
    for row in merged.to_dict("records"):
        ts = row["ts"].to_pydatetime()
        regime = row["regime"]
        bar = {
            "symbol": row["symbol"],
            "ts": ts,
            **{c: float(row[c]) for c in _OHLCV},
        }
        snapshots.append(
            MarketSnapshot(
                symbol=row["symbol"],
                ts=ts,
                bar=bar,
                features={c: (None if pd.isna(row[c]) else float(row[c])) for c in present},
                regime=None if regime is None or pd.isna(regime) else str(regime),
            )
        )
    return snapshots
