"""The raw assets at the Dagster level: what a partition run writes when the source misbehaves.

A real HTTP server speaks Binance's ``/api/v3/klines`` with payloads replayed from the bundled
recordings (``BinanceReplayClient`` gives the venue's exact row shape), the live
``HttpJsonClient`` fetches them, and the window IO manager writes to a real PostgreSQL. Faults
are injected per symbol on that server, so the other symbols of the partition are fetched for
real before the failing one, and "nothing was written" means something.
"""

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
import psycopg
import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from assets.ingest.factory import raw_candle_assets, raw_macro_assets
from assets.ingest.registry import MACRO_FEEDS, TRADED_FEED
from assets.ingest.sources import binance_klines
from orchestration.io_managers.postgres_window import PostgresWindowIOManager, replace_window
from orchestration.resources.fred import FredLiveClient
from orchestration.resources.http import HttpJsonClient
from orchestration.resources.replay import BinanceReplayClient

pytestmark = pytest.mark.integration

PARTITION = "2018-01-12"
DAY_START = datetime(2018, 1, 12, tzinfo=UTC)
DAY_END = datetime(2018, 1, 13, tzinfo=UTC)
CANDLE_TABLE = TRADED_FEED.table
FRED_FEED = MACRO_FEEDS[0]
CANDLE_COLUMNS = ["symbol", "interval", "open_time", "open", "high", "low", "close", "volume"]
SECRET = "sk-test-SECRET-123"

BINANCE_OHLCV = next(a for a in raw_candle_assets if a.key == dg.AssetKey(TRADED_FEED.key))
FRED_OBSERVATIONS = next(a for a in raw_macro_assets if a.key == dg.AssetKey(FRED_FEED.key))

Fault = Callable[[Request, int], Response | None]
"""Given a request and its number for that symbol (1-based), an injected answer or None."""


# -- the fake venue --------------------------------------------------------------------------------


@dataclass
class BinanceServer:
    """Binance's klines endpoint on a real HTTP server, with per-symbol faults and a request log."""

    httpserver: HTTPServer
    replay: BinanceReplayClient
    faults: dict[str, Fault] = field(default_factory=dict)
    requests: list[tuple[str, float]] = field(default_factory=list)

    def handle(self, request: Request) -> Response:
        params = dict(request.args.items())
        symbol = params.get("symbol", "")
        self.requests.append((symbol, time.monotonic()))
        fault = self.faults.get(symbol)
        if fault is not None:
            answer = fault(request, self.count(symbol))
            if answer is not None:
                return answer
        body = self.replay.get_json(request.path, params)
        return Response(json.dumps(body), mimetype="application/json")

    def count(self, symbol: str) -> int:
        return sum(1 for s, _ in self.requests if s == symbol)

    def times(self, symbol: str) -> list[float]:
        return [t for s, t in self.requests if s == symbol]

    def client(self, **overrides: object) -> HttpJsonClient:
        """The live client, pointed at this server, with tiny backoffs and two attempts."""
        settings: dict[str, object] = {
            "venue": "binance",
            "base_url": self.httpserver.url_for(""),
            "timeout_s": 5.0,
            "max_attempts": 2,
            "backoff_initial_s": 0.01,
            "backoff_max_s": 0.02,
            **overrides,
        }
        return HttpJsonClient(**settings)


@pytest.fixture
def binance_server(httpserver: HTTPServer) -> BinanceServer:
    server = BinanceServer(httpserver, BinanceReplayClient())
    httpserver.expect_request(
        re.compile(re.escape(binance_klines.PATH) + "$")
    ).respond_with_handler(server.handle)
    return server


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as ephemeral:
        yield ephemeral


# -- helpers ---------------------------------------------------------------------------------------


def _resources(postgres_resource: object, **clients: object) -> dict[str, object]:
    return {
        "postgres": postgres_resource,
        "postgres_window_io_manager": PostgresWindowIOManager(postgres=postgres_resource),
        **clients,
    }


def _materialize(
    asset: dg.AssetsDefinition,
    resources: dict[str, object],
    instance: dg.DagsterInstance,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset],
        partition_key=PARTITION,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def _recorded_candles(start: datetime = DAY_START, end: datetime = DAY_END) -> pd.DataFrame:
    """The partition as the recordings hold it, parsed by the very same source module."""
    replay = BinanceReplayClient()
    frames = [
        binance_klines.parse(binance_klines.fetch(replay, symbol, start, end), symbol)
        for symbol in TRADED_FEED.symbols
    ]
    return _normalised(pd.concat(frames, ignore_index=True))


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[CANDLE_COLUMNS].copy()
    for column in ("symbol", "interval"):
        frame[column] = frame[column].astype(object)
    frame["open_time"] = pd.to_datetime(frame["open_time"], utc=True).astype("datetime64[us, UTC]")
    return frame.sort_values(["symbol", "open_time"]).reset_index(drop=True)


def _stored_candles(engine: sa.Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text(f"SELECT * FROM {CANDLE_TABLE}"), conn)
    return _normalised(frame)


def _row_count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def _failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Everything the UI shows about the failed step: descriptions, messages, causes."""
    texts: list[str] = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            texts.append(data.user_failure_data.description)
        error = data.error
        while error is not None:
            texts.append(error.message)
            error = error.cause
    assert texts, "the run failed without a step failure event"
    return "\n".join(texts)


def _step_retries(result: dg.ExecuteInProcessResult) -> int:
    return sum(
        1 for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY
    )


def _metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (materialization,) = result.asset_materializations_for_node(BINANCE_OHLCV.op.name)
    return {key: value.value for key, value in materialization.metadata.items()}


def _land_partition(
    binance_server: BinanceServer,
    postgres_resource: object,
    instance: dg.DagsterInstance,
    pg_engine: sa.Engine,
) -> pd.DataFrame:
    """Materialise the partition once, cleanly; returns what was stored."""
    resources = _resources(postgres_resource, binance_client=binance_server.client())
    assert _materialize(BINANCE_OHLCV, resources, instance).success
    stored = _stored_candles(pg_engine)
    assert len(stored) > 0
    return stored


def _always(status: int, body: str, mimetype: str = "application/json") -> Fault:
    return lambda request, number: Response(body, status=status, mimetype=mimetype)


# -- the happy path and idempotency ----------------------------------------------------------------


def test_partition_lands_exactly_the_recorded_candles(
    binance_server: BinanceServer, postgres_resource, pg_engine, instance
) -> None:
    resources = _resources(postgres_resource, binance_client=binance_server.client())

    result = _materialize(BINANCE_OHLCV, resources, instance)

    assert result.success
    expected = _recorded_candles()
    stored = _stored_candles(pg_engine)
    assert len(stored) == len(expected)
    pd.testing.assert_frame_equal(stored, expected, check_exact=True)

    metadata = _metadata(result)
    per_symbol = expected.groupby("symbol").size()
    assert metadata["rows_per_symbol"] == {s: int(n) for s, n in per_symbol.items()}
    assert set(metadata["rows_per_symbol"]) == set(TRADED_FEED.symbols)
    assert metadata["first_open_time"] == expected["open_time"].min().isoformat()
    assert metadata["last_open_time"] == expected["open_time"].max().isoformat()
    assert metadata["first_open_time"].startswith("2018-01-12T00:00")
    assert metadata["synthetic"] is False
    assert metadata["dagster/row_count"] == len(expected)
    # one request per symbol: a day of 5m candles fits one page
    assert sorted(s for s, _ in binance_server.requests) == sorted(
        binance_klines.venue_symbol(s) for s in TRADED_FEED.symbols
    )


def test_rematerialising_a_partition_duplicates_nothing(
    binance_server: BinanceServer, postgres_resource, pg_engine, instance
) -> None:
    first = _land_partition(binance_server, postgres_resource, instance, pg_engine)

    resources = _resources(postgres_resource, binance_client=binance_server.client())
    assert _materialize(BINANCE_OHLCV, resources, instance).success

    assert _row_count(pg_engine, CANDLE_TABLE) == len(first)
    pd.testing.assert_frame_equal(_stored_candles(pg_engine), first, check_exact=True)


# -- a failed partition writes nothing -------------------------------------------------------------


def test_persistent_5xx_fails_the_run_after_step_retries_and_keeps_earlier_rows(
    binance_server: BinanceServer, postgres_resource, pg_engine, instance
) -> None:
    before = _land_partition(binance_server, postgres_resource, instance, pg_engine)
    binance_server.requests.clear()
    binance_server.faults["XMRBTC"] = _always(503, '{"code":-1001,"msg":"Service unavailable."}')

    resources = _resources(postgres_resource, binance_client=binance_server.client())
    result = _materialize(BINANCE_OHLCV, resources, instance)

    assert not result.success
    text = _failure_text(result)
    assert "binance" in text
    assert "HTTP 503" in text and "Service unavailable" in text
    assert "/api/v3/klines" in text
    # transient: the client tried twice per step, and Dagster retried the step twice
    assert _step_retries(result) == 2
    assert binance_server.count("XMRBTC") == 3 * 2
    assert not result.asset_materializations_for_node(BINANCE_OHLCV.op.name)
    pd.testing.assert_frame_equal(_stored_candles(pg_engine), before, check_exact=True)


def _html_page(request: Request, number: int) -> Response:
    return Response(
        "<html><body><h1>502 Bad Gateway</h1>cloudflare</body></html>",
        status=200,
        mimetype="text/html",
    )


def _kline_with_text_price(replay: BinanceReplayClient) -> Fault:
    def answer(request: Request, number: int) -> Response:
        rows = replay.get_json(request.path, dict(request.args.items()))
        rows[7][4] = "not-a-price"  # close of the 8th candle
        return Response(json.dumps(rows), mimetype="application/json")

    return answer


@pytest.mark.parametrize(
    ("make_fault", "expected_problem"),
    [
        (lambda replay: _html_page, "not valid JSON"),
        (_kline_with_text_price, "'close' is not a finite number: 'not-a-price'"),
    ],
    ids=["html-page", "non-numeric-price"],
)
def test_malformed_payload_fails_at_once_without_step_retries(
    binance_server: BinanceServer,
    postgres_resource,
    pg_engine,
    instance,
    make_fault: Callable[[BinanceReplayClient], Fault],
    expected_problem: str,
) -> None:
    before = _land_partition(binance_server, postgres_resource, instance, pg_engine)
    binance_server.requests.clear()
    binance_server.faults["XMRBTC"] = make_fault(binance_server.replay)

    resources = _resources(postgres_resource, binance_client=binance_server.client())
    result = _materialize(BINANCE_OHLCV, resources, instance)

    assert not result.success
    text = _failure_text(result)
    assert "binance" in text and expected_problem in text
    assert _step_retries(result) == 0
    assert binance_server.count("XMRBTC") == 1, "a malformed payload is not worth a retry"
    assert not result.asset_materializations_for_node(BINANCE_OHLCV.op.name)
    pd.testing.assert_frame_equal(_stored_candles(pg_engine), before, check_exact=True)


def test_source_failure_names_the_failing_symbol(
    binance_server: BinanceServer, postgres_resource, instance
) -> None:
    binance_server.faults["XMRBTC"] = _html_page
    resources = _resources(postgres_resource, binance_client=binance_server.client())

    result = _materialize(BINANCE_OHLCV, resources, instance)

    assert not result.success
    assert "XMR/BTC" in _failure_text(result)


def test_timeout_on_every_attempt_fails_clearly_and_writes_nothing(
    binance_server: BinanceServer, postgres_resource, pg_engine, instance
) -> None:
    def too_slow(request: Request, number: int) -> Response | None:
        time.sleep(0.6)
        return None

    binance_server.faults["XMRBTC"] = too_slow
    client = binance_server.client(timeout_s=0.2)

    result = _materialize(
        BINANCE_OHLCV, _resources(postgres_resource, binance_client=client), instance
    )

    assert not result.success
    text = _failure_text(result)
    assert "binance" in text and "timed out" in text and "after 2 attempts" in text
    assert _step_retries(result) == 2
    assert _row_count(pg_engine, CANDLE_TABLE) == 0, "the symbols fetched before were not written"


# -- rate limits -----------------------------------------------------------------------------------


def test_429_with_retry_after_is_waited_out_and_the_partition_lands(
    binance_server: BinanceServer, postgres_resource, pg_engine, instance
) -> None:
    def rate_limited_once(request: Request, number: int) -> Response | None:
        if number > 1:
            return None
        return Response(
            '{"code":-1003,"msg":"Too many requests; current limit is 1200 request weight."}',
            status=429,
            headers={"Retry-After": "1"},
            mimetype="application/json",
        )

    binance_server.faults["ETHBTC"] = rate_limited_once
    resources = _resources(postgres_resource, binance_client=binance_server.client())

    result = _materialize(BINANCE_OHLCV, resources, instance)

    assert result.success
    assert _step_retries(result) == 0, "the client waited it out; Dagster did not need to"
    log_text = "\n".join(entry.message for entry in instance.all_logs(result.run_id))
    assert "rate limited" in log_text and "retrying in 1.00s" in log_text
    first, second = binance_server.times("ETHBTC")
    # the client's own backoff is 10-20 ms: a gap of a second is the server's Retry-After
    assert second - first >= 0.99
    pd.testing.assert_frame_equal(_stored_candles(pg_engine), _recorded_candles(), check_exact=True)


# -- FRED: a missing key is a named failure; a key never reaches the event log ---------------------


def test_missing_fred_key_fails_naming_it_and_never_lands_empty(
    postgres_resource, pg_engine, instance
) -> None:
    resources = _resources(postgres_resource, fred_client=FredLiveClient(api_key=""))

    result = _materialize(FRED_OBSERVATIONS, resources, instance)

    assert not result.success
    assert "FRED_API_KEY" in _failure_text(result)
    assert _step_retries(result) == 0, "a missing key does not come back by retrying"
    assert not result.asset_materializations_for_node(FRED_OBSERVATIONS.op.name)
    assert _row_count(pg_engine, FRED_FEED.table) == 0


def test_fred_key_env_var_unset_or_empty_fails_naming_it(
    postgres_resource, pg_engine, instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The prod binding (orchestration/resources/by_deployment.py), built here rather than
    # through prod_resources() to keep the dbt import out of this file's run time.
    fred_client = FredLiveClient(api_key=dg.EnvVar("FRED_API_KEY"))
    resources = _resources(postgres_resource, fred_client=fred_client)

    monkeypatch.delenv("FRED_API_KEY", raising=False)
    with pytest.raises(dg.DagsterInvalidConfigError, match="FRED_API_KEY"):
        _materialize(FRED_OBSERVATIONS, resources, instance)

    monkeypatch.setenv("FRED_API_KEY", "")
    result = _materialize(FRED_OBSERVATIONS, resources, instance)
    assert not result.success
    assert "FRED_API_KEY is not set" in _failure_text(result)
    assert _row_count(pg_engine, FRED_FEED.table) == 0


def test_fred_key_never_appears_in_the_event_log(
    httpserver: HTTPServer, postgres_resource, pg_engine, instance
) -> None:
    seen: list[str] = []

    def echoing_500(request: Request) -> Response:
        # Some gateways echo the failing URL (query string and all) in their error page.
        seen.append(request.url)
        return Response(f"Internal Server Error for {request.url}", status=500)

    httpserver.expect_request(re.compile(r"^/fred/.*")).respond_with_handler(echoing_500)
    client = FredLiveClient(
        api_key=SECRET,
        base_url=httpserver.url_for("/fred"),
        max_attempts=2,
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
    )

    result = _materialize(
        FRED_OBSERVATIONS, _resources(postgres_resource, fred_client=client), instance
    )

    assert not result.success
    assert seen and all(SECRET in url for url in seen), "the key was really sent"
    text = _failure_text(result)
    assert "fred" in text and "HTTP 500" in text
    assert "series_id=DFF" in text and "api_key=***" in text, "echoed URL shown, key redacted"
    assert _step_retries(result) == 2, "a 5xx is transient: Dagster retried the step"
    entries = instance.all_logs(result.run_id)
    assert len(entries) > 10
    for entry in entries:
        assert SECRET not in entry.message
        assert SECRET not in dg.serialize_value(entry), entry.dagster_event_type
    assert SECRET not in dg.serialize_value(instance.get_run_by_id(result.run_id))
    assert _row_count(pg_engine, FRED_FEED.table) == 0


# -- the window IO manager refuses rows outside the partition --------------------------------------


@pytest.mark.parametrize(
    "stray_time",
    [datetime(2018, 1, 12, 23, 55, tzinfo=UTC), datetime(2018, 1, 14, tzinfo=UTC)],
    ids=["before-start", "at-exclusive-end"],
)
def test_replace_window_refuses_rows_outside_the_window_and_writes_nothing(
    pg_engine: sa.Engine, stray_time: datetime
) -> None:
    earlier = _recorded_candles()
    replace_window(
        pg_engine, CANDLE_TABLE, earlier, partition_expr="open_time", start=DAY_START, end=DAY_END
    )
    start, end = datetime(2018, 1, 13, tzinfo=UTC), datetime(2018, 1, 14, tzinfo=UTC)
    frame = _recorded_candles(start, end)
    stray = frame.iloc[[0]].assign(open_time=pd.Timestamp(stray_time))
    frame = pd.concat([frame, stray], ignore_index=True)

    with pytest.raises(ValueError, match="outside the partition window") as raised:
        replace_window(
            pg_engine, CANDLE_TABLE, frame, partition_expr="open_time", start=start, end=end
        )

    message = str(raised.value)
    assert "1 rows" in message and CANDLE_TABLE in message
    assert str(pd.Timestamp(stray_time)) in message
    pd.testing.assert_frame_equal(_stored_candles(pg_engine), earlier, check_exact=True)


def test_an_asset_returning_rows_outside_its_partition_fails_and_writes_nothing(
    postgres_resource, pg_engine, instance
) -> None:
    @dg.asset(
        key=["raw", "binance", "ohlcv_leaky"],
        partitions_def=BINANCE_OHLCV.partitions_def,
        io_manager_key="postgres_window_io_manager",
        metadata={"table": CANDLE_TABLE, "partition_expr": "open_time"},
    )
    def leaky(context: dg.AssetExecutionContext) -> pd.DataFrame:
        window = context.partition_time_window
        return _recorded_candles(window.start, window.end + pd.Timedelta(minutes=5))

    result = _materialize(leaky, _resources(postgres_resource), instance)

    assert not result.success
    assert "outside the partition window" in _failure_text(result)
    assert _row_count(pg_engine, CANDLE_TABLE) == 0


def test_a_write_failing_half_way_rolls_back_the_delete_too(pg_engine: sa.Engine) -> None:
    earlier = _recorded_candles()
    replace_window(
        pg_engine, CANDLE_TABLE, earlier, partition_expr="open_time", start=DAY_START, end=DAY_END
    )
    rewrite = earlier.copy()
    rewrite.loc[len(rewrite) - 1, "close"] = float("nan")  # NULL into a NOT NULL column

    # The COPY runs on the raw psycopg cursor, so psycopg's own error surfaces.
    with pytest.raises(psycopg.errors.NotNullViolation, match='"close"'):
        replace_window(
            pg_engine,
            CANDLE_TABLE,
            rewrite,
            partition_expr="open_time",
            start=DAY_START,
            end=DAY_END,
        )

    pd.testing.assert_frame_equal(_stored_candles(pg_engine), earlier, check_exact=True)
