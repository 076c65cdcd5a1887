"""The production compose file: valid for Docker Compose itself, and wired to what the repo has.

``docker compose config`` (or Debian's ``docker-compose``, which ``make test`` installs) parses
and validates the file without a Docker engine; the rest checks the wiring a typo would break:
every mounted file exists, every ``coinswarm`` command line parses, the webserver and daemon
reach the code server where it listens, Dagster keeps its runs in PostgreSQL, Prometheus scrapes
ports the services serve, and no secret is written into the file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SECRETS = {
    "POSTGRES_PASSWORD": "pg-secret-for-compose-test",
    "INFLUX_PASSWORD": "influx-password-for-compose-test",
    "INFLUX_TOKEN": "influx-token-for-compose-test",
    "GRAFANA_ADMIN_PASSWORD": "grafana-secret-for-compose-test",
}
SERVICES = {
    "postgres", "mongo", "influxdb", "nats", "code-server", "webserver", "daemon", "stream",
    "metrics", "mcp", "prometheus", "grafana",
}  # fmt: skip


def _compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    if legacy is None:
        pytest.fail("neither `docker compose` nor `docker-compose` is installed (make test does)")
    return [legacy]


def _config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_compose_command(), "-f", str(COMPOSE), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(ROOT), **env},
        timeout=120,
    )


@pytest.fixture(scope="module")
def resolved() -> dict:
    run = _config(SECRETS)
    assert run.returncode == 0, run.stderr
    return yaml.safe_load(run.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_docker_compose_config_passes_with_every_service(resolved: dict) -> None:
    assert set(resolved["services"]) == SERVICES


def test_a_missing_secret_stops_compose_naming_it() -> None:
    for name in SECRETS:
        run = _config({k: v for k, v in SECRETS.items() if k != name})
        assert run.returncode != 0
        assert f"set {name}" in run.stderr, run.stderr


def test_no_secret_is_written_into_the_file() -> None:
    text = COMPOSE.read_text()
    for value in SECRETS.values():
        assert value not in text
    # every password, token or key is a ${VAR} reference, never a literal
    for key, value in re.findall(
        r"^\s*(\w*(?:PASSWORD|TOKEN|API_KEY|SECRET)\w*):\s*(\S+)", text, re.M
    ):
        assert value.startswith("${"), f"{key} is set to a literal in docker-compose.yml"


def test_every_mounted_file_exists(raw: dict) -> None:
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def _commands(resolved: dict) -> dict[str, list[str]]:
    return {
        name: service["command"]
        for name, service in resolved["services"].items()
        if isinstance(service.get("command"), list)
    }


def test_every_coinswarm_command_line_parses(resolved: dict) -> None:
    parser = build_parser()
    commands = {n: c for n, c in _commands(resolved).items() if c[0] == "coinswarm"}
    assert set(commands) == {"stream", "metrics", "mcp"}
    for name, command in commands.items():
        args = parser.parse_args(command[1:])
        assert callable(args.func), name


def test_dagster_services_reach_the_code_server_and_keep_runs_in_postgres(
    resolved: dict,
) -> None:
    services = resolved["services"]
    code_server = services["code-server"]["command"]
    port = code_server[code_server.index("-p") + 1]
    module = code_server[code_server.index("-m") + 1]
    assert module == "orchestration.definitions"
    workspace = yaml.safe_load((ROOT / "orchestration/compose/workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert location["grpc_server"]["host"] == "code-server"
    assert str(location["grpc_server"]["port"]) == port
    for name in ("webserver", "daemon"):
        command = services[name]["command"]
        assert command[command.index("-w") + 1].endswith("orchestration/compose/workspace.yaml")
        assert "DAGSTER_POSTGRES_URL" in services[name]["environment"]
    instance = yaml.safe_load((ROOT / "orchestration/dagster.prod.yaml").read_text())
    assert instance["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "orchestration/dagster.prod.yaml /opt/dagster/home/dagster.yaml" in dockerfile


def test_published_ports_bind_loopback_only(resolved: dict) -> None:
    for name, service in resolved["services"].items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            assert host_ip == "127.0.0.1", f"{name} publishes {port} beyond loopback"


def test_prometheus_scrapes_the_ports_the_services_serve(resolved: dict) -> None:
    config = yaml.safe_load((ROOT / "orchestration/compose/prometheus/prometheus.yml").read_text())
    commands = _commands(resolved)
    served = {}
    for name, command in commands.items():
        if command[0] == "coinswarm":
            flag = "--metrics-port" if "--metrics-port" in command else "--port"
            if flag in command:
                served[name] = command[command.index(flag) + 1]
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    for target in targets:
        host, port = target.rsplit(":", 1)
        assert host in resolved["services"] or host == "localhost", target
        if host in served:
            assert served[host] == port, f"{target}: {host} serves on {served[host]}"
    assert {"metrics", "stream"} <= {t.rsplit(":", 1)[0] for t in targets}
    for rule_file in config.get("rule_files", []):
        assert (ROOT / "orchestration/compose/prometheus" / Path(rule_file).name).exists()


def test_the_image_holds_every_package_the_wheel_ships() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r"packages = \[([^\]]*)\]", pyproject).group(1)
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in re.findall(r'"(\w+)"', packages):
        assert f"COPY {package} {package}" in dockerfile, package


def test_the_scale_out_configs_parse_and_hold_no_secret() -> None:
    deploy = ROOT / "docs" / "deploy"
    files = sorted(deploy.glob("*.yaml"))
    assert {f.name for f in files} == {
        "helm-values.yaml",
        "dagster.celery.yaml",
        "celery-run-config.yaml",
    }
    for path in files:
        loaded = yaml.safe_load(path.read_text())
        assert isinstance(loaded, dict) and loaded, path.name
        assert not re.search(r"(?i)password:\s*\S", path.read_text()), path.name
    helm = yaml.safe_load((deploy / "helm-values.yaml").read_text())
    (deployment,) = helm["dagster-user-deployments"]["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "orchestration.definitions"]
    assert helm["runLauncher"]["type"] == "K8sRunLauncher"
    celery = yaml.safe_load((deploy / "dagster.celery.yaml").read_text())
    prod = yaml.safe_load((ROOT / "orchestration/dagster.prod.yaml").read_text())
    assert celery["storage"] == prod["storage"]


def test_grafana_mounts_the_dashboards_where_its_provider_looks(resolved: dict) -> None:
    provider = yaml.safe_load(
        (ROOT / "orchestration/compose/grafana/provisioning/dashboards/coinswarm.yml").read_text()
    )
    (entry,) = provider["providers"]
    targets = {
        (volume["source"].rstrip("/"), volume["target"])
        for volume in resolved["services"]["grafana"]["volumes"]
        if isinstance(volume, dict) and volume.get("type") == "bind"
    } or {(v.split(":")[0], v.split(":")[1]) for v in resolved["services"]["grafana"]["volumes"]}
    dashboards = str(ROOT / "orchestration/compose/grafana/dashboards")
    assert (dashboards, entry["options"]["path"]) in targets
