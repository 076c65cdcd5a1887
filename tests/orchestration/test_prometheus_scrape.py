"""A real Prometheus server scrapes the real exporters, and its queries return their series.

Debian's ``/usr/bin/prometheus`` runs on a free port with a temporary config, scraping every
second, with the repository's alert rules loaded. It scrapes these commands, each in its own
process as in production:

- ``coinswarm metrics`` in the prod deployment's configuration, over a database holding a
  trading session's rows;
- ``coinswarm stream --metrics-port`` replaying a recorded session.

Every process is killed at the end, whatever happens.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from orchestration.deployment import PROJECT_ROOT
from tests.orchestration.test_metrics import TRADED_WINDOW, trade_days
from tests.support.streaming import BTC_TICKS, free_port

pytestmark = pytest.mark.integration

ALERTS = PROJECT_ROOT / "orchestration" / "compose" / "prometheus" / "alerts.yml"
PROMETHEUS_CANDIDATES = ("prometheus", "/usr/bin/prometheus")
WAIT_S = 90.0
"""Upper bound on waiting for a process or a series; the poll returns as soon as it is there."""


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    for candidate in PROMETHEUS_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.skip(
        "prometheus not found (looked for prometheus on PATH and /usr/bin/prometheus): install "
        "Debian's 'prometheus' package (make test does) to run the scrape tests"
    )


def _coinswarm() -> list[str]:
    script = Path(sys.executable).with_name("coinswarm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli.main"]


@contextlib.contextmanager
def running(command: list[str], **popen: Any) -> Iterator[subprocess.Popen]:
    """A child process, killed on the way out if it has not ended by then."""
    process = subprocess.Popen(command, **popen)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)


def _read_line(process: subprocess.Popen, pattern: str) -> re.Match[str]:
    """The first stdout line matching ``pattern``, failing if the process ends or stalls."""
    assert process.stdout is not None
    deadline = time.monotonic() + WAIT_S
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(timeout=1.0):
                line = process.stdout.readline()
                if not line:
                    break
                match = re.search(pattern, line)
                if match:
                    return match
    raise AssertionError(f"{process.args} never printed {pattern!r} (exit {process.poll()})")


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def _eventually(probe: Callable[[], Any], what: str) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` and the last try."""
    deadline = time.monotonic() + WAIT_S
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            last = probe()
            if last:
                return last
        time.sleep(0.25)
    raise AssertionError(f"{what}: not seen within {WAIT_S:.0f}s; last answer: {last!r}")


class Prometheus:
    """The real server, scraping ``targets`` (job -> port) every second."""

    def __init__(self, binary: str, root: Path, targets: dict[str, int]) -> None:
        self.port = free_port()
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(ALERTS)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.command = [
            binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={root / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.url = f"http://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
            return response.status == 200

    def query(self, expr: str) -> dict[tuple[tuple[str, str], ...], float]:
        """Instant query: {sorted labels (without the name, job and instance): value}."""
        answer = _get_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        assert answer["status"] == "success", answer
        return {
            tuple(
                sorted(
                    (k, v)
                    for k, v in r["metric"].items()
                    if k not in ("__name__", "job", "instance")
                )
            ): float(r["value"][1])
            for r in answer["data"]["result"]
        }

    def targets(self) -> list[dict[str, Any]]:
        """The scrape targets as Prometheus sees them (health, last error): for messages."""
        return _get_json(f"{self.url}/api/v1/targets")["data"]["activeTargets"]

    def rules(self) -> list[dict[str, Any]]:
        groups = _get_json(f"{self.url}/api/v1/rules")["data"]["groups"]
        return [{**rule, "group": group["name"]} for group in groups for rule in group["rules"]]

    def evaluated_rules(self) -> list[dict[str, Any]]:
        """The loaded rules once every one of them has been evaluated, else []."""
        rules = self.rules()
        return rules if rules and all(r["health"] != "unknown" for r in rules) else []


def _stop(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=WAIT_S)
    return process.returncode, out


def _rule_groups() -> set[str]:
    return {group["name"] for group in yaml.safe_load(ALERTS.read_text())["groups"]}


def test_prometheus_scrapes_the_store_exporter(
    prometheus_binary: str, pg_url: str, tmp_path: Path
) -> None:
    engine = sa.create_engine(pg_url, connect_args={"options": "-c timezone=UTC"})
    trade_days(engine, *TRADED_WINDOW)
    with engine.connect() as conn:
        expected = {
            (("outcome", outcome),): float(n)
            for outcome, n in conn.execute(
                sa.text("SELECT outcome, count(*) FROM trading.decisions GROUP BY 1")
            )
        }
        equity = conn.execute(
            sa.text("SELECT equity FROM trading.pnl ORDER BY partition_date DESC LIMIT 1")
        ).scalar_one()
    engine.dispose()
    assert expected and sum(expected.values()) > 0
    environment = {
        **os.environ,
        "COINSWARM_DEPLOYMENT": "prod",
        "COINSWARM_POSTGRES_URL": pg_url,
        "COINSWARM_HOME": str(tmp_path / "home"),
    }
    command = [*_coinswarm(), "metrics", "--port", "0", "--no-mongo", "--no-dagster"]
    command += ["--scrape-budget", "0.8", "--quiet"]  # inside the 1 s scrape timeout
    with running(
        command, stdout=subprocess.PIPE, text=True, env=environment, cwd=PROJECT_ROOT
    ) as exporter:
        port = int(_read_line(exporter, r"serving http://[^:]+:(\d+)/metrics").group(1))
        prometheus = Prometheus(prometheus_binary, tmp_path / "prometheus", {"store": port})
        with running(
            prometheus.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as server:
            _eventually(prometheus.ready, "prometheus ready")
            _eventually(lambda: prometheus.query('up{job="store"}'), "a first scrape")
            assert prometheus.query('up{job="store"}') == {(): 1.0}, prometheus.targets()
            decisions = _eventually(
                lambda: prometheus.query("coinswarm_trading_decisions"), "decisions"
            )
            assert decisions == expected
            assert prometheus.query("coinswarm_trading_equity") == {(): pytest.approx(equity)}
            assert prometheus.query("coinswarm_scrape_success") == {
                (("part", p),): 1.0
                for p in ("postgres_ingest", "postgres_quality", "postgres_trading",
                          "postgres_memory")
            }  # fmt: skip
            evaluated = _eventually(prometheus.evaluated_rules, "every alert rule evaluated")
            assert {r["group"] for r in evaluated} == _rule_groups()
            assert [r["name"] for r in evaluated if r["health"] != "ok"] == []
            assert server.poll() is None
        code, out = _stop(exporter)
    assert code == 0 and "coinswarm metrics: stopped" in out


def test_prometheus_scrapes_the_stream_service(
    prometheus_binary: str, shared_data: Path, tmp_path: Path
) -> None:
    metrics_port = free_port()
    command = [
        *_coinswarm(), "stream", "--replay", str(shared_data / BTC_TICKS), "--pace", "5",
        "--store", "parquet", "--parquet-root", str(tmp_path / "ticks"),
        "--gaps-file", str(tmp_path / "gaps.jsonl"), "--metrics-port", str(metrics_port),
        "--quiet",
    ]  # fmt: skip
    environment = {**os.environ, "COINSWARM_HOME": str(tmp_path / "home")}
    with running(
        command, stdout=subprocess.PIPE, text=True, env=environment, cwd=PROJECT_ROOT
    ) as stream:
        prometheus = Prometheus(
            prometheus_binary, tmp_path / "prometheus", {"stream": metrics_port}
        )
        with running(prometheus.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            _eventually(prometheus.ready, "prometheus ready")
            messages = _eventually(
                lambda: prometheus.query('coinswarm_stream_messages_total{venue="binance"} > 0'),
                "binance messages counted",
            )
            assert list(messages) == [(("venue", "binance"),)]
            assert prometheus.query('up{job="stream"}') == {(): 1.0}
            written = _eventually(
                lambda: prometheus.query("coinswarm_stream_ticks_written_total > 0"),
                "ticks written",
            )
            assert written[()] > 0
            # rate() over the 1 s scrapes: the replay is still flowing while Prometheus looks.
            rate = _eventually(
                lambda: prometheus.query(
                    'rate(coinswarm_stream_messages_total{venue="binance"}[5s]) > 0'
                ),
                "a positive message rate",
            )
            assert rate
        code, out = _stop(stream)
    assert stream.poll() is not None
    assert code == 0, out
    summary = re.search(r"messages=([\d,]+)", out)
    assert summary and int(summary.group(1).replace(",", "")) >= messages[(("venue", "binance"),)]
