"""``coinswarm control``: the operator's switches from a shell (the runbooks use it).

Pause and resume the trading job, engage or reset the kill switch, release a live run from
REDUCING, and show the switches with their audit trail. The same switches are behind the MCP
tools; only a human at this command resets the kill switch.
"""

from __future__ import annotations

import argparse
import getpass
import json

ACTIONS = {
    "pause": "pause",
    "resume": "resume",
    "kill": "engage_kill_switch",
    "reset-kill-switch": "reset_kill_switch",
    "release-live": "release_live",
    "withdraw-live": "withdraw_live_release",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "control",
        help="pause/resume trading, engage or reset the kill switch, release live trading",
        description=(
            "Flip the operator's switches in trading.control (the deployment's PostgreSQL). "
            "Every change needs a reason and is recorded with who made it."
        ),
    )
    parser.add_argument("action", choices=["status", *ACTIONS], help="what to do")
    parser.add_argument("--reason", help="why (required for every change)")
    parser.add_argument(
        "--actor", default=None, help="who is acting (default: the login name, prefixed cli:)"
    )
    parser.add_argument("--events", type=int, default=10, help="audit rows to show with status")
    parser.set_defaults(func=cmd_control)


def cmd_control(args: argparse.Namespace) -> int:
    from orchestration.resources.postgres import deployment_postgres
    from orchestration.trading_control import TradingControl

    control = TradingControl(deployment_postgres().get_engine())
    if args.action == "status":
        status = control.status()
        events = [event.model_dump(mode="json") for event in control.events(args.events)]
        print(json.dumps({"status": status.model_dump(mode="json"), "events": events}, indent=2))
        return 0
    if not args.reason:
        raise SystemExit(f"coinswarm control {args.action}: --reason is required")
    actor = args.actor or f"cli:{getpass.getuser()}"
    try:
        status = getattr(control, ACTIONS[args.action])(args.reason, actor=actor)
    except PermissionError as exc:
        raise SystemExit(f"coinswarm control {args.action}: {exc}") from None
    print(json.dumps(status.model_dump(mode="json"), indent=2))
    return 0
