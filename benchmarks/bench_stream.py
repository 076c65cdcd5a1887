"""The streaming service: ticks per second into InfluxDB, and receipt-to-stored latency.

1. Throughput. The recorded sessions in ``../shared/data`` (Binance BTC/USDT and ETH/USDT
   ~345 s each, the cryptofeed Binance and Coinbase sessions: 85,078 messages, 68,280 ticks)
   replayed as fast as possible through the service's whole path - parse, gap check,
   de-duplicate, batch, ``InfluxTickStore.write_records`` - into a real InfluxDB 1.6.7 behind the
   v2-write shim the tests use. Baseline, same run, same server, same ticks: the line protocol
   of those ticks, built beforehand, POSTed to the same ``/api/v2/write`` in the same 5,000-line
   bodies, one at a time and two at a time (the service writes two batches at once): the
   server's limit. A third row runs our path into a store that builds the line protocol but
   sends nothing: the path's own ceiling. Each figure is the median of ``--repeats`` runs into a
   fresh database; the methods take turns within each round. Every run of ours is checked: the
   database must hold exactly the ticks sent.

2. Latency. The first ``--latency-seconds`` of both Binance sessions replayed at their recorded
   pace (about 240 messages a second) through the same path, with NATS publishing on, into
   InfluxDB and into the Parquet catalog. For each tick: from the moment its message entered the
   service to the moment its batch was stored and the NATS server had acknowledged its publish
   (a flush round trip). P50, P90, P99 and max.

Run from the repo root (needs Debian's influxdb and nats-server packages)::

    .venv/bin/python benchmarks/bench_stream.py [--json results.json] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # for tests.support (influxd, ports)

from assets.ingest.streams import binance, coinbase  # noqa: E402
from orchestration.deployment import PROJECT_ROOT  # noqa: E402
from orchestration.resources.ticks import (
    InfluxTickStore,
    ParquetTickStore,
    TickStore,
    normalize_ticks,
    record_lines,
    to_line_protocol,
)
from orchestration.streaming.publish import NatsTickPublisher  # noqa: E402
from orchestration.streaming.replay import read_recording  # noqa: E402
from orchestration.streaming.service import Recording, StreamConfig, StreamService  # noqa: E402
from tests.support.influx import influx_query, running_influx  # noqa: E402
from tests.support.streaming import free_port, nats_server_binary  # noqa: E402

DATA = (PROJECT_ROOT / ".." / "shared" / "data").resolve()
RECORDINGS = [
    ("ticks/binance-spot-btcusdt-20240808.gz", binance),
    ("ticks/binance-spot-ethusdt-20240808.gz", binance),
    ("ws/cryptofeed-BINANCE.ws.1.0", binance),
    ("ws/cryptofeed-COINBASE.ws.28.0", coinbase),
]
BODY_LINES = 5_000  # the service's default batch size
OURS = "stream path -> InfluxTickStore"
RAW_1 = "raw line-protocol POST, 1 at a time"
RAW_2 = "raw line-protocol POST, 2 at a time"
CEILING = "stream path, line protocol not sent"


@dataclass(frozen=True)
class Throughput:
    method: str
    ticks: int
    runs: int
    median_s: float
    ticks_per_s: float
    samples_s: list[float]
    ours_over_this: float


@dataclass(frozen=True)
class Latency:
    store: str
    ticks: int
    messages: int
    replayed_s: float
    batches: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float


# -- helpers --------------------------------------------------------------------------------


def recordings() -> list[Recording]:
    return [Recording(DATA / path, module) for path, module in RECORDINGS]


def all_ticks(items: Sequence[Recording]) -> pd.DataFrame:
    ticks = [
        tick
        for r in items
        for m in read_recording(r.path)
        for tick in r.feed.parse(m.payload, m.received_ns).ticks
    ]
    return normalize_ticks(pd.DataFrame(ticks))


class LineProtocolOnly(TickStore):
    """Does what InfluxTickStore does before the network: build the batch's line protocol."""

    def write(self, ticks: pd.DataFrame) -> int:
        return len(to_line_protocol(normalize_ticks(ticks)))

    def write_records(self, records) -> int:  # noqa: ANN001
        return len(record_lines(records))

    def read(self, *args: object, **kwargs: object) -> pd.DataFrame:
        raise NotImplementedError


class AcknowledgedPublisher(NatsTickPublisher):
    """Publishes, then waits for the server's acknowledgement (PING/PONG after the messages)."""

    async def publish(self, ticks) -> int:  # noqa: ANN001
        sent = await super().publish(ticks)
        await self.flush()
        return sent


@contextlib.contextmanager
def shim_process(upstream: str) -> Iterator[str]:
    """The tests' v2-write shim in a process of its own, so it does not share our GIL."""
    port = free_port()
    code = (
        "import sys, time; from tests.support.influx_shim import InfluxV2Shim;"
        f" InfluxV2Shim({upstream!r}, port={port}).start(); time.sleep(10**9)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/ping", timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the v2-write shim did not start")
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def nats_server() -> Iterator[str]:
    binary = nats_server_binary()
    if binary is None:
        raise SystemExit("nats-server not found: apt-get install nats-server")
    port = free_port()
    proc = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(0.3)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class Buckets:
    def __init__(self, upstream: str) -> None:
        self.upstream, self.count = upstream, 0

    def fresh(self) -> str:
        self.count += 1
        name = f"bench_{self.count}"
        influx_query(self.upstream, f'CREATE DATABASE "{name}"')
        return name

    def drop(self, name: str) -> None:
        influx_query(self.upstream, f'DROP DATABASE "{name}"')

    def points(self, name: str) -> int:
        total = 0
        for measurement, field in (("trade", "price"), ("book_top", "ask")):
            query = urllib.parse.urlencode(
                {"db": name, "q": f'SELECT COUNT("{field}") FROM "{measurement}"'}
            )
            with urllib.request.urlopen(f"{self.upstream}/query?{query}", timeout=60) as r:
                body = json.loads(r.read())
            for series in body["results"][0].get("series", []):
                total += int(series["values"][0][1])
        return total


# -- 1. throughput ----------------------------------------------------------------------------


def run_ours(store: TickStore) -> tuple[float, int]:
    service = StreamService(store, StreamConfig())
    started = time.perf_counter()
    stats = asyncio.run(service.run(recordings=recordings()))
    return time.perf_counter() - started, stats.writer.ticks_written


def run_raw(url: str, bucket: str, bodies: Sequence[bytes], concurrency: int) -> float:
    params = {"bucket": bucket, "org": "coinswarm", "precision": "ns"}
    with httpx.Client(timeout=120) as client:

        def post(body: bytes) -> None:
            response = client.post(f"{url}/api/v2/write", params=params, content=body)
            if response.status_code != 204:
                raise RuntimeError(f"raw write failed: {response.status_code} {response.text}")

        started = time.perf_counter()
        if concurrency == 1:
            for body in bodies:
                post(body)
        else:
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(post, bodies))
        return time.perf_counter() - started


def throughput(server, url: str, repeats: int) -> list[Throughput]:  # noqa: ANN001
    expected = all_ticks(recordings())
    lines = to_line_protocol(expected)
    bodies = [
        "\n".join(lines[i : i + BODY_LINES]).encode() for i in range(0, len(lines), BODY_LINES)
    ]
    buckets = Buckets(server.upstream_url)
    samples: dict[str, list[float]] = {OURS: [], RAW_1: [], RAW_2: [], CEILING: []}

    # Warm-up (imports, connection pools, influxd's first shard): not timed.
    warm = buckets.fresh()
    run_ours(InfluxTickStore(url, server.token, server.org, warm))
    run_raw(url, warm, bodies[:2], 1)
    buckets.drop(warm)

    methods = [OURS, RAW_1, RAW_2, CEILING]
    for round_number in range(repeats):
        order = methods[round_number % len(methods) :] + methods[: round_number % len(methods)]
        for method in order:
            if method == CEILING:
                elapsed, written = run_ours(LineProtocolOnly())
                assert written == len(expected)
                samples[method].append(elapsed)
                continue
            bucket = buckets.fresh()
            if method == OURS:
                store = InfluxTickStore(url, server.token, server.org, bucket)
                elapsed, written = run_ours(store)
                store.close()
                stored = buckets.points(bucket)
                if written != len(expected) or stored != len(expected):
                    raise RuntimeError(
                        f"ours wrote {written} and the server holds {stored} of "
                        f"{len(expected)} ticks"
                    )
            else:
                elapsed = run_raw(url, bucket, bodies, 1 if method == RAW_1 else 2)
            samples[method].append(elapsed)
            buckets.drop(bucket)
        print(f"  round {round_number + 1}/{repeats} done", file=sys.stderr, flush=True)

    ours_rate = len(expected) / statistics.median(samples[OURS])
    results = []
    for method in methods:
        median = statistics.median(samples[method])
        rate = len(expected) / median
        results.append(
            Throughput(
                method, len(expected), repeats, median, rate, samples[method], ours_rate / rate
            )  # fmt: skip
        )
    return results


# -- 2. latency -------------------------------------------------------------------------------


def subset(path: Path, seconds: float, out: Path) -> Path:
    messages = list(read_recording(path))
    cutoff = messages[0].received_ns + int(seconds * 1e9)
    with gzip.open(path, "rt") as source, gzip.open(out, "wt") as target:
        for line in source:
            head = line.partition(" ")[0]
            if head.isdigit() and int(head) > cutoff:
                break
            target.write(line)
    return out


def latency(name: str, store: TickStore, items: list[Recording], nats_url: str) -> Latency:
    async def run():  # noqa: ANN202
        publisher = await AcknowledgedPublisher(nats_url).connect()
        service = StreamService(store, StreamConfig(measure_latency=True), publisher=publisher)
        started = time.perf_counter()
        try:
            stats = await service.run(recordings=items, pace=1.0)
        finally:
            await publisher.close()
        return stats, time.perf_counter() - started

    stats, elapsed = asyncio.run(run())
    ms = np.array(stats.writer.latencies_ns, dtype=float) / 1e6
    if len(ms) != stats.writer.ticks_written or stats.writer.published_ticks != len(ms):
        raise RuntimeError("every stored tick must be published and timed")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return Latency(name, len(ms), stats.messages, elapsed, stats.writer.batches,
                   float(p50), float(p90), float(p99), float(ms.max()))  # fmt: skip


# -- report -----------------------------------------------------------------------------------


def render(rates: list[Throughput], lags: list[Latency]) -> str:
    lines = [
        f"{'method':<38} {'ticks':>7} {'n':>3} {'median s':>9} {'ticks/s':>9} {'ours/this':>9}"
    ]
    for r in rates:
        lines.append(
            f"{r.method:<38} {r.ticks:>7,} {r.runs:>3} {r.median_s:>9.3f} "
            f"{r.ticks_per_s:>9,.0f} {r.ours_over_this:>8.2f}x"
        )
    lines += [
        "",
        f"{'latency, real pace':<26} {'ticks':>6} {'msgs':>6} {'run s':>6} {'batches':>7} "
        f"{'P50 ms':>7} {'P90 ms':>7} {'P99 ms':>7} {'max ms':>7}",
    ]
    for r in lags:
        lines.append(
            f"{r.store:<26} {r.ticks:>6,} {r.messages:>6,} {r.replayed_s:>6.1f} {r.batches:>7,} "
            f"{r.p50_ms:>7.2f} {r.p90_ms:>7.2f} {r.p99_ms:>7.2f} {r.max_ms:>7.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this path")
    parser.add_argument("--repeats", type=int, default=5, help="timed throughput runs each")
    parser.add_argument("--latency-seconds", type=float, default=25.0,
                        help="seconds of each Binance session replayed at real pace")  # fmt: skip
    args = parser.parse_args(argv)
    if shutil.which("influxd") is None:
        raise SystemExit("influxd not found: apt-get install influxdb")
    root = Path(tempfile.mkdtemp(prefix="cs-bench-stream-", dir="/tmp"))
    try:
        with (
            running_influx(root / "influx") as server,
            shim_process(server.upstream_url) as url,
            nats_server() as nats_url,
        ):
            print("throughput ...", file=sys.stderr, flush=True)
            rates = throughput(server, url, args.repeats)
            print("latency ...", file=sys.stderr, flush=True)
            items = [
                Recording(subset(DATA / path, args.latency_seconds, root / Path(path).name),
                          binance)
                for path, _ in RECORDINGS[:2]
            ]  # fmt: skip
            buckets = Buckets(server.upstream_url)
            influx = InfluxTickStore(url, server.token, server.org, buckets.fresh())
            lags = [
                latency("InfluxTickStore (prod)", influx, items, nats_url),
                latency("ParquetTickStore (local)", ParquetTickStore(root / "parquet"), items,
                        nats_url),
            ]  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(render(rates, lags))
    if args.json is not None:
        report = {
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average_1m": os.getloadavg()[0],
                "pandas": version("pandas"),
                "influxdb_client": version("influxdb-client"),
                "websockets": version("websockets"),
                "nats_py": version("nats-py"),
            },
            "throughput": [asdict(r) for r in rates],
            "latency": [asdict(r) for r in lags],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
