from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trading.agents.arbitrage import ArbitrageAgent
from trading.agents.execution import ExecutionAgent
from trading.agents.mean_reversion import MeanReversionAgent
from trading.agents.risk import RiskAgent
from trading.agents.trend import TrendAgent
from trading.config import (
    CommitteeConfigError,
    build_session,
    load_committee_config,
    parse_committee_config,
)
from trading.portfolio import Portfolio


def default_data() -> dict:
    return load_committee_config().model_dump(by_alias=True)


def test_the_packaged_default_loads_and_builds_a_session() -> None:
    config = load_committee_config()
    assert config.quote == "BTC" and config.initial_cash == 1.0
    assert (config.fee_bps, config.slippage_bps) == (10, 5)
    assert config.risk.max_position_fraction == 0.25
    assert config.risk.max_gross_exposure_fraction == 1.0
    assert config.risk.max_order_fraction == 0.10
    assert config.risk.max_daily_loss_fraction == 0.05
    session = build_session(config)
    agents = session.committee.agents
    assert [type(a) for a in agents] == [
        TrendAgent, MeanReversionAgent, RiskAgent, ExecutionAgent, ArbitrageAgent,
    ]  # fmt: skip
    assert session.portfolio.cash == 1.0 and session.portfolio.quote == "BTC"
    assert type(session.committee.weight_provider).__name__ == "PerformanceWeights"
    assert [type(o).__name__ for o in session.committee.observers] == [
        "PerformanceWeights", "Reflection",
    ]  # fmt: skip


def test_a_config_round_trips_through_yaml(tmp_path: Path) -> None:
    path = tmp_path / "committee.yaml"
    path.write_text(yaml.safe_dump(default_data()))
    assert load_committee_config(path) == load_committee_config()


@pytest.mark.parametrize(
    ("change", "location"),
    [
        (lambda d: d["risk"].update(max_position_fraction=2), "risk.max_position_fraction"),
        (lambda d: d.update(surprise=1), "surprise"),
        (lambda d: d["agents"][0].update(klass="x"), "agents.0.klass"),
        (lambda d: d.update(quorum=0), "quorum"),
        (lambda d: d["weights"].pop("trend"), "weights: missing agents ['trend']"),
        (lambda d: d.update(quorum=6), "quorum: 6 exceeds"),
        (lambda d: d["planner"]["priors"].update(ranging={"trnd": 1.0}), "planner.priors.ranging"),
        (lambda d: d["planner"]["priors"].update(sideways={"trend": 1.0}), "sideways"),
        (lambda d: d["weighting"].update(scheme="magic"), "weighting.scheme"),
        (lambda d: d["features"].update(sma_fast=100), "sma_fast"),
        (lambda d: d["sizing"].update(rebalance_band_fraction=1.5), "rebalance_band_fraction"),
        (lambda d: d["agents"][2]["params"].update(drawdown_hard=0.01), "drawdown"),
        (lambda d: d.update(fee_bps=60), "execution_cost_allowance_bps"),
        (lambda d: d.update(quote="btc"), "quote"),
    ],
)
def test_bad_config_names_the_field(change, location: str, tmp_path: Path) -> None:
    data = default_data()
    change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CommitteeConfigError, match="bad.yaml") as excinfo:
        load_committee_config(path)
    assert location in str(excinfo.value)


def test_unreadable_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(CommitteeConfigError, match="cannot read"):
        load_committee_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("agents: [\n")
    with pytest.raises(CommitteeConfigError, match="not valid YAML"):
        load_committee_config(broken)
    with pytest.raises(CommitteeConfigError, match="mapping"):
        parse_committee_config(["not", "a", "mapping"])


def test_build_session_refuses_a_portfolio_in_another_quote() -> None:
    with pytest.raises(CommitteeConfigError, match="quoted in USDT"):
        build_session(load_committee_config(), Portfolio("USDT", 1000.0))


def test_build_session_takes_a_broker_and_refuses_a_gate_with_other_limits() -> None:
    from trading.brokers.paper import PaperBroker
    from trading.risk import RiskGate

    config = load_committee_config()
    broker = PaperBroker(fee_bps=0.0, slippage_bps=0.0)
    gate = RiskGate(config.risk)
    session = build_session(config, broker=broker, risk_gate=gate)
    assert session.execution.broker is broker and session.risk_gate is gate
    looser = config.risk.model_copy(update={"max_order_fraction": 1.0})
    with pytest.raises(CommitteeConfigError, match="other limits"):
        build_session(config, risk_gate=RiskGate(looser))
