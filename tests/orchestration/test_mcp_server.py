"""The MCP server through the SDK's own client, over streamable HTTP and stdio, against a real
PostgreSQL seeded the way the pipeline writes it.

The seed is a real run: three days of the bundled Binance candles (ETH, LTC, ADA vs BTC) through
``trading.features`` / ``trading.regime`` and a ``build_session`` trading session, whose
decisions, orders, fills, positions and PnL are stored as the trading job stores them; hourly
sentiment from VADER over a few texts; the candle gate's verdicts; a backtest report written by
``write_outputs``. The database URL carries a password that no answer may contain.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import anyio
import pandas as pd
import pytest
import sqlalchemy as sa
import uvicorn
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, Implementation

from orchestration.mcp import build_mcp_server
from orchestration.resources.replay import BUNDLED_BINANCE_DIR
from trading.backtest.data import Dataset, load_dataset
from trading.backtest.engine import run_backtest
from trading.backtest.outputs import write_outputs
from trading.config import CommitteeConfig, build_session, load_committee_config
from trading.features import compute_features
from trading.regime import classify_regimes
from trading.risk import RiskLimits
from trading.sentiment import hourly_sentiment, vader_scores
from trading.snapshots import build_snapshots

pytestmark = pytest.mark.integration

PASSWORD = "Mcp-t3st-Pa55word"
INTERVAL = "5m"
PAIRS = ("ETHBTC", "LTCBTC", "ADABTC")
SEED_END = pd.Timestamp("2018-01-13", tz="UTC")
FAILED_DAY = date(2018, 1, 13)
CLIENT = Implementation(name="test-assistant", version="1.0")
COINSWARM = Path(sys.executable).with_name("coinswarm")
TABLES_THE_TRADING_JOB_OWNS = ("trading.orders", "trading.fills")


# --------------------------------------------------------------------------------------------
# the seed: computed once, stored in each test's fresh database
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeedRows:
    config: CommitteeConfig
    candles: list[dict[str, Any]]
    features: list[dict[str, Any]]
    regimes: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    fills: list[dict[str, Any]]
    positions: list[dict[str, Any]]
    pnl: list[dict[str, Any]]
    sentiment: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    reports_dir: Path


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows with SQL NULL where pandas has NaN (warm-up features), as the IO manager writes."""
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


@pytest.fixture(scope="module")
def seed_rows(tmp_path_factory: pytest.TempPathFactory) -> SeedRows:
    config = load_committee_config()
    frames = []
    for pair in PAIRS:
        dataset = load_dataset(BUNDLED_BINANCE_DIR / f"binance-{pair}-5m-2018-01.csv.gz")
        frames.append(dataset.frame[dataset.frame["ts"] < SEED_END])
    candles = pd.concat(frames, ignore_index=True)
    features = compute_features(candles, config.features)
    regimes = classify_regimes(
        features,
        volatile_ratio=config.regime.volatile_ratio,
        trend_threshold=config.regime.trend_threshold,
    )
    result = build_session(config).run(build_snapshots(candles, features, regimes))

    texts = [
        ("2018-01-12T09:10:00Z", ["BTC"], "newsapi", "Bitcoin rallies strongly, a great win"),
        ("2018-01-12T09:40:00Z", ["BTC", "ETH"], "reddit", "Terrible crash, awful losses"),
        ("2018-01-12T10:05:00Z", ["ETH"], "twitter", "Ethereum upgrade looks good"),
    ]
    scored = pd.DataFrame(
        {
            "published_at": [pd.Timestamp(t) for t, *_ in texts],
            "symbols": [symbols for _, symbols, *_ in texts],
            "source": [source for *_, source, _ in texts],
            "compound": [vader_scores(text).compound for *_, text in texts],
        }
    )
    verdicts = [
        {
            "asset": "raw/binance/ohlcv",
            "partition_date": day,
            "passed": True,
            "rows_checked": int((candles["ts"].dt.date == day).sum()),
            "failures": [],
        }
        for day in sorted(set(candles["ts"].dt.date))
    ]
    verdicts.append(
        {
            "asset": "raw/binance/ohlcv",
            "partition_date": FAILED_DAY,
            "passed": False,
            "rows_checked": 860,
            "failures": ["no gap beyond the interval per symbol: 2 of 860 rows fail, e.g. ADA/BTC"],
        }
    )

    reports_dir = tmp_path_factory.mktemp("reports")
    eth = next(f for f in frames if f["symbol"].iloc[0] == "ETH/BTC")
    report = run_backtest(
        [Dataset(Path("eth.csv"), "binance", "ETH/BTC", eth.reset_index(drop=True))], config
    )
    write_outputs(report, reports_dir / "backtests" / "default", title="seeded report")
    quality = reports_dir / "data_quality"
    quality.mkdir(parents=True)
    (quality / "summary.json").write_text(
        json.dumps(
            {
                "raw_binance_ohlcv__2018-01-12": {
                    "suite": "raw_candles",
                    "success": True,
                    "run_time": "20180112T235900Z",
                    "unsuccessful": 0,
                    "evaluated": 26,
                    "page": None,
                },
                "raw_binance_ohlcv__2018-01-13": {
                    "suite": "raw_candles",
                    "success": False,
                    "run_time": "20180113T235900Z",
                    "unsuccessful": 1,
                    "evaluated": 26,
                    "page": None,
                },
            }  # fmt: skip
        )
    )
    return SeedRows(
        config=config,
        candles=[
            {
                "symbol": r["symbol"],
                "interval": INTERVAL,
                "open_time": r["ts"],
                "open": r["open"],
                "high": r["high"],
                "low": r["low"],
                "close": r["close"],
                "volume": r["volume"],
            }
            for r in candles.to_dict("records")
        ],  # fmt: skip
        features=_records(features),
        regimes=_records(regimes),
        decisions=result.decision_rows(),
        orders=result.order_rows(),
        fills=result.fill_rows(),
        positions=result.daily_positions,
        pnl=result.daily_pnl,
        sentiment=_records(hourly_sentiment(scored)),
        verdicts=verdicts,
        reports_dir=reports_dir,
    )


_STAGING_TABLE = """
create table analytics.stg_binance_ohlcv (
    symbol text, "interval" text, open_time timestamptz, open double precision,
    high double precision, low double precision, close double precision,
    volume double precision, ingested_at timestamptz default now()
)
"""


@dataclass(frozen=True)
class Seeded:
    url: str
    engine: sa.Engine
    rows: SeedRows


@pytest.fixture
def seeded(pg_url: str, seed_rows: SeedRows) -> Iterator[Seeded]:
    """A fresh database holding the seed, reached through a URL with a password."""
    url = sa.make_url(pg_url).set(password=PASSWORD).render_as_string(hide_password=False)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("create schema analytics"))  # dbt's schema
        conn.execute(sa.text(_STAGING_TABLE))
        for name, rows in (
            ("analytics.stg_binance_ohlcv", seed_rows.candles),
            ("signals.features", seed_rows.features),
            ("signals.regimes", seed_rows.regimes),
            ("signals.sentiment_hourly", seed_rows.sentiment),
            ("trading.decisions", seed_rows.decisions),
            ("trading.orders", seed_rows.orders),
            ("trading.fills", seed_rows.fills),
            ("trading.positions", seed_rows.positions),
            ("trading.pnl", seed_rows.pnl),
            ("quality.candle_verdicts", seed_rows.verdicts),
        ):
            schema, table = name.split(".")
            reflected = sa.Table(table, sa.MetaData(), schema=schema, autoload_with=conn)
            conn.execute(reflected.insert(), rows)
    yield Seeded(url=url, engine=engine, rows=seed_rows)
    engine.dispose()


def _server(seeded: Seeded, **overrides: Any):  # noqa: ANN202
    return build_mcp_server(
        seeded.engine,
        committee_config=seeded.rows.config,
        reports_dir=seeded.rows.reports_dir,
        candle_interval=INTERVAL,
        dataset_dirs=[BUNDLED_BINANCE_DIR],
        log_level="WARNING",
        **overrides,
    )


# --------------------------------------------------------------------------------------------
# transports
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serving_http(server) -> Iterator[str]:  # noqa: ANN001
    """The server's streamable-HTTP app under uvicorn in a thread; yields the MCP URL."""
    port = _free_port()
    app = server.streamable_http_app(host="127.0.0.1")
    http = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=http.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not http.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the MCP HTTP server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        http.should_exit = True
        thread.join(30)


class Session:
    """Runs SDK client calls against one server and keeps every answer's text, so a test can
    check that none of them shows the database password."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.seen: list[str] = []

    def run(self, work: Callable[[Client], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            async with Client(self.target, client_info=CLIENT, read_timeout_seconds=120) as c:
                return await work(c)

        try:
            return anyio.run(main)
        except BaseExceptionGroup as group:  # the client's task group wraps what a call raised
            raise _only(group) from None

    def read(self, uri: str) -> Any:
        result = self.run(lambda c: c.read_resource(uri))
        text = result.contents[0].text
        self.seen.append(text)
        return json.loads(text)

    def read_error(self, uri: str) -> MCPError:
        try:
            self.run(lambda c: c.read_resource(uri))
        except MCPError as exc:
            self.seen.append(exc.error.model_dump_json())
            return exc
        raise AssertionError(f"{uri} was read without an error")

    def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        result = self._call(tool, arguments)
        assert not result.is_error, result.content[0].text
        return result.structured_content

    def call_error(self, tool: str, **arguments: Any) -> str:
        result = self._call(tool, arguments)
        assert result.is_error, f"{tool} succeeded: {result.structured_content}"
        return result.content[0].text

    def _call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        result = self.run(lambda c: c.call_tool(tool, arguments))
        self.seen.append(result.model_dump_json())
        return result

    def assert_no_secret(self) -> None:
        assert self.seen
        leaked = [text[:200] for text in self.seen if PASSWORD in text]
        assert not leaked, f"the database password appeared in {leaked}"


def _only(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


@pytest.fixture
def http(seeded: Seeded) -> Iterator[Session]:
    with _serving_http(_server(seeded)) as url:
        session = Session(url)
        yield session
    session.assert_no_secret()


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())


def _proposals(engine: sa.Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("select * from trading.order_proposals order by id"))
        return [dict(row) for row in rows.mappings()]


def _latest_close(engine: sa.Engine, symbol: str) -> float:
    with engine.connect() as conn:
        return float(
            conn.execute(
                sa.text(
                    "select close from analytics.stg_binance_ohlcv where symbol = :s "
                    "order by open_time desc limit 1"
                ),
                {"s": symbol},
            ).scalar_one()
        )


def _held(seeded: Seeded) -> tuple[list[str], list[str]]:
    """(pairs held at the end of the seed, pairs traded but flat)."""
    last = max(row["partition_date"] for row in seeded.rows.positions)
    final = [row for row in seeded.rows.positions if row["partition_date"] == last]
    held = sorted(row["symbol"] for row in final if row["quantity"] > 0)
    flat = sorted({f"{p[:3]}/{p[3:]}" for p in PAIRS} - set(held))
    assert held and flat, "the seeded session must end holding some pairs and not others"
    return held, flat


def _smallest_holding(seeded: Seeded) -> tuple[str, float]:
    last = max(row["partition_date"] for row in seeded.rows.positions)
    final = [r for r in seeded.rows.positions if r["partition_date"] == last and r["quantity"] > 0]
    smallest = min(final, key=lambda r: r["quantity"] * r["mark_price"])
    return smallest["symbol"], smallest["quantity"]


# --------------------------------------------------------------------------------------------
# resources
# --------------------------------------------------------------------------------------------


def test_the_resources_and_templates_are_listed(http: Session) -> None:
    resources = http.run(lambda c: c.list_resources())
    templates = http.run(lambda c: c.list_resource_templates())
    http.seen.append(resources.model_dump_json() + templates.model_dump_json())
    assert {str(r.uri) for r in resources.resources} >= {
        f"coinswarm://{name}"
        for name in ("pairs", "sentiment", "positions", "orders", "fills", "pnl", "quality",
                     "proposals", "control", "backtests")
    }  # fmt: skip
    assert {t.uri_template for t in templates.resource_templates} >= {
        "coinswarm://candles/{symbol}{?limit}",
        "coinswarm://features/{symbol}{?limit}",
        "coinswarm://regimes/{symbol}{?limit}",
        "coinswarm://sentiment/{ticker}{?limit}",
        "coinswarm://backtests/{name}",
    }
    assert all(r.mime_type == "application/json" for r in resources.resources)


def test_market_data_resources_return_the_seeded_rows(http: Session, seeded: Seeded) -> None:
    rows = seeded.rows
    pairs = http.read("coinswarm://pairs")
    assert [p["symbol"] for p in pairs["pairs"]] == ["ADA/BTC", "ETH/BTC", "LTC/BTC"]
    eth_candles = [c for c in rows.candles if c["symbol"] == "ETH/BTC"]
    assert next(p for p in pairs["pairs"] if p["symbol"] == "ETH/BTC")["candles"] == len(
        eth_candles
    )

    candles = http.read("coinswarm://candles/ETH-BTC?limit=5")
    assert candles["symbol"] == "ETH/BTC" and candles["count"] == 5
    assert [c["close"] for c in candles["rows"]] == [c["close"] for c in eth_candles[-5:]]
    assert candles["last_ts"] == eth_candles[-1]["open_time"].isoformat().replace("+00:00", "Z")
    assert http.read("coinswarm://candles/eth%2Fbtc?limit=5")["rows"] == candles["rows"]
    assert http.read("coinswarm://candles/ETH-BTC")["count"] == 100

    features = http.read("coinswarm://features/LTC-BTC?limit=3")
    seeded_ltc = [f for f in rows.features if f["symbol"] == "LTC/BTC"][-3:]
    assert [f["rsi"] for f in features["rows"]] == [f["rsi"] for f in seeded_ltc]
    assert {"sma_fast", "zscore", "momentum", "vol_long"} <= set(features["rows"][0])

    regimes = http.read("coinswarm://regimes/ADA-BTC?limit=4")
    seeded_ada = [r for r in rows.regimes if r["symbol"] == "ADA/BTC"][-4:]
    assert [r["regime"] for r in regimes["rows"]] == [r["regime"] for r in seeded_ada]

    latest = http.read("coinswarm://sentiment")["latest_hour_per_ticker"]
    assert {row["symbol"] for row in latest} == {row["symbol"] for row in rows.sentiment}
    btc = http.read("coinswarm://sentiment/btc")
    seeded_btc = [row for row in rows.sentiment if row["symbol"] == "BTC"]
    assert [r["mean_compound"] for r in btc["rows"]] == [r["mean_compound"] for r in seeded_btc]
    assert btc["rows"][0]["sources"] == seeded_btc[0]["sources"]


def test_account_resources_return_the_seeded_rows(http: Session, seeded: Seeded) -> None:
    rows = seeded.rows
    last_day = max(row["partition_date"] for row in rows.positions)
    positions = http.read("coinswarm://positions")
    assert positions["as_of"] == last_day.isoformat()
    expected = {
        r["symbol"]: r["quantity"] for r in rows.positions if r["partition_date"] == last_day
    }
    assert {p["symbol"]: p["quantity"] for p in positions["positions"]} == expected
    assert positions["equity"] == rows.pnl[-1]["equity"]

    orders = http.read("coinswarm://orders")
    assert orders["total"] == len(rows.orders) and orders["count"] == min(100, len(rows.orders))
    newest = max(rows.orders, key=lambda o: (o["ts"], o["client_order_id"]))
    assert orders["orders"][0]["client_order_id"] == newest["client_order_id"]
    eth_orders = http.read("coinswarm://orders?symbol=ETH-BTC&limit=3")
    assert eth_orders["total"] == sum(o["symbol"] == "ETH/BTC" for o in rows.orders)
    assert {o["symbol"] for o in eth_orders["orders"]} == {"ETH/BTC"}

    fills = http.read("coinswarm://fills?limit=1000")
    assert fills["total"] == fills["count"] == len(rows.fills)
    assert {f["fill_id"] for f in fills["fills"]} == {f["fill_id"] for f in rows.fills}
    assert fills["total_fees"] == pytest.approx(sum(f["fee"] for f in rows.fills))

    pnl = http.read("coinswarm://pnl")
    assert [d["equity"] for d in pnl["days"]] == [d["equity"] for d in rows.pnl]
    summary = pnl["summary"]
    assert summary["equity"] == rows.pnl[-1]["equity"]
    assert summary["total_return"] == pytest.approx(
        rows.pnl[-1]["equity"] / rows.config.initial_cash - 1
    )

    control = http.read("coinswarm://control")
    assert control["trading_allowed"] and control["recent_events"] == []
    assert http.read("coinswarm://proposals")["proposals"] == []


def test_quality_and_backtest_resources(http: Session, seeded: Seeded) -> None:
    quality = http.read("coinswarm://quality")
    gate = quality["candle_gate"]
    assert gate["per_asset"] == [
        {
            "asset": "raw/binance/ohlcv",
            "days": len(seeded.rows.verdicts),
            "passed": len(seeded.rows.verdicts) - 1,
            "failed": 1,
            "first_day": "2018-01-10",
            "last_day": FAILED_DAY.isoformat(),
            "last_checked_at": gate["per_asset"][0]["last_checked_at"],
        }
    ]
    assert [v["partition_date"] for v in gate["failed_days"]] == [FAILED_DAY.isoformat()]
    assert "no gap beyond the interval" in gate["failed_days"][0]["failures"][0]
    assert gate["latest_verdicts"][0]["partition_date"] == FAILED_DAY.isoformat()
    validations = quality["validations"]
    assert validations["total"] == 2 and validations["failed"] == 1
    assert validations["failed_validations"][0]["partition"] == "2018-01-13"

    listing = http.read("coinswarm://backtests")
    assert [r["name"] for r in listing["reports"]] == ["default"]
    written = json.loads(
        (seeded.rows.reports_dir / "backtests" / "default" / "metrics.json").read_text()
    )
    headline = listing["reports"][0]
    assert headline["total_return"] == written["strategy"]["total_return"]
    assert headline["bars"] == written["bars"]
    assert "staged" in listing["run"]["datasets"] and "committee" in listing["run"]["configs"]
    report = http.read("coinswarm://backtests/default")
    assert report["metrics"] == written
    assert set(report["files"]) == {"metrics.json", "report.html", "equity.csv", "trades.csv"}


# --------------------------------------------------------------------------------------------
# signals and votes
# --------------------------------------------------------------------------------------------


def test_signals_and_votes_show_each_agents_vote(http: Session, seeded: Seeded) -> None:
    answer = http.call("signals_and_votes")
    assert answer["trading_allowed"] is True
    by_pair = {p["symbol"]: p for p in answer["pairs"]}
    assert set(by_pair) == {"ADA/BTC", "ETH/BTC", "LTC/BTC"}
    agents = [spec.name for spec in seeded.rows.config.agents]
    for symbol, pair in by_pair.items():
        stored = max(
            (d for d in seeded.rows.decisions if d["symbol"] == symbol), key=lambda d: d["ts"]
        )
        decision = pair["latest_decision"]
        assert decision["ts"] == stored["ts"].isoformat().replace("+00:00", "Z")
        assert decision["direction"] == stored["direction"]
        assert decision["regime"] == stored["regime"]
        assert decision["risk_outcome"]["outcome"] == stored["outcome"]
        assert decision["risk_outcome"]["reason"] == stored["reason"]
        assert [v["agent"] for v in decision["votes"]] == agents
        assert all(v["rationale"] for v in decision["votes"])
        assert pair["latest_features"]["ts"] == decision["ts"]
        assert pair["latest_regime"]["regime"] == stored["regime"]

    one = http.call("signals_and_votes", symbol="eth-btc")
    assert [p["symbol"] for p in one["pairs"]] == ["ETH/BTC"]


# --------------------------------------------------------------------------------------------
# paper orders through the risk gate
# --------------------------------------------------------------------------------------------


def test_a_paper_order_within_limits_is_approved_recorded_and_never_sent(
    http: Session, seeded: Seeded
) -> None:
    engine = seeded.engine
    before = {table: _count(engine, table) for table in TABLES_THE_TRADING_JOB_OWNS}
    _, flat = _held(seeded)
    symbol = flat[0]
    price = _latest_close(engine, symbol)
    equity = seeded.rows.pnl[-1]["equity"]
    quantity = 0.01 * equity / price  # 1% of equity, well inside every limit

    answer = http.call(
        "propose_paper_order",
        symbol=symbol.replace("/", "-"),
        side="buy",
        quantity=quantity,
        reason="test a small entry",
    )
    assert answer["approved"] is True and answer["reason"] == "within limits"
    assert answer["approved_quantity"] == pytest.approx(quantity)
    assert answer["reference_price"] == price and answer["submitted"] is False
    assert answer["account_before"]["equity"] == pytest.approx(equity)
    preview = answer["paper_fill_preview"]
    cfg = seeded.rows.config
    fill = preview["fills"][0]
    assert fill["quantity"] == pytest.approx(quantity)
    assert fill["price"] == pytest.approx(price * (1 + cfg.slippage_bps / 1e4))
    assert fill["fee"] == pytest.approx(fill["quantity"] * fill["price"] * cfg.fee_bps / 1e4)
    after = answer["account_after"]
    assert after["position_quantity"] == pytest.approx(quantity)
    assert after["limit_breaches"] == []

    recorded = _proposals(engine)
    assert len(recorded) == 1
    row = recorded[0]
    assert row["approved"] is True and row["actor"] == "mcp:test-assistant"
    assert (row["symbol"], row["side"]) == (symbol, "buy")
    assert row["quantity"] == pytest.approx(quantity)
    assert row["approved_quantity"] == pytest.approx(quantity)
    assert row["risk_state"] == "active" and row["reference_price"] == price
    assert answer["proposal_id"] == row["id"]
    assert {table: _count(engine, table) for table in TABLES_THE_TRADING_JOB_OWNS} == before
    assert http.read("coinswarm://proposals")["proposals"][0]["id"] == row["id"]


def test_orders_breaking_a_limit_are_rejected_with_the_gates_reason(
    http: Session, seeded: Seeded
) -> None:
    engine = seeded.engine
    limits: RiskLimits = seeded.rows.config.risk
    before = {table: _count(engine, table) for table in TABLES_THE_TRADING_JOB_OWNS}
    _, flat = _held(seeded)
    equity = seeded.rows.pnl[-1]["equity"]

    big = 10 * equity / _latest_close(engine, "ETH/BTC")  # ten times the whole account
    too_big = http.call("propose_paper_order", symbol="ETH/BTC", side="buy", quantity=big,
                        reason="all in")  # fmt: skip
    assert too_big["approved"] is False and too_big["approved_quantity"] is None
    assert "too large for the risk limits" in too_big["reason"]
    assert "max_order_fraction" in too_big["reason"]
    largest = too_big["largest_allowed_quantity"]
    assert 0 < largest < big
    assert largest * too_big["reference_price"] <= limits.max_order_fraction * equity
    assert too_big["paper_fill_preview"] is None

    scaled = http.call("propose_paper_order", symbol="ETH/BTC", side="buy", quantity=big,
                       reason="all in, scaled", allow_scaling=True)  # fmt: skip
    assert scaled["approved"] is True
    assert scaled["approved_quantity"] == pytest.approx(largest)
    assert scaled["reason"].startswith("scaled down") and "max_order_fraction" in scaled["reason"]
    assert scaled["account_after"]["limit_breaches"] == []

    flat_base = flat[0].split("/")[0]
    not_held = http.call("propose_paper_order", symbol=flat[0], side="sell", quantity=1.0,
                         reason="sell what is not held")  # fmt: skip
    assert not_held["approved"] is False
    assert not_held["reason"] == f"long-only spot: no {flat_base} held to sell"

    # The smallest holding, so the held quantity binds before the order-size limit does.
    small, held_quantity = _smallest_holding(seeded)
    assert held_quantity * _latest_close(engine, small) < limits.max_order_fraction * equity
    oversell = http.call("propose_paper_order", symbol=small, side="sell",
                         quantity=3 * held_quantity, reason="sell more than held")  # fmt: skip
    assert oversell["approved"] is False
    assert "held quantity (long-only spot)" in oversell["reason"]
    assert oversell["largest_allowed_quantity"] == pytest.approx(held_quantity)

    killed = http.call("engage_kill_switch", reason="drill: stop everything")
    assert killed["status"]["kill_switch"] is True
    halted = http.call("propose_paper_order", symbol=flat[0], side="buy", quantity=1e-6,
                       reason="while killed")  # fmt: skip
    assert halted["approved"] is False and halted["risk_state"] == "halted"
    assert halted["reason"] == (
        "halted: kill switch engaged by mcp:test-assistant: drill: stop everything"
    )

    recorded = _proposals(engine)
    assert [(r["approved"], r["risk_state"]) for r in recorded] == [
        (False, "active"),
        (True, "active"),
        (False, "active"),
        (False, "active"),
        (False, "halted"),
    ]
    assert [r["reason"] for r in recorded] == [
        too_big["reason"], scaled["reason"], not_held["reason"], oversell["reason"],
        halted["reason"],
    ]  # fmt: skip
    assert {table: _count(engine, table) for table in TABLES_THE_TRADING_JOB_OWNS} == before


# --------------------------------------------------------------------------------------------
# the switches
# --------------------------------------------------------------------------------------------


def _control(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("select * from trading.control")).mappings().one())


def _events(engine: sa.Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select actor, action, reason from trading.control_events order by id")
        )
        return [tuple(row) for row in rows]


def test_pause_resume_and_kill_switch_change_the_control_row_and_are_audited(
    http: Session, seeded: Seeded
) -> None:
    engine = seeded.engine
    tools = {tool.name for tool in http.run(lambda c: c.list_tools()).tools}
    assert tools == {
        "signals_and_votes", "propose_paper_order", "run_backtest", "trading_status",
        "pause_trading", "resume_trading", "engage_kill_switch",
    }  # fmt: skip
    assert not any("reset" in name or "release" in name for name in tools)

    paused = http.call("pause_trading", reason="exchange maintenance")
    assert paused["trading_allowed"] is False and "trading paused" in paused["stopped_reason"]
    row = _control(engine)
    assert row["paused"] and row["pause_reason"] == "exchange maintenance"
    assert row["updated_by"] == "mcp:test-assistant"

    while_paused = http.call("propose_paper_order", symbol="ETH-BTC", side="buy",
                             quantity=1e-6, reason="during the pause")  # fmt: skip
    assert while_paused["approved"] is False
    assert while_paused["reason"].startswith("rejected: trading paused by mcp:test-assistant")

    resumed = http.call("resume_trading", reason="maintenance over")
    assert resumed["trading_allowed"] is True and not _control(engine)["paused"]

    killed = http.call("engage_kill_switch", reason="runaway orders")
    assert killed["trading_allowed"] is False and "only a human resets it" in killed["note"]
    assert _control(engine)["kill_switch"] and _control(engine)["kill_reason"] == "runaway orders"
    still_killed = http.call("resume_trading", reason="try to trade again")
    assert still_killed["status"]["kill_switch"] is True and not still_killed["trading_allowed"]

    status = http.call("trading_status", events=10)
    assert status["status"]["kill_switch"] is True
    assert [e["action"] for e in status["recent_events"]] == ["resume", "kill", "resume", "pause"]
    assert _events(engine) == [
        ("mcp:test-assistant", "pause", "exchange maintenance"),
        ("mcp:test-assistant", "resume", "maintenance over"),
        ("mcp:test-assistant", "kill", "runaway orders"),
        ("mcp:test-assistant", "resume", "try to trade again"),
    ]


def test_the_actor_is_the_configured_name_when_the_client_gives_none(seeded: Seeded) -> None:
    server = _server(seeded, actor="desk-assistant")

    async def pause() -> Any:
        async with Client(server, client_info=Implementation(name="", version="0")) as c:
            return await c.call_tool("pause_trading", {"reason": "in-process"})

    assert not anyio.run(pause).is_error
    assert _events(seeded.engine) == [("desk-assistant", "pause", "in-process")]


# --------------------------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------------------------


def test_bad_arguments_get_a_clear_error_and_change_nothing(http: Session, seeded: Seeded) -> None:
    bad_pair = http.read_error("coinswarm://candles/ETH_BTC")
    assert bad_pair.error.code == INVALID_PARAMS
    assert bad_pair.error.message.startswith("symbol: a pair is BASE/QUOTE or BASE-QUOTE")
    for limit in ("0", "abc", "1001"):
        error = http.read_error(f"coinswarm://candles/ETH-BTC?limit={limit}")
        assert error.error.code == INVALID_PARAMS and error.error.message.startswith("limit:")
    unknown = http.read_error("coinswarm://candles/DOGE-BTC")
    assert unknown.error.code == INVALID_PARAMS
    assert "no candles for DOGE/BTC" in unknown.error.message
    assert "ADA/BTC, ETH/BTC, LTC/BTC" in unknown.error.message
    assert (
        "no backtest report named 'nope'"
        in http.read_error("coinswarm://backtests/nope").error.message
    )
    assert http.read_error("coinswarm://backtests/..%2F..%2Fetc").error.code == INVALID_PARAMS
    assert "a ticker is" in http.read_error("coinswarm://sentiment/BTC_X").error.message

    order = {"symbol": "ETH/BTC", "side": "buy", "quantity": 0.1, "reason": "ok"}
    for field, value, expected in (
        ("quantity", -1, "quantity"),
        ("quantity", "lots", "quantity"),
        ("side", "hold", "side"),
        ("reason", "   ", "must say why"),
        ("symbol", "ETH/BTC/X", "a pair is BASE/QUOTE"),
    ):
        message = http.call_error("propose_paper_order", **{**order, field: value})
        assert expected in message, message
    assert "quoted in USDT" in http.call_error("propose_paper_order", **{**order,
                                               "symbol": "ETH/USDT"})  # fmt: skip
    assert "no quality-gated candles for XMR/BTC" in http.call_error(
        "propose_paper_order", **{**order, "symbol": "XMR-BTC"}
    )
    assert "reason" in http.call_error("pause_trading", reason="")
    assert "reason" in http.call_error("engage_kill_switch", reason="x" * 501)
    assert "unknown 'nope'; configs: committee" in http.call_error("run_backtest", config="nope")
    assert "unknown ['/etc/passwd']" in http.call_error("run_backtest", datasets=["/etc/passwd"])
    assert "max_bars" in http.call_error("run_backtest", max_bars=10_001)

    assert _proposals(seeded.engine) == []
    assert _events(seeded.engine) == []
    assert _control(seeded.engine)["paused"] is False


# --------------------------------------------------------------------------------------------
# backtests on demand
# --------------------------------------------------------------------------------------------


def test_run_backtest_is_bounded_and_runs_the_backtest_code(http: Session, seeded: Seeded) -> None:
    name = "binance-ETHBTC-5m-2018-01"
    answer = http.call("run_backtest", datasets=[name], max_bars=600, end="2018-01-20")
    assert answer["bars_per_pair"] == {"ETH/BTC": 600}
    dataset = load_dataset(BUNDLED_BINANCE_DIR / f"{name}.csv.gz")
    frame = dataset.frame[dataset.frame["ts"] < datetime(2018, 1, 21, tzinfo=UTC)].tail(600)
    direct = run_backtest(
        [Dataset(dataset.path, dataset.venue, dataset.symbol, frame.reset_index(drop=True))],
        load_committee_config(),
    ).metrics
    metrics = answer["metrics"]
    assert metrics["bars"] == direct["bars"] == 600
    assert metrics["end"] == direct["end"] and metrics["final_equity"] == direct["final_equity"]
    assert metrics["strategy"] == direct["strategy"]
    assert metrics["reflection_notes"]["count"] == len(direct["reflection_notes"])
    assert "weights_over_time" not in metrics

    staged = http.call("run_backtest", symbols=["LTC-BTC"], max_bars=300, config="swing")
    assert staged["request"]["datasets"] == ["staged"]
    assert staged["bars_per_pair"] == {"LTC/BTC": 300}
    assert staged["metrics"]["symbols"] == ["LTC/BTC"]

    too_many = http.call_error(
        "run_backtest",
        datasets=["binance-ETHBTC-5m-2018-01", "binance-LTCBTC-5m-2018-01",
                  "binance-ADABTC-5m-2018-01", "binance-XMRBTC-5m-2018-01"],
        max_bars=10_000,
    )  # fmt: skip
    assert "more than 20000" in too_many


# --------------------------------------------------------------------------------------------
# the command over both transports, and secrets
# --------------------------------------------------------------------------------------------


def _prod_env(seeded: Seeded, home: Path) -> dict[str, str]:
    return {
        "COINSWARM_DEPLOYMENT": "prod",
        "COINSWARM_POSTGRES_URL": seeded.url,
        "COINSWARM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
    }


def test_coinswarm_mcp_over_stdio(seeded: Seeded, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "reports").mkdir(parents=True)
    stderr = tmp_path / "server.log"
    with stderr.open("w") as errlog:
        params = StdioServerParameters(
            command=str(COINSWARM),
            args=["mcp", "--transport", "stdio", "--log-level", "INFO"],
            env=_prod_env(seeded, home),
            cwd=str(tmp_path),
        )
        session = Session(stdio_client(params, errlog=errlog))

        async def work(client: Client) -> dict[str, Any]:
            listed = await client.list_resources()
            tools = await client.list_tools()
            candles = await client.read_resource("coinswarm://candles/LTC-BTC?limit=2")
            votes = await client.call_tool("signals_and_votes", {"symbol": "ADA/BTC"})
            order = await client.call_tool(
                "propose_paper_order",
                {"symbol": "ETH-BTC", "side": "buy", "quantity": 0.001, "reason": "stdio test"},
            )
            paused = await client.call_tool("pause_trading", {"reason": "stdio pause"})
            bad = await client.call_tool("signals_and_votes", {"symbol": "nonsense"})
            for result in (listed, tools, candles, votes, order, paused, bad):
                session.seen.append(result.model_dump_json())
            return {
                "resources": {str(r.uri) for r in listed.resources},
                "tools": {t.name for t in tools.tools},
                "candles": json.loads(candles.contents[0].text),
                "votes": votes.structured_content,
                "order": order.structured_content,
                "bad": bad,
            }

        answer = session.run(work)
    assert "coinswarm://pnl" in answer["resources"] and "propose_paper_order" in answer["tools"]
    ltc = [c for c in seeded.rows.candles if c["symbol"] == "LTC/BTC"][-2:]
    assert [c["close"] for c in answer["candles"]["rows"]] == [c["close"] for c in ltc]
    assert answer["votes"]["pairs"][0]["symbol"] == "ADA/BTC"
    assert answer["order"]["approved"] is True
    assert answer["bad"].is_error and "a pair is BASE/QUOTE" in answer["bad"].content[0].text
    assert _proposals(seeded.engine)[0]["actor"] == "mcp:test-assistant"
    assert _control(seeded.engine)["paused"] is True
    session.assert_no_secret()
    assert PASSWORD not in stderr.read_text()


def test_coinswarm_mcp_over_streamable_http(seeded: Seeded, tmp_path: Path) -> None:
    home = tmp_path / "home"
    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [str(COINSWARM), "mcp", "--transport", "http", "--port", str(port)],
            env={**os.environ, **_prod_env(seeded, home)},
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "coinswarm mcp did not listen in time"
            time.sleep(0.2)
        session = Session(f"http://127.0.0.1:{port}/mcp")
        pnl = session.read("coinswarm://pnl")
        assert [d["equity"] for d in pnl["days"]] == [d["equity"] for d in seeded.rows.pnl]
        killed = session.call("engage_kill_switch", reason="http drill")
        assert killed["status"]["kill_switch"] is True
        assert session.call("trading_status")["recent_events"][0]["actor"] == ("mcp:test-assistant")
        session.assert_no_secret()
    finally:
        process.terminate()
        process.wait(30)
    assert "streamable HTTP on http://127.0.0.1" in log.read_text()
    assert PASSWORD not in log.read_text()


def test_a_database_that_cannot_answer_is_reported_without_the_url(seeded: Seeded) -> None:
    unreachable = sa.create_engine(f"postgresql+psycopg://coinswarm:{PASSWORD}@127.0.0.1:1/nowhere")
    server = build_mcp_server(
        unreachable,
        committee_config=seeded.rows.config,
        reports_dir=seeded.rows.reports_dir,
        candle_interval=INTERVAL,
        log_level="CRITICAL",
    )
    session = Session(server)
    error = session.read_error("coinswarm://positions")
    assert error.error.message == (
        "the database could not answer (OperationalError); the MCP server's log has the details"
    )
    message = session.call_error("propose_paper_order", symbol="ETH/BTC", side="buy",
                                 quantity=1.0, reason="db down")  # fmt: skip
    assert message.endswith("the database could not answer (OperationalError); the MCP "
                            "server's log has the details")  # fmt: skip
    session.assert_no_secret()
    assert "127.0.0.1" not in message and "nowhere" not in message
