"""``coinswarm mcp``: the MCP server for an AI assistant, over stdio or streamable HTTP.

A thin shell over ``orchestration.mcp``: find the deployment's PostgreSQL the way the other
operator commands do (embedded under ``COINSWARM_HOME`` locally, ``COINSWARM_POSTGRES_URL`` in
prod), load the trading job's committee config, and serve. docs/mcp.md shows how to connect
Claude Desktop or any MCP client.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

DEFAULT_PORT = 8765


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "mcp",
        help="serve the MCP server (resources and guarded tools) to an AI assistant",
        description=(
            "Serves Coinswarm's data as MCP resources and a few guarded tools (signals and "
            "votes, paper order proposals checked by the risk gate, bounded backtests, pause, "
            "resume and the kill switch) over stdio (for a client that starts the server) or "
            "streamable HTTP at http://HOST:PORT/mcp. Nothing it does can place a real order."
        ),
    )
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="HTTP bind address (default loopback; the server has no authentication of its own, "
        "so bind another address only in a container whose port is published on loopback, or "
        "behind an authenticating proxy)",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="committee YAML the risk gate's limits come from (default: the packaged one, as "
        "the trading job uses)",
    )
    parser.add_argument(
        "--datasets-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="another directory of OHLCV CSVs run_backtest may use (the bundled recorded "
        "candles are always offered), e.g. ../shared/data/ohlcv",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default="WARNING",
        help="server log level (the log goes to stderr)",
    )
    parser.set_defaults(func=cmd_mcp)


def cmd_mcp(args: argparse.Namespace) -> int:
    from orchestration.mcp import LOOPBACK_HOSTS

    if args.transport == "http" and args.host not in LOOPBACK_HOSTS:
        print(
            f"coinswarm mcp: warning: --host {args.host} is not a loopback address and the MCP "
            "server has no authentication: anyone who reaches this port can pause trading and "
            "engage the kill switch. Publish it on loopback only or put an authenticating proxy "
            "in front of it.",
            file=sys.stderr,
        )
    if not 0 < args.port < 65536:
        print(f"coinswarm mcp: --port {args.port} is not a TCP port", file=sys.stderr)
        return 2
    missing = [str(d) for d in args.datasets_dir if not d.is_dir()]
    if missing:
        print(
            f"coinswarm mcp: --datasets-dir {', '.join(missing)}: no such directory",
            file=sys.stderr,
        )
        return 2

    import sqlalchemy as sa

    from orchestration.deployment import coinswarm_home
    from orchestration.embedded import EmbeddedServerError
    from orchestration.resources.postgres import deployment_postgres
    from trading.config import CommitteeConfigError, load_committee_config

    # Before stdio serving claims stdout, a starting embedded server or a migration must not
    # write to it: the client would read that as protocol.
    with _stdout_to_stderr():
        try:
            config = load_committee_config(args.config)
            engine = deployment_postgres().get_engine()
        except (CommitteeConfigError, EmbeddedServerError, ValueError) as exc:
            print(f"coinswarm mcp: {exc}", file=sys.stderr)
            return 2
        except sa.exc.DBAPIError as exc:
            # The driver's own message names host, port and user, never the password.
            print(
                "coinswarm mcp: cannot open the deployment's PostgreSQL: "
                f"{type(exc.orig).__name__}: {exc.orig}",
                file=sys.stderr,
            )
            return 2

        from assets.ingest.registry import TRADED_FEED
        from orchestration.mcp import build_mcp_server
        from orchestration.resources.replay import BUNDLED_BINANCE_DIR

        server = build_mcp_server(
            engine,
            committee_config=config,
            reports_dir=coinswarm_home() / "reports",
            candle_interval=TRADED_FEED.interval,
            dataset_dirs=[BUNDLED_BINANCE_DIR, *args.datasets_dir],
            log_level=args.log_level,
        )
    if args.transport == "stdio":
        server.run("stdio")
    else:
        print(
            f"coinswarm mcp: streamable HTTP on http://{args.host}:{args.port}/mcp",
            file=sys.stderr,
            flush=True,
        )
        server.run("streamable-http", host=args.host, port=args.port)
    return 0


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point file descriptor 1 (and so child processes' output) at stderr for a while."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
