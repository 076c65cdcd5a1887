"""Plant fake secrets everywhere a real one would be, run what produces output, scan it all.

The planted values are recognisable strings that no code writes on its own: a database
password (in the URL every component receives), source API keys, and a freshly generated EC
private key for the Coinbase broker. Each part below runs a real path with them:

- a Dagster run of raw assets on PostgreSQL reached through the password URL, one of them
  against a local FRED server that echoes the request URL (key included) in its error page: the
  whole event log (messages, metadata, failures) and the run record are scanned;
- a live session with the planted Coinbase key against the local fake of the Advanced Trade API;
- ``coinswarm control`` with the password URL, and with a password URL that cannot connect;
- the MCP server's every resource and tool, and the metrics exporter's ``/metrics``;
- and everything any of them logged or printed.

A part fails if any planted value, or a line of the private key's PEM, shows anywhere.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from cli.main import main as coinswarm
from orchestration.resources.fred import FredLiveClient
from orchestration.resources.postgres import PostgresResource
from orchestration.resources.replay import BinanceReplayClient
from orchestration.trading_control import TradingControl
from tests.assets.ingest.test_raw_assets import (
    BINANCE_OHLCV,
    FRED_OBSERVATIONS,
    PARTITION,
    BinanceServer,
    _resources,
)
from tests.trading.brokers import test_coinbase as coinbase_fake
from tests.trading.brokers.test_coinbase import BAR, KEY_NAME, LIVE_ENV, SYMBOL, T0

pytestmark = pytest.mark.integration

DB_PASSWORD = "pgPLANTED-5ecret-Pa55w0rd"
FRED_KEY = "fredPLANTEDkey0123456789abcdef0"
NEWSAPI_KEY = "newsapiPLANTED-key-9f8e7d"
X_TOKEN = "xPLANTED-bearer-AAAAAAAAAAAA"
SCAN_ROLE = "secrets_scan"
# Nothing listens on port 9: every connection through this URL fails, password and all.
UNREACHABLE_URL = f"postgresql+psycopg://{SCAN_ROLE}:{DB_PASSWORD}@127.0.0.1:9/none"

server = coinbase_fake.server
fake = coinbase_fake.fake
ec_key = coinbase_fake.ec_key


def _pem_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


@pytest.fixture(scope="module")
def planted_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def secrets(planted_key: str) -> list[str]:
    return [DB_PASSWORD, FRED_KEY, NEWSAPI_KEY, X_TOKEN, *_pem_lines(planted_key)]


@pytest.fixture
def password_url(pg_url: str, pg_engine: sa.Engine) -> Iterator[str]:
    """The test database reached as a role whose password is planted."""
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {SCAN_ROLE}"))
        conn.execute(sa.text(f"CREATE ROLE {SCAN_ROLE} LOGIN SUPERUSER PASSWORD '{DB_PASSWORD}'"))
    url = sa.make_url(pg_url).set(username=SCAN_ROLE, password=DB_PASSWORD)
    yield url.render_as_string(hide_password=False)
    from orchestration.resources.postgres import dispose_engine

    dispose_engine(url)
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"DROP OWNED BY {SCAN_ROLE}"))
        conn.execute(sa.text(f"DROP ROLE IF EXISTS {SCAN_ROLE}"))


@pytest.fixture
def planted_env(
    monkeypatch: pytest.MonkeyPatch, password_url: str, planted_key: str
) -> dict[str, str]:
    env = {
        "COINSWARM_DEPLOYMENT": "prod",
        "COINSWARM_POSTGRES_URL": password_url,
        "FRED_API_KEY": FRED_KEY,
        "NEWSAPI_API_KEY": NEWSAPI_KEY,
        "X_BEARER_TOKEN": X_TOKEN,
        "COINBASE_API_KEY_NAME": KEY_NAME,
        "COINBASE_API_PRIVATE_KEY": planted_key,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(autouse=True)
def _log_everything(caplog: pytest.LogCaptureFixture) -> None:
    """Every part's DEBUG records too: a secret in a debug line is still a leak."""
    caplog.set_level(logging.DEBUG)


def assert_clean(where: str, text: str, secrets: list[str]) -> None:
    found = [s for s in secrets if s in text]
    assert not found, f"{where} shows a planted secret: {found[0][:6]}..."


def _everything_logged(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture) -> str:
    """Every log record and printed line, but the access log of the test's own HTTP server:
    it plays the venue, receives the key as the venue would, and its log is the venue's."""
    out, err = capfd.readouterr()
    venue_access_log = re.compile(r'^.*127\.0\.0\.1 - - \[.*\] ".*$', re.M)
    records = "\n".join(
        f"{r.getMessage()} {r.exc_text or ''} {r.args!r}"
        for r in caplog.records
        if not r.name.startswith("werkzeug")
    )
    return "\n".join([venue_access_log.sub("", out), venue_access_log.sub("", err), records])


def test_a_dagster_run_shows_no_secret_in_logs_metadata_or_failures(
    planted_env: dict[str, str],
    password_url: str,
    secrets: list[str],
    httpserver: HTTPServer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    echoed: list[str] = []

    def echoing_500(request: Request) -> Response:
        echoed.append(request.url)
        return Response(f"Internal Server Error for {request.url}", status=500)

    httpserver.expect_request(re.compile(r"^/fred/.*")).respond_with_handler(echoing_500)
    binance = BinanceServer(httpserver, BinanceReplayClient())
    httpserver.expect_request(re.compile(r"^/api/v3/klines$")).respond_with_handler(binance.handle)
    postgres = PostgresResource(url=dg.EnvVar("COINSWARM_POSTGRES_URL"))
    fred = FredLiveClient(
        api_key=dg.EnvVar("FRED_API_KEY"),
        base_url=httpserver.url_for("/fred"),
        max_attempts=2,
        backoff_initial_s=0.01,
        backoff_max_s=0.02,
    )
    with dg.DagsterInstance.ephemeral() as instance:
        runs = [
            dg.materialize(
                [asset],
                partition_key=PARTITION,
                resources=_resources(postgres, fred_client=fred, binance_client=binance.client()),
                instance=instance,
                raise_on_error=False,
            )
            for asset in (BINANCE_OHLCV, FRED_OBSERVATIONS)
        ]
        assert runs[0].success and not runs[1].success
        assert echoed and all(FRED_KEY in url for url in echoed), "the key was really sent"
        for run in runs:
            for entry in instance.all_logs(run.run_id):
                assert_clean(
                    f"event {entry.dagster_event_type}", dg.serialize_value(entry), secrets
                )
            record = instance.get_run_by_id(run.run_id)
            assert_clean("the run record", dg.serialize_value(record), secrets)
        materialized = runs[0].asset_materializations_for_node(BINANCE_OHLCV.op.name)
        assert materialized and materialized[0].metadata
        assert_clean("asset metadata", repr(materialized[0].metadata), secrets)
    assert_clean("logs and output", _everything_logged(caplog, capfd), secrets)


def test_a_live_session_shows_no_key_in_logs_or_errors(
    planted_env: dict[str, str],
    pg_engine: sa.Engine,
    fake: coinbase_fake.FakeCoinbase,
    secrets: list[str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    from orchestration.live import open_live_session
    from trading.brokers.coinbase import TradingHalted
    from trading.config import load_committee_config
    from trading.domain import Proposal
    from trading.portfolio import Portfolio

    # The fake verifies JWTs with the module's test key; this key is another, so every request
    # is refused with 401: the error path is what must stay clean.
    config = load_committee_config().model_copy(update={"quote": "USD", "initial_cash": 1e5})
    control = TradingControl(pg_engine)
    control.release_live("scan", actor="test")
    session = open_live_session(
        config,
        control,
        {**planted_env, **LIVE_ENV},
        portfolio=Portfolio("USD", 1e5),
        base_url=fake.base_url,
    )
    session.risk_gate.start_day(1e5, T0.date())
    proposal = Proposal(
        symbol=SYMBOL, ts=BAR.ts, direction=1.0, confidence=1.0, votes=(), quorum_met=True
    )
    with pytest.raises(Exception) as raised:
        session.execution.execute(proposal, session.portfolio, BAR, {SYMBOL: BAR.close})
    assert not isinstance(raised.value, TradingHalted)
    assert fake.requests, "the broker really called the venue"
    assert_clean("the broker's error", f"{raised.value!r} {raised.value}", secrets)
    assert_clean("the session's repr", repr(session.execution.broker), secrets)
    assert_clean("logs and output", _everything_logged(caplog, capfd), secrets)


def test_the_control_cli_shows_no_password_even_when_it_cannot_connect(
    planted_env: dict[str, str],
    secrets: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    assert coinswarm(["control", "pause", "--reason", "scan", "--actor", "scan"]) == 0
    assert coinswarm(["control", "status"]) == 0
    monkeypatch.setenv("COINSWARM_POSTGRES_URL", UNREACHABLE_URL)
    with pytest.raises(Exception) as raised:
        coinswarm(["control", "status"])
    assert_clean("the connection error", f"{raised.value!r} {raised.value}", secrets)
    assert_clean("logs and output", _everything_logged(caplog, capfd), secrets)


TOOL_ARGUMENTS = {
    "signals_and_votes": {},
    "propose_paper_order": {"symbol": "ETH/BTC", "side": "buy", "quantity": 1.0, "reason": "scan"},
    "run_backtest": {"datasets": ["binance-ETHBTC-5m-2018-01.csv"], "max_bars": 300},
    "trading_status": {},
    "pause_trading": {"reason": "scan"},
    "resume_trading": {"reason": "scan"},
    "engage_kill_switch": {"reason": "scan"},
}


def test_every_mcp_resource_and_tool_shows_no_secret(
    planted_env: dict[str, str],
    password_url: str,
    secrets: list[str],
    tmp_path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    import anyio
    from mcp import Client

    from orchestration.mcp import build_mcp_server
    from orchestration.resources.postgres import engine_for_url
    from orchestration.resources.replay import BUNDLED_BINANCE_DIR
    from trading.config import load_committee_config

    server = build_mcp_server(
        engine_for_url(password_url),
        committee_config=load_committee_config(),
        reports_dir=tmp_path,
        candle_interval="5m",
        dataset_dirs=[BUNDLED_BINANCE_DIR],
    )

    async def everything() -> list[str]:
        answers: list[str] = []
        async with Client(server) as client:
            resources = (await client.list_resources()).resources
            templates = (await client.list_resource_templates()).resource_templates
            uris = [str(r.uri) for r in resources] + [
                re.sub(r"\{\?[^}]*\}", "", t.uri_template)
                .replace("{symbol}", "ETH-BTC")
                .replace("{ticker}", "BTC")
                .replace("{name}", "default")
                for t in templates
            ]
            for uri in uris:
                try:
                    answers.append((await client.read_resource(uri)).model_dump_json())
                except Exception as exc:  # an empty database answers some with errors
                    answers.append(f"{uri}: {exc!r} {exc}")
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert tools == set(TOOL_ARGUMENTS), tools
            for name, arguments in TOOL_ARGUMENTS.items():
                answers.append((await client.call_tool(name, arguments)).model_dump_json())
        return answers

    answers = anyio.run(everything)
    assert len(answers) >= 20
    for answer in answers:
        assert_clean("an MCP answer", answer, secrets)
    assert_clean("logs and output", _everything_logged(caplog, capfd), secrets)


def test_the_metrics_exporter_shows_no_password_reachable_or_not(
    planted_env: dict[str, str],
    secrets: list[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture,
) -> None:
    from prometheus_client import generate_latest

    from cli.metrics import StoreExporter, exporter_registry
    from orchestration.deployment import Deployment

    scrapes = []
    for url in (
        planted_env["COINSWARM_POSTGRES_URL"],
        UNREACHABLE_URL,
    ):
        monkeypatch.setenv("COINSWARM_POSTGRES_URL", url)
        exporter = StoreExporter(Deployment.PROD, mongo=False, dagster=False, budget_s=5.0)
        try:
            scrapes.append(generate_latest(exporter_registry(exporter.collector)).decode())
        finally:
            exporter.close()
    reachable, unreachable = scrapes
    assert 'coinswarm_scrape_success{part="postgres_trading"} 1.0' in reachable
    assert 'coinswarm_scrape_success{part="postgres_trading"} 0.0' in unreachable
    for scrape in scrapes:
        assert_clean("/metrics", scrape, secrets)
    assert_clean("logs and output", _everything_logged(caplog, capfd), secrets)
