"""A trading session on the real Coinbase account, only on purpose.

This is where the live broker meets the operator's switches. ``open_live_session`` builds the
same committee -> risk gate -> execution path as the paper job, with three differences:

- it refuses unless both switches are set in the environment (``COINSWARM_LIVE_TRADING=1`` and
  the confirmation phrase) and the Coinbase key is valid (``trading.brokers.coinbase``);
- its risk gate starts in REDUCING (exits only) unless an operator has released live trading in
  ``trading.control`` (``coinswarm control release-live``), and is HALTED while the kill switch
  is engaged;
- the broker reads the kill switch from the database before every order, so engaging it from
  another process (the CLI, the MCP tool) stops the next order at once, and raises
  ``TradingHalted`` instead of sending it.

The paper trading job does not call this: it replays each day after the day's features land,
and those bars are hours old. A live loop deciding on the newest bar is the caller's to run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from orchestration.trading_control import TradingControl
from trading.brokers.coinbase import DEFAULT_BASE_URL, RetryPolicy, build_live_broker
from trading.config import CommitteeConfig, build_session
from trading.memory.store import MemoryStore
from trading.portfolio import Portfolio
from trading.risk import RiskGate
from trading.session import TradingSession

logger = logging.getLogger(__name__)
LIVE_START_REASON = "live trading starts reducing (exits only) until an operator releases it"


def open_live_session(
    config: CommitteeConfig,
    control: TradingControl,
    env: Mapping[str, str],
    *,
    portfolio: Portfolio,
    memory_store: MemoryStore | None = None,
    base_url: str = DEFAULT_BASE_URL,
    timeout: float = 10.0,
    retry: RetryPolicy | None = None,
) -> TradingSession:
    """A session whose orders go to Coinbase Advanced Trade, or ``LiveTradingRefused`` naming
    what is missing. No request is made here."""
    status = control.status()
    gate = RiskGate(config.risk)
    # The broker is only ever built against a gate in REDUCING; the operator's release lifts
    # it afterwards, and the kill switch (if engaged) halts it whatever the release says.
    gate.reduce_only(LIVE_START_REASON)
    control.apply_to(gate, status)
    broker = build_live_broker(
        env,
        risk_gate=gate,
        killed=control.kill_switch_engaged,
        base_url=base_url,
        timeout=timeout,
        retry=retry,
    )
    if status.live_released:
        gate.release_reduce_only()
    logger.warning(
        "live session opened: risk gate %s (%s)",
        gate.state,
        "released by an operator" if status.live_released else "exits only until released",
    )
    return build_session(
        config, portfolio, memory_store=memory_store, broker=broker, risk_gate=gate
    )
