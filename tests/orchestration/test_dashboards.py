"""The Prometheus config, alert rules and Grafana dashboards that compose provisions.

Each file is checked by the tool that will load it where one is installed: ``promtool check``
and ``promtool test rules`` from Debian's ``prometheus`` package. Grafana is not packaged, so
its JSON is checked for what provisioning needs. Every PromQL expression must name only
metrics the code exports: the collectors' names, prometheus-client's ``process_*``, and the
series Prometheus writes itself. A planted typo shows that this check catches mistakes.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.metrics import DEFAULT_PORT
from orchestration.deployment import PROJECT_ROOT
from orchestration.metrics import STORE_METRICS, STREAM_METRICS, exported_metric_names

COMPOSE = PROJECT_ROOT / "orchestration" / "compose"
PROMETHEUS_CONFIG = COMPOSE / "prometheus" / "prometheus.yml"
ALERTS = COMPOSE / "prometheus" / "alerts.yml"
DASHBOARDS = COMPOSE / "grafana" / "dashboards"
DATASOURCES = COMPOSE / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = COMPOSE / "grafana" / "provisioning" / "dashboards" / "coinswarm.yml"

PROMETHEUS_OWN_SERIES = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "ALERTS",
        "ALERTS_FOR_STATE",
    }
)
"""What Prometheus records about every target and alert without any exporter."""

PROMQL_FUNCTIONS = frozenset(
    {
        "abs",
        "absent",
        "absent_over_time",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atanh",
        "avg_over_time",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "cos",
        "cosh",
        "count_over_time",
        "day_of_month",
        "day_of_week",
        "day_of_year",
        "days_in_month",
        "deg",
        "delta",
        "deriv",
        "end",
        "exp",
        "floor",
        "histogram_count",
        "histogram_fraction",
        "histogram_quantile",
        "histogram_sum",
        "holt_winters",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "max_over_time",
        "min_over_time",
        "minute",
        "month",
        "pi",
        "predict_linear",
        "present_over_time",
        "quantile_over_time",
        "rad",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sin",
        "sinh",
        "sort",
        "sort_desc",
        "sqrt",
        "start",
        "stddev_over_time",
        "stdvar_over_time",
        "sum_over_time",
        "tan",
        "tanh",
        "time",
        "timestamp",
        "vector",
        "year",
        "avg",
        "bottomk",
        "count",
        "count_values",
        "group",
        "max",
        "min",
        "quantile",
        "stddev",
        "stdvar",
        "sum",
        "topk",
    }
)
"""PromQL's functions and aggregation operators (Prometheus 2.42)."""
PROMQL_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "atan2",
        "inf",
        "nan",
    }
)
GRAFANA_RANGES = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_NUMBER = re.compile(
    r"(?<![\w:.])(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
    r"(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)(?![\w:])"
)
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """(metric names, function names) an expression uses.

    Strings, label matchers, ranges, label lists (``by (...)``, ``on (...)``...), numbers and
    durations, keywords and Grafana variables are not metric names; an identifier followed by
    ``(`` is a function. A name given only as ``{__name__="..."}`` is not seen.
    """
    text = _STRING.sub(" ", expr)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    metrics: set[str] = set()
    functions: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        if text[match.end() :].lstrip().startswith("("):
            functions.add(name)
        elif name.lower() not in PROMQL_KEYWORDS:
            metrics.add(name)
    return metrics, functions


def dashboard_expressions(directory: Path) -> dict[str, str]:
    """``file: panel title [refId]`` -> expr, for every target of every dashboard."""
    found = {}
    for path in sorted(directory.glob("*.json")):
        for panel in _panels(json.loads(path.read_text())):
            for target in panel.get("targets", []):
                found[f"{path.name}: {panel['title']} [{target['refId']}]"] = target["expr"]
    return found


def alert_expressions(path: Path) -> dict[str, str]:
    return {
        f"{path.name}: {rule['alert']}": str(rule["expr"])
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }


def unexported_names(expressions: dict[str, str]) -> dict[str, set[str]]:
    """Where each expression names a metric nobody exports, or a function PromQL lacks."""
    known = exported_metric_names() | PROMETHEUS_OWN_SERIES
    problems = {}
    for where, expr in expressions.items():
        metrics, functions = promql_names(expr)
        unknown = (metrics - known) | {f"{f}()" for f in functions - PROMQL_FUNCTIONS}
        if unknown:
            problems[where] = unknown
    return problems


def _panels(dashboard: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: install Debian's 'prometheus' package (make test does)")
    return promtool


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)


# --------------------------------------------------------------------------------- the checker


@pytest.mark.parametrize(
    ("expr", "metrics", "functions"),
    [
        (
            'sum by (venue) (rate(coinswarm_stream_messages_total{venue="binance", job=~"a.*"}'
            "[5m] offset 1h)) / on (instance) group_left (job) up > bool 0.5",
            {"coinswarm_stream_messages_total", "up"},
            {"sum", "rate"},
        ),
        ('label_replace(foo, "dst", "$1", "src", "(.*)")', {"foo"}, {"label_replace"}),
        ("1e3 * bar - 0x1F + .5 - Inf", {"bar"}, set()),
        (
            "histogram_quantile(0.9, sum(rate(x_bucket[$__rate_interval])) by (le))",
            {"x_bucket"},
            {"histogram_quantile", "sum", "rate"},
        ),
        ("time() - y > 3 * 86400 and z unless w", {"y", "z", "w"}, {"time"}),
        (
            "max_over_time(a:recorded[1h:5m]) or vector(0)",
            {"a:recorded"},
            {"max_over_time", "vector"},
        ),
    ],
)
def test_the_tokenizer_finds_metric_names_only(
    expr: str, metrics: set[str], functions: set[str]
) -> None:
    assert promql_names(expr) == (metrics, functions)


def test_a_typo_in_a_dashboard_or_an_alert_is_caught(tmp_path: Path) -> None:
    dashboards = tmp_path / "dashboards"
    dashboards.mkdir()
    board = json.loads((DASHBOARDS / "pipeline.json").read_text())
    planted = copy.deepcopy(next(iter(_panels(board))))
    planted["title"] = "planted"
    planted["targets"] = [
        {"refId": "A", "expr": "sum(rate(coinswarm_ingest_errrors_total[$__rate_interval]))"},
        {"refId": "B", "expr": "rat(coinswarm_stream_messages_total[5m])"},
    ]
    board["panels"].append(planted)
    (dashboards / "pipeline.json").write_text(json.dumps(board))
    alerts = yaml.safe_load(ALERTS.read_text())
    alerts["groups"][0]["rules"][0]["expr"] = "coinswarm_ingest_lag_second > 3600"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(alerts))

    assert unexported_names(dashboard_expressions(dashboards)) == {
        "pipeline.json: planted [A]": {"coinswarm_ingest_errrors_total"},
        "pipeline.json: planted [B]": {"rat()"},
    }
    first = alerts["groups"][0]["rules"][0]["alert"]
    assert unexported_names(alert_expressions(tmp_path / "alerts.yml")) == {
        f"alerts.yml: {first}": {"coinswarm_ingest_lag_second"}
    }


# ------------------------------------------------------------------- the files in the repository


def test_every_metric_named_in_alerts_and_dashboards_is_exported() -> None:
    expressions = {**alert_expressions(ALERTS), **dashboard_expressions(DASHBOARDS)}
    assert len(expressions) > 60
    assert unexported_names(expressions) == {}


def test_every_exported_metric_is_on_a_dashboard() -> None:
    named = set().union(*(promql_names(e)[0] for e in dashboard_expressions(DASHBOARDS).values()))
    ours = {spec.name for spec in (*STORE_METRICS, *STREAM_METRICS)}
    assert ours - named == set()


def test_promtool_accepts_the_alert_rules() -> None:
    checked = _run(_promtool(), "check", "rules", str(ALERTS))
    rules = sum(len(g["rules"]) for g in yaml.safe_load(ALERTS.read_text())["groups"])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {rules} rules found" in checked.stdout


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    # rule_files are relative to the config's folder, whatever the working directory, so the
    # repository copy checks exactly as it is mounted at /etc/prometheus.
    checked = _run(_promtool(), "check", "config", str(PROMETHEUS_CONFIG), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == [ALERTS.name]
    targets = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets == {
        "coinswarm-metrics": [f"metrics:{DEFAULT_PORT}"],
        "coinswarm-stream": ["stream:9465"],
        "prometheus": ["localhost:9090"],
    }


def test_every_dashboard_expression_is_valid_promql(tmp_path: Path) -> None:
    expressions = dashboard_expressions(DASHBOARDS)
    records = []
    for index, expr in enumerate(expressions.values()):
        for variable, value in GRAFANA_RANGES.items():
            expr = expr.replace(variable, value)
        records.append({"record": f"dashboard:expr_{index}", "expr": expr})
    rules = tmp_path / "dashboards.rules.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    checked = _run(_promtool(), "check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dashboards_are_provisionable_grafana_json() -> None:
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    provider = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"][0]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    paths = sorted(DASHBOARDS.glob("*.json"))
    assert [p.name for p in paths] == ["pipeline.json", "stream.json", "trading.json"]
    uids = []
    for path in paths:
        board = json.loads(path.read_text())
        uids.append(board["uid"])
        assert board["title"] and isinstance(board["schemaVersion"], int), path.name
        assert board["schemaVersion"] >= 36, path.name
        every = [*board["panels"], *(p for row in board["panels"] for p in row.get("panels", []))]
        ids = [panel["id"] for panel in every]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        for panel in _panels(board):
            where = f"{path.name}: {panel['title']}"
            assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, where
            grid = panel["gridPos"]
            assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] + grid["w"] <= 24, where
            assert panel["targets"], where
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs)), where
            for target in panel["targets"]:
                assert target["expr"].strip(), where
                assert target.get("datasource", panel["datasource"]) == panel["datasource"], where
    assert len(uids) == len(set(uids))


def _without_annotations(source: Path, target: Path) -> None:
    """A copy of the rules without their annotations: promtool test rules compares annotations
    verbatim, and their templates are already checked on the real file."""
    rules = yaml.safe_load(source.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    target.write_text(yaml.safe_dump(rules))


METRICS_TARGET = {"job": "coinswarm-metrics", "instance": "metrics:9464"}
STREAM_TARGET = {"job": "coinswarm-stream", "instance": "stream:9465"}


def _series(name: str, values: str, target: dict[str, str], **labels: str) -> dict[str, str]:
    selector = ", ".join(f'{k}="{v}"' for k, v in {**target, **labels}.items())
    return {"series": f"{name}{{{selector}}}", "values": values}


def _alert(name: str, eval_time: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": eval_time,
        "alertname": name,
        "exp_alerts": [{"exp_labels": labels} for labels in expected],
    }


def test_the_alerts_fire_when_they_should_and_not_before(tmp_path: Path) -> None:
    _without_annotations(ALERTS, tmp_path / "alerts.yml")
    m, st = METRICS_TARGET, STREAM_TARGET
    binance, kraken = "raw/binance/ohlcv", "raw/kraken/ohlcv"
    series = [
        _series("coinswarm_ingest_lag_seconds", "200000+60x40", m, asset=binance),
        _series("coinswarm_ingest_tolerated_lag_seconds", "194400x40", m, asset=binance),
        _series("coinswarm_ingest_lag_seconds", "3600x40", m, asset=kraken),
        _series("coinswarm_ingest_tolerated_lag_seconds", "194400x40", m, asset=kraken),
        _series("coinswarm_trading_risk_state", "0 0 1x10", m, state="halted"),
        _series("coinswarm_trading_risk_state", "1 1 0x10", m, state="active"),
        _series("coinswarm_trading_drawdown_ratio", "0.1 0.21x10", m),
        _series("coinswarm_trading_drawdown_limit_ratio", "0.25x12", m),
        _series("coinswarm_trading_gross_exposure", "0.9 1.2x10", m),
        _series("coinswarm_trading_equity", "1x12", m),
        _series("coinswarm_trading_gross_exposure_limit_ratio", "1x12", m),
        _series("coinswarm_stream_messages_total", "0+10x5 50x20", st, venue="binance"),
        _series("coinswarm_stream_messages_total", "0+10x25", st, venue="coinbase"),
        _series("coinswarm_scrape_success", "1 0x10", m, part="postgres_trading"),
        _series("up", "1 1 0x10", st),
    ]
    checks = [
        _alert("IngestionLagHigh", "20m"),  # pending: 30 minutes first
        _alert("IngestionLagHigh", "31m", {**m, "asset": binance, "severity": "warning"}),
        _alert("RiskHalted", "1m"),
        _alert("RiskHalted", "2m", {**m, "state": "halted", "severity": "critical"}),
        _alert("DrawdownNearLimit", "0m"),
        _alert("DrawdownNearLimit", "1m", {**m, "severity": "warning"}),
        _alert("GrossExposureOverLimit", "0m"),
        _alert("GrossExposureOverLimit", "1m", {**m, "severity": "critical"}),
        _alert("StreamSilent", "12m"),  # silent since 10m, pending for 5m
        _alert("StreamSilent", "16m", {**st, "venue": "binance", "severity": "critical"}),
        _alert("MetricsPartUnreadable", "4m"),
        _alert(
            "MetricsPartUnreadable", "7m", {**m, "part": "postgres_trading", "severity": "warning"}
        ),
        _alert("TargetDown", "3m"),
        _alert("TargetDown", "5m", {**st, "severity": "critical"}),
    ]
    tests = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    tested = _run(_promtool(), "test", "rules", "tests.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
