"""deploy/compose.yaml and the Dockerfile, checked without a container engine (there is none
here): ``docker-compose config`` (Debian's docker-compose 1.29, which needs no daemon for it),
the compose-spec JSON schema it ships, and the structure ops rely on. ``broker-hub migrate``
on a fresh PostgreSQL database, as the compose one-shot step runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.support.processes import HUB_SCRIPT, REPO_ROOT

COMPOSE = REPO_ROOT / "deploy" / "compose.yaml"
SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
ROLES = {"web", "fetcher", "deliverer", "poller"}


def _compose(*args: str, path: Path = COMPOSE) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose missing: run `bash scripts/ensure-tools.sh` (make test does)"
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"}  # no engine is needed
    return subprocess.run([tool, "-f", str(path), *args], capture_output=True, text=True,
                          timeout=60, check=False, env=env)


def _resolved() -> dict:
    result = _compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_config_accepts_the_file() -> None:
    result = _compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_file_matches_the_compose_spec_schema(tmp_path: Path) -> None:
    import json

    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    validator.validate(yaml.safe_load(COMPOSE.read_text()))
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["web"]["helthcheck"] = broken["services"]["web"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError, match="helthcheck"):
        validator.validate(broken)
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    assert _compose("config", "-q", path=tmp_path / "compose.yaml").returncode != 0


def test_every_role_waits_for_the_migration_and_has_a_health_check() -> None:
    services = _resolved()["services"]
    assert {"rabbitmq", "postgres", "migrate", "prometheus", "grafana"} | ROLES <= set(services)
    assert services["migrate"]["command"] == ["migrate"]
    for role in ROLES:
        service = services[role]
        assert service["command"] == [role]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
        assert service["healthcheck"]["test"], role
    assert services["deliverer"]["deploy"]["replicas"] == 2
    for name in ("rabbitmq", "postgres", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_mounted_files_exist_and_commands_exist() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source}"
    for command in ROLES | {"migrate"}:
        result = subprocess.run([str(HUB_SCRIPT), command, "--help"], capture_output=True,
                                text=True, timeout=30, check=False)
        assert result.returncode == 0, (command, result.stderr)
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO_ROOT / source).exists(), source
    assert 'ENTRYPOINT ["broker-hub"]' in dockerfile
    plugins = (COMPOSE.parent / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbitmq_prometheus" in plugins and "rabbitmq_management" in plugins


def test_migrate_command_on_a_fresh_database(postgres_url: str) -> None:
    env = {**os.environ, "HUB_DATABASE_URL": postgres_url}
    first = subprocess.run([str(HUB_SCRIPT), "migrate"], capture_output=True, text=True,
                           timeout=60, check=False, env=env)
    assert first.returncode == 0, first.stderr
    assert "steps applied: 1, 2" in first.stdout
    again = subprocess.run([str(HUB_SCRIPT), "migrate"], capture_output=True, text=True,
                           timeout=60, check=False, env=env)
    assert again.returncode == 0 and "none (up to date)" in again.stdout
    bad = subprocess.run([str(HUB_SCRIPT), "migrate"], capture_output=True, text=True,
                         timeout=60, check=False,
                         env={**env, "HUB_DATABASE_URL": "postgresql://127.0.0.1:1/nope"})
    assert bad.returncode == 3 and "migration failed" in bad.stderr
