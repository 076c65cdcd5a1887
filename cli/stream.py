"""``coinswarm stream``: venue websockets -> ticks -> the tick store (and NATS), until stopped.

Live by default (Binance BTC/USDT and ETH/USDT); ``--replay PATH`` feeds recorded sessions
(``../shared/data/ticks/*.gz``, ``../shared/data/ws/cryptofeed-*``) through the same path, at
their recorded pace or ``--as-fast-as-possible``. The store is the deployment's: the local
Parquet catalog under ``$COINSWARM_HOME/ticks``, or InfluxDB in prod (``COINSWARM_INFLUX_URL``,
``_TOKEN``, ``_ORG``, ``_BUCKET``). Ticks are published on NATS when ``--nats-url`` or
``COINSWARM_NATS_URL`` is set. SIGINT/SIGTERM stop it gracefully (the buffer is flushed); a
second signal stops it at once. It ends with one summary line. ``--metrics-port`` serves the
service's counters on ``/metrics`` for Prometheus while it runs (see docs/observability.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from assets.ingest.streams import DEFAULT_SYMBOLS, VENUE_FEEDS
from orchestration.deployment import Deployment, coinswarm_home, current_deployment
from orchestration.resources.ticks import InfluxTickStore, ParquetTickStore, TickStore
from orchestration.streaming.batching import StoreUnavailableError
from orchestration.streaming.replay import RecordingError, recording_venue
from orchestration.streaming.service import (
    Recording,
    StreamConfig,
    StreamService,
    Subscription,
)

EXIT_UNAVAILABLE = 2  # the tick store (or NATS) cannot be reached
EXIT_USAGE = 64
INFLUX_ENV = (
    "COINSWARM_INFLUX_URL",
    "COINSWARM_INFLUX_TOKEN",
    "COINSWARM_INFLUX_ORG",
    "COINSWARM_INFLUX_BUCKET",
)


class UsageError(ValueError):
    """Arguments that do not make a run (unknown venue, no symbols, a missing setting)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "stream",
        help="stream venue websockets (or replay recordings) into the tick store",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--venue",
        nargs="+",
        choices=sorted(VENUE_FEEDS),
        help="venues (default: binance live; for --replay, guessed from each recording)",
    )
    parser.add_argument(
        "--symbols",
        nargs="+",
        metavar="[VENUE:]BASE/QUOTE",
        help="pairs to subscribe to, for every venue or one (coinbase:BTC/USD); "
        "default: " + "; ".join(f"{v} {' '.join(s)}" for v, s in DEFAULT_SYMBOLS.items()),
    )
    parser.add_argument(
        "--url",
        action="append",
        default=[],
        metavar="VENUE=WS_URL",
        help="websocket base URL of a venue (default: the venue's public feed)",
    )
    parser.add_argument(
        "--replay",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="replay these recordings instead of connecting",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--as-fast-as-possible",
        action="store_true",
        help="replay without honouring the recorded receive times",
    )
    pace.add_argument(
        "--pace",
        type=float,
        default=1.0,
        help="replay speed, a multiple of recorded time (default 1: real pace)",
    )
    parser.add_argument(
        "--store",
        choices=("parquet", "influx"),
        help="tick store (default: the deployment's: parquet locally, influx in prod)",
    )
    parser.add_argument(
        "--parquet-root", type=Path, help="Parquet catalog (default: $COINSWARM_HOME/ticks)"
    )
    parser.add_argument(
        "--nats-url",
        default=os.environ.get("COINSWARM_NATS_URL"),
        help="publish stored ticks here (default: $COINSWARM_NATS_URL)",
    )
    parser.add_argument(
        "--gaps-file",
        type=Path,
        help="append each sequence gap here (default: $COINSWARM_HOME/stream/gaps.jsonl)",
    )
    parser.add_argument("--batch-size", type=int, default=StreamConfig().batch_size)
    parser.add_argument("--linger-ms", type=float, default=StreamConfig().linger_ms)
    parser.add_argument("--buffer-limit", type=int, default=StreamConfig().buffer_limit)
    parser.add_argument(
        "--max-connections", type=int, help="stop after this many connections per venue"
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds the backoff jitter")
    parser.add_argument("--quiet", action="store_true", help="log warnings and errors only")
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port at /metrics while streaming (compose: 9465)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address the metrics endpoint listens on (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    parser.set_defaults(func=cmd_stream)


def build_store(choice: str | None, parquet_root: Path | None) -> TickStore:
    if choice is None:
        choice = "influx" if current_deployment() is Deployment.PROD else "parquet"
    if choice == "parquet":
        return ParquetTickStore(parquet_root or coinswarm_home() / "ticks")
    missing = [name for name in INFLUX_ENV if not os.environ.get(name)]
    if missing:
        raise UsageError(f"--store influx needs {', '.join(missing)} in the environment")
    url, token, org, bucket = (os.environ[name] for name in INFLUX_ENV)
    return InfluxTickStore(url, token, org, bucket)


def _symbols_by_venue(venues: list[str], symbols: list[str] | None) -> dict[str, tuple[str, ...]]:
    chosen: dict[str, list[str]] = {venue: [] for venue in venues}
    for item in symbols or []:
        venue, sep, symbol = item.partition(":")
        if not sep:
            for picked in chosen.values():
                picked.append(item)
        elif venue in chosen:
            chosen[venue].append(symbol)
        else:
            raise UsageError(f"--symbols {item}: {venue!r} is not among --venue {venues}")
    return {v: tuple(s) if s else DEFAULT_SYMBOLS[v] for v, s in chosen.items()}


def _urls(items: list[str]) -> dict[str, str]:
    urls = {}
    for item in items:
        venue, sep, url = item.partition("=")
        if not sep or venue not in VENUE_FEEDS or not url.startswith(("ws://", "wss://")):
            raise UsageError(
                f"--url {item}: expected VENUE=ws[s]://..., VENUE one of {sorted(VENUE_FEEDS)}"
            )
        urls[venue] = url
    return urls


def plan(
    args: argparse.Namespace,
) -> tuple[list[Subscription], list[Recording], float | None]:
    """What to stream: live subscriptions, or recordings and their pace."""
    if args.replay:
        recordings = []
        for path in args.replay:
            try:
                venue = args.venue[0] if args.venue else recording_venue(path)
            except (RecordingError, OSError) as exc:
                raise UsageError(str(exc)) from None
            if args.venue and len(args.venue) > 1:
                raise UsageError("--replay takes one --venue (or none, to guess per file)")
            recordings.append(Recording(path, VENUE_FEEDS[venue]))
        return [], recordings, None if args.as_fast_as_possible else args.pace
    venues = args.venue or ["binance"]
    urls = _urls(args.url)
    subscriptions = [
        Subscription(VENUE_FEEDS[venue], symbols, base_url=urls.get(venue))
        for venue, symbols in _symbols_by_venue(venues, args.symbols).items()
    ]
    for subscription in subscriptions:  # refuse bad pairs before connecting
        try:
            subscription.url  # noqa: B018 - validates the symbols
            subscription.feed.subscribe_messages(subscription.symbols)
        except ValueError as exc:
            raise UsageError(f"{subscription.feed.VENUE}: {exc}") from None
    return subscriptions, [], None


async def _run(service: StreamService, subscriptions, recordings, pace) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    signals = 0

    def on_signal(number: int) -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logging.getLogger("coinswarm.stream").warning(
                "%s: stopping (flushing the buffer; signal again to stop at once)",
                signal.Signals(number).name,
            )
            service.stop()
        elif main is not None:
            main.cancel()

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal, number)
    try:
        await service.run(subscriptions, recordings, pace=pace)
    finally:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(number)


def cmd_stream(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        subscriptions, recordings, pace = plan(args)
        store = build_store(args.store, args.parquet_root)
        config = StreamConfig(
            batch_size=args.batch_size,
            linger_ms=args.linger_ms,
            buffer_limit=args.buffer_limit,
            max_connections=args.max_connections,
            seed=args.seed,
            nats_url=args.nats_url or None,
            gaps_path=args.gaps_file or coinswarm_home() / "stream" / "gaps.jsonl",
        )
    except (UsageError, ValueError) as exc:
        print(f"coinswarm stream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    service = StreamService(store, config)
    metrics_server = None
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        from orchestration.metrics import StreamCollector, exporter_registry

        try:
            metrics_server, _ = start_http_server(
                args.metrics_port,
                addr=args.metrics_host,
                registry=exporter_registry(StreamCollector(service)),
            )
        except OSError as exc:
            store.close()
            print(f"coinswarm stream: --metrics-port {args.metrics_port}: {exc}", file=sys.stderr)
            return EXIT_USAGE
    code = 0
    try:
        asyncio.run(_run(service, subscriptions, recordings, pace))
    except (StoreUnavailableError, ConnectionError) as exc:
        print(f"coinswarm stream: {exc}", file=sys.stderr)
        code = EXIT_UNAVAILABLE
    except asyncio.CancelledError:
        print("coinswarm stream: stopped at once; buffered ticks were not stored", file=sys.stderr)
        code = 130
    finally:
        store.close()
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
    print(service.stats.summary(), flush=True)
    return code
