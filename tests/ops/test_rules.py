"""The alert and recording rules: promtool checks them and runs their unit tests; every
alert has a firing test, a severity, a summary and a runbook section that exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.support.processes import REPO_ROOT

MONITORING = REPO_ROOT / "deploy" / "monitoring"
RULES = MONITORING / "rules.yml"
RULE_TESTS = MONITORING / "tests" / "rules_test.yml"
RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
ALERTS = {
    "BrokerHubMirrorFailing", "BrokerHubBacklogGrowing", "BrokerHubParkedGrowing",
    "BrokerHubNoDelivererConsuming", "BrokerHubFetchesFailing", "BrokerHubSourceLag",
    "BrokerHubWeb5xx",
}


def _promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run `bash scripts/ensure-tools.sh` (make test does)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, check=False)


def _alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = _promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests see the rules: with one threshold changed, they fail."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules.yml").write_text(
        RULES.read_text().replace("broker_hub:hub_requests_5xx:ratio_rate5m > 0.05",
                                  "broker_hub:hub_requests_5xx:ratio_rate5m > 0.5")
    )
    shutil.copy(RULE_TESTS, tmp_path / "tests" / RULE_TESTS.name)
    result = _promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path / "tests")
    assert result.returncode != 0
    assert "BrokerHubWeb5xx" in result.stdout + result.stderr


def test_every_alert_is_complete_and_fires_in_a_unit_test() -> None:
    alerts = _alerts()
    assert {a["alert"] for a in alerts} == ALERTS
    anchors = {_anchor(h) for h in re.findall(r"^## (.+)$", RUNBOOK.read_text(), re.M)}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    for alert in alerts:
        assert alert.get("for"), alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]
        url = alert["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md" and anchor in anchors, url
        assert alert["alert"] in fired, f"{alert['alert']} has no firing unit test"


def _anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
