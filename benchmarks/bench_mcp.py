"""What the MCP protocol layer costs: per-call latency of the Coinswarm MCP server
(``orchestration.mcp.build_mcp_server``, official ``mcp`` SDK) against the same work done by
calling its Python objects directly, and the cold start of ``coinswarm mcp --transport stdio``.

The database is seeded exactly as tests/orchestration/test_mcp_server.py seeds it: the script
runs that module's own ``seed_rows`` and ``seeded`` fixture functions (their ``__wrapped__``
bodies) against a throwaway embedded PostgreSQL 18 migrated to head. That is three days
(2018-01-10..12) of the bundled real Binance 5m candles of ETH, LTC and ADA vs BTC through
``trading.features``/``trading.regime`` and a ``build_session`` trading session of the packaged
committee (decisions, orders, fills, positions, PnL), VADER sentiment of a few texts, the candle
gate's verdicts and a backtest report. The servers are built by the test module's ``_server``
and the HTTP one served by its ``_serving_http`` (uvicorn in a thread, streamable HTTP).

1. Per call, four operations:

   * ``read coinswarm://candles/ETH-BTC?limit=100`` (baseline ``TradingViews.candles``),
   * ``read coinswarm://positions`` (baseline ``TradingViews.positions``),
   * ``call signals_and_votes`` with no arguments, all three pairs (baseline
     ``TradingViews.signals_and_votes(None)``),
   * ``call propose_paper_order``: a buy of 1% of equity of a pair the session ended flat in,
     which the risk gate approves (baseline ``PaperOrderDesk.propose``). Every call, ours and the
     baseline's, records one row in ``trading.order_proposals``, as in production.

   Four paths each: the direct Python call (the baseline: the object the handler calls, built
   over the same engine); the same plus the JSON text the server makes of the answer (a
   resource's ``json.dumps(..., indent=2)`` in ``_resource_answer``, a tool's text content as
   the SDK renders it with ``pydantic_core.to_json(..., indent=2)``), to show how much of the
   gap is our own encoding; ``mcp.Client`` connected in-process to the ``MCPServer``; and
   ``mcp.Client`` over streamable HTTP with one session kept open for every call. The paths take
   turns within every round, after ``--warmup`` untimed rounds, in the orders of a Williams
   Latin square: each path runs in every position and right after every other path equally
   often. (A plain rotation put the direct call always right after the HTTP call, whose server
   thread is still finishing its response, and made the baseline look slower than itself plus
   JSON encoding.) ``--gap-ms`` adds an idle pause before every call (default none: calls back
   to back, as a client makes them). Figures: P50 and P90 over ``--calls`` rounds; ratios and
   differences are against the direct call's P50.

   Checks (the script stops if one fails): before timing, each MCP answer must equal the direct
   answer (the resource's JSON text, the tool's structured content); during timing, every
   proposal must be approved and every call of every path must send the database the same
   number of SQL statements as the direct call (counted on the engine), so no answer came from a
   cache; afterwards ``trading.order_proposals`` must hold exactly one row per proposal made.

2. Cold start, median of ``--cold-runs``, after one untimed round of each (a process cold start
   on a warm file cache): ``coinswarm mcp --transport stdio`` (prod deployment against the seeded
   database, as the test runs it) from spawning the process to the first answered
   ``list_tools`` through ``mcp.Client``, with the time to a connected session beside it;
   against ``python -c "import orchestration.mcp"`` and ``python -c pass`` as subprocesses.

Run from the repo root::

    .venv/bin/python benchmarks/bench_mcp.py [--calls 200] [--warmup 20] [--cold-runs 3]
    .venv/bin/python benchmarks/bench_mcp.py --quick     # 30 calls, 5 warm-up, 1 cold run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # for tests.orchestration.test_mcp_server (the seed)

import anyio  # noqa: E402
import pydantic_core  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402
from mcp_types import Implementation  # noqa: E402

from orchestration.embedded import ensure_postgres, stop_postgres  # noqa: E402
from orchestration.mcp.paper_orders import PaperOrderDesk  # noqa: E402
from orchestration.mcp.views import TradingViews, jsonable  # noqa: E402
from orchestration.migrations import upgrade_to_head  # noqa: E402
from tests.orchestration import test_mcp_server as seed  # noqa: E402

CLIENT = Implementation(name="bench", version="1.0")
ACTOR = "mcp:bench"  # what the server records for this client; the baseline passes the same
COINSWARM = Path(sys.executable).with_name("coinswarm")
DIRECT = "direct Python call"
ENCODED = "direct + JSON text as served"
INPROC = "mcp.Client, in-process"
HTTP = "mcp.Client, streamable HTTP"
LOCAL = (DIRECT, ENCODED)


@dataclass(frozen=True)
class Figure:
    operation: str
    path: str
    calls: int
    p50_ms: float
    p90_ms: float
    mean_ms: float
    p50_over_direct: float
    p50_minus_direct_ms: float
    sql_per_call: float


@dataclass(frozen=True)
class Cold:
    what: str
    runs: int
    median_s: float
    min_s: float
    max_s: float
    samples_s: list[float]


class _TempPaths:
    """The one thing ``seed_rows`` asks of pytest's ``TempPathFactory``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))


@contextlib.contextmanager
def throwaway_postgres(root: Path) -> Iterator[str]:
    """A fresh embedded PostgreSQL under ``root``, migrated; stopped whatever happens."""
    data_dir = root / "pgdata"

    def terminate(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        url = ensure_postgres(data_dir, database="bench")
        upgrade_to_head(url)
        yield url
    finally:
        stop_postgres(data_dir)
        signal.signal(signal.SIGTERM, previous)


class StatementCounter:
    """SQL statements the engine has sent, all threads (the HTTP server runs in another)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.count = 0

    def _seen(self, *_args: Any) -> None:
        self.count += 1

    def __enter__(self) -> StatementCounter:
        sa.event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)


def balanced_orders(n: int) -> list[list[int]]:
    """A Williams Latin square: over its n rounds every path runs once in every position and
    directly after every other path once, so neither drift nor what the previous call left
    running (the HTTP server's thread finishing a response, a worker thread) favours a path."""
    first = [0]
    low, high = 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    squares = [[(p + shift) % n for p in first] for shift in range(n)]
    return squares if n % 2 == 0 else squares + [row[::-1] for row in squares]


def _p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1] if len(values) >= 2 else values[0]


# ------------------------------------------------------------------------------ per-call latency


Call = Callable[[], Awaitable[Any]]


async def measure(
    operation: str,
    paths: dict[str, Call],
    check: Callable[[str, Any], None],
    counter: StatementCounter,
    calls: int,
    warmup: int,
    gap_s: float,
) -> list[Figure]:
    samples: dict[str, list[float]] = {name: [] for name in paths}
    statements: dict[str, set[int]] = {name: set() for name in paths}
    names = list(paths)
    orders = balanced_orders(len(names))
    for index in range(warmup + calls):
        for position in orders[index % len(orders)]:
            name = names[position]
            if gap_s:
                await anyio.sleep(gap_s)
            before = counter.count
            started = time.perf_counter()
            answer = await paths[name]()
            elapsed = (time.perf_counter() - started) * 1000
            statements[name].add(counter.count - before)
            check(name, answer)
            if index >= warmup:
                samples[name].append(elapsed)
    sent = statements[DIRECT]
    for name, counts in statements.items():
        if counts != sent or len(counts) != 1:
            raise SystemExit(
                f"{operation}: {name} sent {sorted(counts)} SQL statements per call, the direct "
                f"call {sorted(sent)}: not the same work"
            )
    direct = statistics.median(samples[DIRECT])
    return [
        Figure(
            operation,
            name,
            len(values),
            statistics.median(values),
            _p90(values),
            statistics.fmean(values),
            statistics.median(values) / direct,
            statistics.median(values) - direct,
            float(next(iter(statements[name]))),
        )
        for name, values in samples.items()
    ]


def _resource_json(result: Any) -> Any:
    return json.loads(result.contents[0].text)


def _tool_content(result: Any) -> dict[str, Any]:
    if result.is_error:
        raise SystemExit(f"the tool answered with an error: {result.content[0].text}")
    return result.structured_content


def resource_text(answer: Any) -> str:
    """The text a resource handler serves (orchestration.mcp.server._resource_answer)."""
    return json.dumps(answer, indent=2, ensure_ascii=False, allow_nan=False)


def tool_text(answer: Any) -> str:
    """The text content the SDK makes of a tool's dict (func_metadata._convert_to_content)."""
    return pydantic_core.to_json(answer, fallback=str, indent=2).decode()


def _same(what: str, direct: Any, served: Any) -> None:
    if jsonable(direct) != served:
        raise SystemExit(f"{what}: the MCP answer differs from the direct call's")


_VOLATILE = ("proposal_id", "recorded_at")


async def per_call(
    seeded: Any, calls: int, warmup: int, gap_ms: float, log: Callable[[str], None]
) -> tuple[list[Figure], dict[str, Any]]:
    engine: sa.Engine = seeded.engine
    rows = seeded.rows
    views = TradingViews(
        engine,
        rows.config,
        candle_interval=seed.INTERVAL,
        data_quality_dir=rows.reports_dir / "data_quality",
    )
    desk = PaperOrderDesk(engine, rows.config, candle_interval=seed.INTERVAL)
    _, flat = seed._held(seeded)
    symbol = flat[0]
    price = seed._latest_close(engine, symbol)
    equity = rows.pnl[-1]["equity"]
    order = {
        "symbol": symbol,
        "side": "buy",
        "quantity": 0.01 * equity / price,  # 1% of equity, well inside every limit
        "reason": "benchmark: a small entry",
    }
    uri_order = {**order, "symbol": symbol.replace("/", "-")}
    info: dict[str, Any] = {"order": order, "equity": equity, "price": price}

    with seed._serving_http(seed._server(seeded)) as url:
        async with (
            Client(seed._server(seeded), client_info=CLIENT, read_timeout_seconds=120) as inproc,
            Client(url, client_info=CLIENT, read_timeout_seconds=120) as http,
        ):
            info["protocol"] = {INPROC: inproc.protocol_version, HTTP: http.protocol_version}
            clients = {INPROC: inproc, HTTP: http}

            def reader(uri: str, direct: Callable[[], Any]) -> dict[str, Call]:
                async def run_direct() -> Any:
                    return direct()

                async def run_encoded() -> Any:
                    answer = jsonable(direct())
                    resource_text(answer)
                    return answer

                def via(client: Client) -> Call:
                    return lambda: client.read_resource(uri)

                return {
                    DIRECT: run_direct,
                    ENCODED: run_encoded,
                    **{n: via(c) for n, c in clients.items()},
                }

            def tool(
                name: str, arguments: dict[str, Any], direct: Callable[[], Any]
            ) -> dict[str, Call]:
                async def run_direct() -> Any:
                    return direct()

                async def run_encoded() -> Any:
                    answer = jsonable(direct())
                    tool_text(answer)
                    return answer

                def via(client: Client) -> Call:
                    return lambda: client.call_tool(name, arguments)

                return {
                    DIRECT: run_direct,
                    ENCODED: run_encoded,
                    **{n: via(c) for n, c in clients.items()},
                }

            operations: list[tuple[str, dict[str, Call], Callable[[str, Any], Any]]] = [
                (
                    "read candles/ETH-BTC?limit=100",
                    reader(
                        "coinswarm://candles/ETH-BTC?limit=100",
                        lambda: views.candles("ETH/BTC", 100),
                    ),
                    lambda path, a: a if path in LOCAL else _resource_json(a),
                ),
                (
                    "read positions",
                    reader("coinswarm://positions", views.positions),
                    lambda path, a: a if path in LOCAL else _resource_json(a),
                ),
                (
                    "call signals_and_votes",
                    tool("signals_and_votes", {}, lambda: views.signals_and_votes(None)),
                    lambda path, a: a if path in LOCAL else _tool_content(a),
                ),
                (
                    "call propose_paper_order",
                    tool(
                        "propose_paper_order",
                        uri_order,
                        lambda: desk.propose(**order, actor=ACTOR),
                    ),
                    lambda path, a: a if path in LOCAL else _tool_content(a),
                ),
            ]

            # Same answers before any timing.
            info["answer_text_bytes"] = {}
            for operation, paths, unwrap in operations:
                direct = jsonable(await paths[DIRECT]())
                for name in (ENCODED, INPROC, HTTP):
                    raw = await paths[name]()
                    if name == INPROC:
                        text = (
                            raw.contents[0].text
                            if operation.startswith("read")
                            else raw.content[0].text
                        )
                        info["answer_text_bytes"][operation] = len(text.encode())
                    served = unwrap(name, raw)
                    if operation.endswith("propose_paper_order"):
                        direct = {k: v for k, v in direct.items() if k not in _VOLATILE}
                        served = {k: v for k, v in served.items() if k not in _VOLATILE}
                        if not served["approved"]:
                            raise SystemExit(f"the gate did not approve: {served['reason']}")
                    _same(f"{operation} ({name})", direct, served)
                if operation.startswith("read candles") and direct["count"] != 100:
                    raise SystemExit(f"candles: {direct['count']} rows, expected 100")
            proposals_before = seed._count(engine, "trading.order_proposals")

            figures: list[Figure] = []
            made = {"proposals": 0}
            with StatementCounter(engine) as counter:
                for operation, paths, unwrap in operations:
                    proposing = operation.endswith("propose_paper_order")

                    def check(path: str, answer: Any, unwrap=unwrap, proposing=proposing) -> None:
                        content = unwrap(path, answer)
                        if proposing:
                            made["proposals"] += 1
                            if content["approved"] is not True:
                                raise SystemExit(f"{path}: not approved: {content['reason']}")

                    began = time.perf_counter()
                    figures += await measure(
                        operation, paths, check, counter, calls, warmup, gap_ms / 1000
                    )
                    log(f"{operation}: {time.perf_counter() - began:.1f}s")
            stored = seed._count(engine, "trading.order_proposals") - proposals_before
            if stored != made["proposals"]:
                raise SystemExit(f"{stored} proposals recorded, {made['proposals']} made")
            info["proposals_recorded"] = stored
    return figures, info


# ------------------------------------------------------------------------------------ cold start


async def _stdio_start(params: StdioServerParameters, errlog: Any) -> tuple[float, float, int]:
    started = time.perf_counter()
    async with Client(stdio_client(params, errlog=errlog), client_info=CLIENT) as client:
        connected = time.perf_counter() - started
        tools = await client.list_tools()
        answered = time.perf_counter() - started
    return connected, answered, len(tools.tools)


def cold_start(seeded: Any, root: Path, runs: int, log: Callable[[str], None]) -> list[Cold]:
    home = root / "home"
    (home / "reports").mkdir(parents=True, exist_ok=True)
    params = StdioServerParameters(
        command=str(COINSWARM),
        args=["mcp", "--transport", "stdio"],
        env=seed._prod_env(seeded, home),
        cwd=str(root),
    )

    def python(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=root)
        return time.perf_counter() - started

    samples: dict[str, list[float]] = {
        "python -c pass": [],
        'python -c "import orchestration.mcp"': [],
        "coinswarm mcp stdio: session connected": [],
        "coinswarm mcp stdio: first list_tools answered": [],
    }
    names = list(samples)
    with (root / "stdio-server.log").open("w") as errlog:
        for index in range(1 + runs):  # one untimed round first
            order = [0, 1, 2][index % 3 :] + [0, 1, 2][: index % 3]
            got: dict[str, float] = {}
            for step in order:
                if step == 0:
                    got[names[0]] = python("pass")
                elif step == 1:
                    got[names[1]] = python("import orchestration.mcp")
                else:
                    connected, answered, tools = anyio.run(_stdio_start, params, errlog)
                    if tools != 7:
                        raise SystemExit(f"coinswarm mcp listed {tools} tools, expected 7")
                    got[names[2]], got[names[3]] = connected, answered
            log(
                "cold round "
                + ("(untimed) " if index == 0 else "")
                + str({k: round(v, 2) for k, v in got.items()})
            )
            if index > 0:
                for name, value in got.items():
                    samples[name].append(value)
    if seed.PASSWORD in (root / "stdio-server.log").read_text():
        raise SystemExit("the stdio server's log shows the database password")
    return [
        Cold(name, len(v), statistics.median(v), min(v), max(v), v) for name, v in samples.items()
    ]


# ------------------------------------------------------------------------------------------ main


def render(figures: list[Figure], colds: list[Cold]) -> str:
    out = [
        f"{'operation':<32} {'path':<30} {'n':>4} {'P50 ms':>8} {'P90 ms':>8} "
        f"{'P50/direct':>10} {'+P50 ms':>8} {'SQL/call':>8}"
    ]
    last = None
    for f in figures:
        op = f.operation if f.operation != last else ""
        last = f.operation
        out.append(
            f"{op:<32} {f.path:<30} {f.calls:>4} {f.p50_ms:>8.3f} {f.p90_ms:>8.3f} "
            f"{f.p50_over_direct:>9.2f}x {f.p50_minus_direct_ms:>8.3f} {f.sql_per_call:>8.0f}"
        )
    out.append("")
    base = next(c for c in colds if "import orchestration.mcp" in c.what)
    out.append(
        f"{'cold start':<48} {'n':>3} {'median s':>9} {'min s':>7} {'max s':>7} {'/import':>8}"
    )
    for c in colds:
        out.append(
            f"{c.what:<48} {c.runs:>3} {c.median_s:>9.3f} {c.min_s:>7.3f} {c.max_s:>7.3f} "
            f"{c.median_s / base.median_s:>7.2f}x"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="timed rounds per operation")
    parser.add_argument("--warmup", type=int, default=20, help="untimed rounds before those")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=0.0,
        help="idle pause before every timed call, so work a previous call left running ends first",
    )
    parser.add_argument("--cold-runs", type=int, default=3, help="timed cold starts (median)")
    parser.add_argument("--quick", action="store_true", help="30 calls, 5 warm-up, 1 cold run")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON to this path")
    args = parser.parse_args(argv)
    if args.quick:
        args.calls, args.warmup, args.cold_runs = 30, 5, 1
    if args.calls < 2 or args.warmup < 0 or args.cold_runs < 1:
        parser.error("--calls must be >= 2, --warmup >= 0, --cold-runs >= 1")
    warnings.simplefilter("ignore")

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="cs-mcp-", dir="/tmp"))  # short unix-socket path
    try:
        seed_rows = seed.seed_rows.__wrapped__(_TempPaths(root))
        log(f"seed computed ({time.perf_counter() - began:.1f}s)")
        with throwaway_postgres(root) as url:
            seeding = seed.seeded.__wrapped__(url, seed_rows)
            seeded = next(seeding)
            try:
                with seeded.engine.connect() as conn:
                    server_version = conn.execute(sa.text("show server_version")).scalar_one()
                counts = {
                    table: seed._count(seeded.engine, table)
                    for table in (
                        "analytics.stg_binance_ohlcv", "signals.features", "signals.regimes",
                        "trading.decisions", "trading.orders", "trading.fills",
                        "trading.positions", "trading.pnl",
                    )
                }  # fmt: skip
                log(f"seeded: {counts}")
                figures, info = anyio.run(
                    per_call, seeded, args.calls, args.warmup, args.gap_ms, log
                )
                colds = cold_start(seeded, root, args.cold_runs, log)
            finally:
                next(seeding, None)  # the fixture's own teardown: engine.dispose()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    load_after = os.getloadavg()[0]

    print(
        f"bench_mcp: {os.cpu_count()} cores, python {platform.python_version()}, mcp "
        f"{version('mcp')}, uvicorn {version('uvicorn')}, SQLAlchemy {version('sqlalchemy')}, "
        f"psycopg {version('psycopg')}, PostgreSQL {server_version} (embedded, unix socket)"
    )
    print(
        "seeded as tests/orchestration/test_mcp_server.py: "
        + ", ".join(f"{t} {n:,}" for t, n in counts.items())
    )
    order = info["order"]
    print(
        f"negotiated protocol: in-process {info['protocol'][INPROC]}, HTTP "
        f"{info['protocol'][HTTP]}; proposal: buy {order['quantity']:.6g} {order['symbol']} at "
        f"{info['price']:.6g} (1% of equity {info['equity']:.6g}), "
        f"{info['proposals_recorded']:,} recorded while timing, every one approved"
    )
    print(
        "text of one answer (a tool's answer also carries the same dict as structuredContent): "
        + ", ".join(f"{op} {n:,} B" for op, n in info["answer_text_bytes"].items())
    )
    print(
        f"{args.calls} timed rounds per operation after {args.warmup} untimed; the paths take "
        "turns in every round (Williams Latin square order), "
        f"{args.gap_ms:g} ms idle before each call. Every answer equals the direct call's; every "
        "path sends the same SQL per call.\n"
    )
    print(render(figures, colds))
    print(
        f"\n{time.perf_counter() - began:.0f} s in all; 1-minute load average "
        f"{load_before:.2f} before, {load_after:.2f} after"
    )
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "figures": [asdict(f) for f in figures],
                    "cold_start": [asdict(c) for c in colds],
                    "seeded_rows": counts,
                    "info": info,
                    "machine": {
                        "python": platform.python_version(),
                        "mcp": version("mcp"),
                        "gap_ms": args.gap_ms,
                        "postgresql": server_version,
                        "cpus": os.cpu_count(),
                        "load_before": load_before,
                        "load_after": load_after,
                    },
                },
                indent=2,
                default=str,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
