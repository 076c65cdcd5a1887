"""The Risk, Execution and Arbitrage agents: every branch against hand-computed expectations,
their construction from config, their effect inside a committee, and a cross-check on real
recorded candles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.trading.conftest import T0, make_bar
from trading.agents.arbitrage import ArbitrageAgent
from trading.agents.base import build_agent, safe_vote
from trading.agents.execution import ExecutionAgent
from trading.agents.risk import RiskAgent, linear_scale
from trading.agents.trend import TrendAgent
from trading.committee import Committee
from trading.domain import AccountView, Bar, ExecutionAdvice, MarketSnapshot
from trading.features import compute_features

CALM_VOL = {"vol_short": 0.003, "vol_long": 0.003}
TREND_UP = {"sma_fast": 1.02, "sma_slow": 1.0, "momentum": 0.01, "vol_long": 0.005}


def account(**overrides: Any) -> AccountView:
    values: dict[str, Any] = {
        "equity": 1.0,
        "peak_equity": 1.0,
        "drawdown": 0.0,
        "daily_loss": 0.0,
        "gross_exposure": 0.0,
        "position": 0.0,
        "max_position": 0.25,
        "risk_state": "active",
    }
    return AccountView.model_validate(values | overrides)


def snap(
    features: dict[str, float | None] | None = None,
    *,
    account_view: AccountView | None = None,
    close: float = 0.1,
    volume: float = 1_000.0,
) -> MarketSnapshot:
    return MarketSnapshot(
        symbol="ETH/BTC",
        ts=T0,
        bar=make_bar(close=close, volume=volume),
        features=dict(features or {}),
        account=account_view,
    )


# ---------------------------------------------------------------------------------------- risk


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.0, 1.0), (0.05, 1.0), (0.075, 0.75), (0.10, 0.5), (0.14, 0.1), (0.15, 0.0), (0.9, 0.0)],
)
def test_linear_scale_between_soft_and_hard(value: float, expected: float) -> None:
    assert linear_scale(value, 0.05, 0.15) == pytest.approx(expected)


def test_risk_agent_is_calm_and_directionless_when_every_factor_is_within_soft_limits() -> None:
    vote = RiskAgent().vote(snap(CALM_VOL, account_view=account(drawdown=0.02, gross_exposure=0.5)))
    assert (vote.direction, vote.confidence, vote.scale) == (0.0, 0.0, 1.0)
    assert vote.is_neutral and vote.execution is None and vote.agent == "risk"
    assert vote.rationale.startswith("calm")
    for factor in ("vol ratio 1", "bar vol 0.003", "drawdown 0.02", "exposure 0.5"):
        assert factor in vote.rationale


def test_risk_agent_scales_linearly_on_the_volatility_ratio() -> None:
    # ratio 0.0045 / 0.002 = 2.25, halfway between soft 1.5 and hard 3.0
    vote = RiskAgent().vote(snap({"vol_short": 0.0045, "vol_long": 0.002}, account_view=account()))
    assert vote.scale == pytest.approx(0.5) and vote.direction == 0.0
    assert "scale down: bound by vol ratio 2.25 (soft 1.5, hard 3)" in vote.rationale

    wild = RiskAgent().vote(snap({"vol_short": 0.0065, "vol_long": 0.002}, account_view=account()))
    assert wild.scale == 0.0 and wild.direction == 0.0  # ratio 3.25 > hard: veto, no reduce
    assert wild.rationale.startswith("veto new exposure: bound by vol ratio 3.25")


@pytest.mark.parametrize(("vol_long", "expected"), [(0.01, 1.0), (0.02, 0.5), (0.03, 0.0)])
def test_risk_agent_scales_on_per_bar_volatility(vol_long: float, expected: float) -> None:
    vote = RiskAgent().vote(snap({"vol_short": vol_long, "vol_long": vol_long}))
    assert vote.scale == pytest.approx(expected)
    if expected < 1.0:
        assert "bound by bar vol" in vote.rationale


def test_risk_agent_per_bar_volatility_check_can_be_disabled() -> None:
    agent = RiskAgent(bar_vol_soft=None, bar_vol_hard=None)
    vote = agent.vote(snap({"vol_short": 0.05, "vol_long": 0.05}))
    assert vote.scale == 1.0 and "bar vol" not in vote.rationale


@pytest.mark.parametrize(
    ("drawdown", "scale"), [(0.05, 1.0), (0.10, 0.5), (0.13, 0.2), (0.1499, 0.001)]
)
def test_risk_agent_scales_down_on_drawdown_without_voting(drawdown: float, scale: float) -> None:
    vote = RiskAgent().vote(snap(CALM_VOL, account_view=account(drawdown=drawdown)))
    assert vote.scale == pytest.approx(scale)
    assert vote.direction == 0.0 and vote.confidence == 0.0


@pytest.mark.parametrize("drawdown", [0.15, 0.30])
def test_risk_agent_votes_to_reduce_at_the_hard_drawdown(drawdown: float) -> None:
    vote = RiskAgent().vote(snap(CALM_VOL, account_view=account(drawdown=drawdown)))
    assert (vote.direction, vote.confidence, vote.scale) == (-1.0, 1.0, 0.0)
    assert not vote.is_neutral
    assert vote.rationale.startswith("reduce: drawdown at or beyond hard 0.15")
    assert f"bound by drawdown {drawdown:g}" in vote.rationale

    modest = RiskAgent(reduce_confidence=0.4).vote(
        snap(CALM_VOL, account_view=account(drawdown=drawdown))
    )
    assert (modest.direction, modest.confidence, modest.scale) == (-1.0, 0.4, 0.0)

    silent = RiskAgent(reduce_confidence=0.0).vote(
        snap(CALM_VOL, account_view=account(drawdown=drawdown))
    )
    assert (silent.direction, silent.confidence, silent.scale) == (0.0, 0.0, 0.0)
    assert silent.rationale.startswith("veto new exposure")


@pytest.mark.parametrize(("exposure", "scale"), [(0.8, 1.0), (0.9, 0.5), (1.0, 0.0), (1.2, 0.0)])
def test_risk_agent_scales_and_vetoes_on_gross_exposure(exposure: float, scale: float) -> None:
    vote = RiskAgent().vote(snap(CALM_VOL, account_view=account(gross_exposure=exposure)))
    assert vote.scale == pytest.approx(scale)
    assert vote.direction == 0.0  # exposure alone never votes to reduce
    if scale == 0.0:
        assert vote.rationale.startswith(f"veto new exposure: bound by exposure {exposure:g}")


def test_risk_agent_takes_the_smallest_factor_scale_and_names_it() -> None:
    features = {"vol_short": 0.0045, "vol_long": 0.002}  # ratio 2.25 -> 0.5
    view = account(drawdown=0.08, gross_exposure=0.85)  # drawdown -> 0.7, exposure -> 0.75
    vote = RiskAgent().vote(snap(features, account_view=view))
    assert vote.scale == pytest.approx(0.5)
    assert vote.rationale.startswith("scale down: bound by vol ratio 2.25")
    assert "also drawdown 0.08 (soft 0.05, hard 0.15) -> scale 0.70" in vote.rationale
    assert "also exposure 0.85 (soft 0.8, hard 1) -> scale 0.75" in vote.rationale

    custom = RiskAgent(exposure_soft=0.5, exposure_hard=0.9).vote(snap(features, account_view=view))
    assert custom.scale == pytest.approx(0.125)  # (0.9 - 0.85) / 0.4
    assert "bound by exposure 0.85" in custom.rationale


def test_risk_agent_without_account_checks_volatility_only_and_says_so() -> None:
    vote = RiskAgent().vote(snap({"vol_short": 0.0045, "vol_long": 0.002}))
    assert vote.scale == pytest.approx(0.5)
    assert "unchecked: drawdown and exposure (no account view)" in vote.rationale


def test_risk_agent_with_missing_features_uses_what_it_can_measure() -> None:
    vote = RiskAgent().vote(snap({"vol_short": None, "vol_long": 0.02}))
    assert vote.scale == pytest.approx(0.5)  # bar vol only
    assert "vol ratio (vol_short unknown)" in vote.rationale

    flat = RiskAgent().vote(snap({"vol_short": 0.001, "vol_long": 0.0}))
    assert flat.scale == 1.0 and "vol ratio (vol_long is 0)" in flat.rationale

    account_only = RiskAgent().vote(
        snap({"vol_short": math.nan}, account_view=account(drawdown=0.1))
    )
    assert account_only.scale == pytest.approx(0.5)
    assert "volatility (vol_long unknown)" in account_only.rationale


def test_risk_agent_with_nothing_to_measure_has_no_opinion_and_no_scale() -> None:
    vote = RiskAgent().vote(snap({}))
    assert vote.is_neutral and vote.scale is None
    assert vote.rationale.startswith("no risk factor measurable")
    assert "no account view" in vote.rationale and "vol_long unknown" in vote.rationale


# ----------------------------------------------------------------------------------- execution


@pytest.mark.parametrize(
    ("vol_long", "scale"), [(0.0, 1.0), (0.003, 1.0), (0.005, 1.0), (0.01, 0.5), (0.02, 0.25)]
)
def test_execution_agent_sizes_by_volatility_target(vol_long: float, scale: float) -> None:
    vote = ExecutionAgent(target_vol=0.005).vote(snap({"vol_long": vol_long}))
    assert vote.scale == pytest.approx(scale)
    assert vote.direction == 0.0 and vote.confidence == 0.0 and vote.is_neutral


@pytest.mark.parametrize(
    ("vol_long", "offset"),
    [(0.003, 15.0), (0.0001, 2.0), (0.02, 50.0), (0.0, 2.0)],  # 0.5 * vol * 1e4, clamped [2, 50]
)
def test_execution_agent_advises_a_vol_scaled_clamped_limit_when_calm(
    vol_long: float, offset: float
) -> None:
    features = {"vol_long": vol_long, "zscore": 1.0, "momentum": 0.005}
    vote = ExecutionAgent().vote(snap(features, account_view=account()))
    assert vote.execution == ExecutionAdvice(order_type="limit", limit_offset_bps=offset, slices=1)
    assert f"limit {offset:.2f} bps inside close (vol-scaled)" in vote.rationale


@pytest.mark.parametrize(
    ("features", "risk_state", "reason"),
    [
        ({"zscore": 3.5}, "active", "|zscore| 3.50 >= 3"),
        ({"zscore": -3.0}, "active", "|zscore| 3.00 >= 3"),
        ({"momentum": -0.04}, "active", "|momentum| 0.04 >= 0.03"),
        ({}, "reducing", "risk state reducing"),
        ({}, "halted", "risk state halted"),
    ],
)
def test_execution_agent_goes_to_market_when_urgent(
    features: dict[str, float], risk_state: str, reason: str
) -> None:
    calm = {"vol_long": 0.003, "zscore": 0.5, "momentum": 0.001}
    vote = ExecutionAgent().vote(snap(calm | features, account_view=account(risk_state=risk_state)))
    assert vote.execution == ExecutionAdvice(order_type="market", slices=1)
    assert f"market: urgent, {reason}" in vote.rationale


def test_execution_agent_can_be_forced_to_market_orders() -> None:
    vote = ExecutionAgent(prefer_limit=False).vote(snap({"vol_long": 0.003, "zscore": 0.0}))
    assert vote.execution is not None and vote.execution.order_type == "market"
    assert vote.execution.limit_offset_bps == 0.0
    assert "limit orders disabled" in vote.rationale


def test_execution_agent_without_volatility_gives_no_scale_and_the_smallest_offset() -> None:
    vote = ExecutionAgent(min_offset_bps=3.0).vote(snap({"vol_long": None}))
    assert vote.scale is None
    assert vote.execution == ExecutionAdvice(order_type="limit", limit_offset_bps=3.0, slices=1)
    assert "no vol target (vol_long unknown)" in vote.rationale
    assert "vol_long unknown: smallest offset" in vote.rationale


@pytest.mark.parametrize(
    ("volume", "slices"),
    [
        (1_000.0, 1),  # bar notional 100, 10% = 10 >> full position 0.25
        (25.0, 1),  # 10% of 2.5 = 0.25: exactly one bar's worth
        (10.0, 3),  # 0.25 / 0.1 = 2.5 -> 3
        (5.0, 5),  # 0.25 / 0.05 = 5
        (0.1, 10),  # 250x -> capped at max_slices
        (0.0, 10),  # nothing traded
    ],
)
def test_execution_agent_slices_a_full_position_beyond_max_participation(
    volume: float, slices: int
) -> None:
    vote = ExecutionAgent(max_participation=0.1, max_slices=10).vote(
        snap({"vol_long": 0.003}, account_view=account(), close=0.1, volume=volume)
    )
    assert vote.execution is not None and vote.execution.slices == slices


def test_execution_agent_slices_scale_with_equity_and_position_limit() -> None:
    view = account(equity=4.0, peak_equity=4.0, max_position=0.5)  # full position 2.0
    vote = ExecutionAgent(max_participation=0.2, max_slices=50).vote(
        snap({"vol_long": 0.003}, account_view=view, close=0.1, volume=30.0)  # 0.2 * 3 = 0.6
    )
    assert vote.execution is not None and vote.execution.slices == 4  # 2.0 / 0.6 = 3.33
    assert "4 slices (full position 2 = 3.33x 0.2 of bar notional 3)" in vote.rationale


def test_execution_agent_slice_count_ignores_float_noise_at_a_whole_ratio() -> None:
    # full position 0.1 * 3.0 = 0.30000000000000004 in floats; 10% of 10 * 0.1 = 0.1
    view = account(equity=3.0, peak_equity=3.0, max_position=0.1)
    vote = ExecutionAgent().vote(snap({"vol_long": 0.003}, account_view=view, volume=10.0))
    assert vote.execution is not None and vote.execution.slices == 3


def test_execution_agent_without_account_advises_one_slice() -> None:
    vote = ExecutionAgent().vote(snap({"vol_long": 0.003}, volume=0.001))
    assert vote.execution is not None and vote.execution.slices == 1
    assert "no account view" in vote.rationale


# ----------------------------------------------------------------------------------- arbitrage


def test_arbitrage_buys_when_this_venue_is_cheaper_net_of_fees() -> None:
    # spread 0.0997 / 0.1 - 1 = -30 bps; cost 2 * 10 bps = 20; edge 10 bps; min 5, full 50
    vote = ArbitrageAgent().vote(snap({"peer_close": 0.1}, close=0.0997))
    assert vote.direction == 1.0 and vote.confidence == pytest.approx(5 / 45)
    assert vote.rationale.startswith("buy: this venue cheaper; spread -30.0 bps")
    assert "cost 20.0 bps, edge +10.0 bps" in vote.rationale


def test_arbitrage_sells_when_this_venue_is_dearer() -> None:
    vote = ArbitrageAgent().vote(snap({"peer_close": 0.1}, close=0.10035))  # +35 bps, edge 15
    assert vote.direction == -1.0 and vote.confidence == pytest.approx(10 / 45)
    assert vote.rationale.startswith("sell: this venue dearer")


def test_arbitrage_confidence_is_full_at_full_edge() -> None:
    vote = ArbitrageAgent().vote(snap({"peer_close": 0.1}, close=0.099))  # -100 bps, edge 80
    assert (vote.direction, vote.confidence) == (1.0, 1.0)
    exact = ArbitrageAgent(min_edge_bps=0.0, full_edge_bps=80.0).vote(
        snap({"peer_close": 0.1}, close=0.099)
    )
    assert exact.confidence == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("params", "close"),
    [
        ({}, 0.0998),  # -20 bps: edge 0
        ({}, 0.09976),  # -24 bps: edge 4 <= min 5
        ({}, 0.10024),  # +24 bps: edge 4 <= min 5
        ({"fee_bps": 15.0}, 0.0997),  # the -30 bps that buys at 10 bps fees is eaten by 15
        ({"extra_bps": 10.0}, 0.0997),  # or by 10 bps of slippage and transfer costs
        ({}, 0.1),  # no spread at all
    ],
)
def test_arbitrage_is_neutral_when_the_edge_does_not_cover_costs(
    params: dict[str, float], close: float
) -> None:
    vote = ArbitrageAgent(**params).vote(snap({"peer_close": 0.1}, close=close))
    assert vote.is_neutral and vote.direction == 0.0
    assert vote.rationale.startswith("no edge")


@pytest.mark.parametrize("peer", [None, math.nan, math.inf])
def test_arbitrage_abstains_without_a_peer_price(peer: float | None) -> None:
    vote = ArbitrageAgent().vote(snap({"peer_close": peer, "close": 0.1}))
    assert vote.is_neutral and "peer_close missing" in vote.rationale
    assert ArbitrageAgent().vote(snap({})).is_neutral


@pytest.mark.parametrize("peer", [0.0, -0.1])
def test_arbitrage_abstains_on_a_non_price(peer: float) -> None:
    vote = ArbitrageAgent().vote(snap({"peer_close": peer}))
    assert vote.is_neutral and "is not a price" in vote.rationale


def test_arbitrage_reads_a_configurable_peer_feature() -> None:
    agent = ArbitrageAgent(peer_feature="kraken_close")
    assert agent.vote(snap({"peer_close": 0.1}, close=0.099)).is_neutral
    assert agent.vote(snap({"kraken_close": 0.1}, close=0.099)).direction == 1.0


# ------------------------------------------------------------------------------ build / params


@pytest.mark.parametrize(
    ("class_path", "cls", "params", "attribute", "value"),
    [
        ("trading.agents.risk:RiskAgent", RiskAgent, {"drawdown_hard": 0.2}, "drawdown_hard", 0.2),
        (
            "trading.agents.execution:ExecutionAgent",
            ExecutionAgent,
            {"prefer_limit": False, "max_slices": 4},
            "max_slices",
            4,
        ),
        (
            "trading.agents.arbitrage.ArbitrageAgent",
            ArbitrageAgent,
            {"fee_bps": 7.5, "min_edge_bps": 1},
            "fee_bps",
            7.5,
        ),
    ],
)
def test_agents_build_from_config(
    class_path: str, cls: type, params: dict[str, Any], attribute: str, value: object
) -> None:
    agent = build_agent({"name": "custom", "class": class_path, "params": params})
    assert isinstance(agent, cls) and agent.name == "custom"
    assert getattr(agent, attribute) == value
    defaults = build_agent({"name": "plain", "class": class_path})
    assert isinstance(defaults, cls)
    vote = safe_vote(defaults, snap(CALM_VOL | {"peer_close": 0.1}, account_view=account()))
    assert vote.agent == "plain" and "agent error" not in vote.rationale


RISK = "trading.agents.risk:RiskAgent"
EXECUTION = "trading.agents.execution:ExecutionAgent"
ARBITRAGE = "trading.agents.arbitrage:ArbitrageAgent"


@pytest.mark.parametrize(
    ("class_path", "params", "message"),
    [
        (RISK, {"drawdown_soft": 0.2}, r"need 0 <= drawdown_soft < drawdown_hard"),
        (RISK, {"drawdown_hard": 1.5}, r"drawdown_hard must be <= 1"),
        (RISK, {"vol_ratio_soft": "high"}, r"vol_ratio_soft must be a finite number"),
        (RISK, {"exposure_hard": math.nan}, r"exposure_hard must be a finite number"),
        (RISK, {"exposure_soft": -0.1}, r"need 0 <= exposure_soft < exposure_hard"),
        (RISK, {"bar_vol_soft": None}, r"bar_vol_soft and bar_vol_hard must both be set"),
        (RISK, {"bar_vol_soft": 0.05}, r"need 0 <= bar_vol_soft < bar_vol_hard"),
        (RISK, {"reduce_confidence": 2}, r"reduce_confidence must be in \[0, 1\]"),
        (RISK, {"vol_ratio": 2}, r"bad params"),
        (EXECUTION, {"target_vol": 0}, r"target_vol must be > 0"),
        (EXECUTION, {"prefer_limit": "no"}, r"prefer_limit must be true or false"),
        (EXECUTION, {"urgent_zscore": -1}, r"urgent_zscore must be > 0"),
        (EXECUTION, {"urgent_momentum": None}, r"urgent_momentum must be a finite number"),
        (EXECUTION, {"offset_vol_multiple": -0.5}, r"offset_vol_multiple must be >= 0"),
        (EXECUTION, {"min_offset_bps": 60}, r"min_offset_bps <= max_offset_bps"),
        (EXECUTION, {"max_offset_bps": 1e4}, r"max_offset_bps < 10000"),
        (EXECUTION, {"max_participation": 1.5}, r"max_participation must be in \(0, 1\]"),
        (EXECUTION, {"max_slices": 0}, r"max_slices must be an integer in \[1, 1000\]"),
        (EXECUTION, {"max_slices": 2.5}, r"max_slices must be an integer"),
        (ARBITRAGE, {"fee_bps": -1}, r"fee_bps must be >= 0"),
        (ARBITRAGE, {"extra_bps": math.inf}, r"extra_bps must be a finite number"),
        (ARBITRAGE, {"min_edge_bps": 60}, r"need min_edge_bps < full_edge_bps"),
        (ARBITRAGE, {"peer_feature": " "}, r"peer_feature must be a non-blank feature name"),
        (ARBITRAGE, {"fees": 10}, r"bad params"),
    ],
)
def test_bad_params_give_clear_errors(
    class_path: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_agent({"name": "x", "class": class_path, "params": params})


def test_votes_are_deterministic() -> None:
    snapshot = snap(
        {"vol_short": 0.0045, "vol_long": 0.002, "zscore": 1.0, "peer_close": 0.1},
        account_view=account(drawdown=0.1),
        close=0.0997,
    )
    for agent in (RiskAgent(), ExecutionAgent(), ArbitrageAgent()):
        assert agent.vote(snapshot) == agent.vote(snapshot)


# ----------------------------------------------------------------------------------- committee


def committee(weights: dict[str, float]) -> Committee:
    return Committee(
        [TrendAgent(), RiskAgent(), ExecutionAgent()],
        weights=weights,
        quorum=1,
        min_confidence=0.1,
    )


def test_a_risk_veto_zeroes_the_committee_scale_but_not_its_direction() -> None:
    snapshot = snap(TREND_UP | {"vol_short": 0.005}, account_view=account(gross_exposure=1.0))
    proposal = committee({"trend": 0.6, "risk": 0.2, "execution": 0.2}).decide(snapshot)
    assert proposal.quorum_met and proposal.direction == 1.0 and proposal.confidence == 1.0
    assert proposal.scale == 0.0
    # the advisor's limit advice is the first given: 0.5 * 0.005 * 1e4 = 25 bps
    assert proposal.execution == ExecutionAdvice(
        order_type="limit", limit_offset_bps=25.0, slices=1
    )


def test_the_committee_takes_the_smaller_of_risk_and_vol_target_scales() -> None:
    # vol_long 0.01: vol target 0.005 / 0.01 = 0.5; risk: ratio 1, bar vol 1.0, drawdown 0.08
    # -> 0.7
    features = TREND_UP | {"vol_short": 0.01, "vol_long": 0.01, "sma_fast": 1.04}
    proposal = committee({"trend": 0.6, "risk": 0.2, "execution": 0.2}).decide(
        snap(features, account_view=account(drawdown=0.08))
    )
    assert proposal.quorum_met and proposal.direction == 1.0
    assert proposal.scale == pytest.approx(0.5)
    risk_vote = next(v for v in proposal.votes if v.agent == "risk")
    assert risk_vote.scale == pytest.approx(0.7)


def test_a_deep_drawdown_reduce_vote_can_turn_the_committee_bearish() -> None:
    snapshot = snap(TREND_UP | {"vol_short": 0.005}, account_view=account(drawdown=0.2))
    outvoted = committee({"trend": 0.4, "risk": 0.6, "execution": 0.0}).decide(snapshot)
    assert outvoted.quorum_met and outvoted.direction == pytest.approx(-0.2)
    assert outvoted.scale == 0.0
    assert outvoted.execution.order_type == "limit"  # risk state still active

    balanced = committee({"trend": 0.5, "risk": 0.5, "execution": 0.0}).decide(snapshot)
    assert not balanced.quorum_met and balanced.direction == 0.0 and balanced.scale == 0.0


# ----------------------------------------------------------------------------------- real data


def real_snapshots(candles: pd.DataFrame) -> tuple[pd.DataFrame, list[MarketSnapshot]]:
    eth = candles[candles["symbol"] == "ETH/BTC"].reset_index(drop=True)
    features = compute_features(eth)
    columns = [c for c in features.columns if c not in ("symbol", "ts")]
    snapshots = []
    for candle, row in zip(
        eth.itertuples(index=False), features.itertuples(index=False), strict=True
    ):
        bar = Bar(
            symbol="ETH/BTC",
            ts=candle.open_time,
            open=candle.open,
            high=candle.high,
            low=candle.low,
            close=candle.close,
            volume=candle.volume,
        )
        snapshots.append(
            MarketSnapshot(
                symbol="ETH/BTC",
                ts=bar.ts,
                bar=bar,
                features={c: getattr(row, c) for c in columns},
                account=account(),
            )
        )
    frame = features.assign(volume=eth["volume"].to_numpy())
    return frame, snapshots


def test_risk_and_execution_agree_with_a_vectorised_recomputation_on_real_data(
    january_candles: pd.DataFrame,
) -> None:
    frame, snapshots = real_snapshots(january_candles)
    risk, execution = RiskAgent(), ExecutionAgent()
    risk_scales = np.array([np.nan if (s := risk.vote(x).scale) is None else s for x in snapshots])
    advice = [execution.vote(x) for x in snapshots]

    ratio = frame["vol_short"] / frame["vol_long"]
    ratio_scale = ((3.0 - ratio) / 1.5).clip(0.0, 1.0).fillna(1.0)
    bar_vol_scale = ((0.03 - frame["vol_long"]) / 0.02).clip(0.0, 1.0)
    expected_risk = np.minimum(ratio_scale, bar_vol_scale).where(frame["vol_long"].notna(), 1.0)
    # no vol_long: only the calm account (drawdown 0, exposure 0) is measured -> 1.0
    np.testing.assert_allclose(np.nan_to_num(risk_scales, nan=-1.0), expected_risk, atol=1e-12)
    assert 0 < (risk_scales < 1.0).sum() < len(snapshots) / 10  # real data: mostly calm

    vol_scale = (0.005 / frame["vol_long"]).clip(upper=1.0)
    got_scale = np.array([np.nan if v.scale is None else v.scale for v in advice])
    np.testing.assert_allclose(got_scale, vol_scale, atol=1e-12)

    urgent = (frame["zscore"].abs() >= 3.0) | (frame["momentum"].abs() >= 0.03)
    order_types = np.array([v.execution.order_type for v in advice if v.execution is not None])
    np.testing.assert_array_equal(order_types == "market", urgent.to_numpy())
    assert urgent.any() and not urgent.all()

    offsets = (0.5 * frame["vol_long"] * 1e4).clip(2.0, 50.0).fillna(2.0).where(~urgent, 0.0)
    got_offsets = [v.execution.limit_offset_bps for v in advice if v.execution is not None]
    np.testing.assert_allclose(got_offsets, offsets, atol=1e-9)

    slices = np.ceil(0.25 / (0.1 * frame["volume"] * frame["close"]) - 1e-9).clip(1, 10)
    got_slices = [v.execution.slices for v in advice if v.execution is not None]
    np.testing.assert_array_equal(got_slices, slices.astype(int))
