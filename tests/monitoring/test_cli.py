"""The CLI: `generate --config F --out DIR [--compress N] [--check]` and every file it writes."""

import json
import shutil
import subprocess

import pytest
import yaml

from django_celery_ops.monitoring import cli, config, rules
from tests.monitoring.support import SHOP

PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")


@pytest.fixture
def shop(tmp_path):
    """Another application's config file, generated into tmp_path/out."""
    path = tmp_path / "shop.yml"
    path.write_text(yaml.safe_dump(SHOP))
    out = tmp_path / "out"
    assert cli.main(["generate", "--config", str(path), "--out", str(out)]) == 0
    return path, out


def _alert(groups, name):
    return next(r for g in groups for r in g["rules"] if r.get("alert") == name)


def test_generate_writes_rules_operator_routes_runbooks_and_dashboards(shop):
    _path, out = shop
    components = SHOP["components"]
    assert sorted(p.stem for p in (out / "prometheus" / "rules").glob("*.yml")) == sorted(components)
    assert sorted(p.stem for p in (out / "prometheus" / "operator").glob("*.yaml")) == sorted(components)
    assert (out / "alertmanager" / "routes.yml").is_file()
    alerts = {r["alert"] for c in components
              for g in yaml.safe_load((out / "prometheus" / "rules" / f"{c}.yml").read_text())["groups"]
              for r in g["rules"] if "alert" in r}
    assert {p.stem for p in (out / "runbooks").glob("*.md")} == alerts | {"README"}
    boards = list((out / "grafana" / "dashboards").glob("*.json"))
    assert boards and all(json.loads(p.read_text())["uid"].startswith("shop-") for p in boards)


def test_prometheus_rules_are_valid_prometheusrule_objects_with_the_same_groups(shop):
    _path, out = shop
    for path in sorted((out / "prometheus" / "operator").glob("*.yaml")):
        obj = yaml.safe_load(path.read_text())
        assert obj["apiVersion"] == "monitoring.coreos.com/v1" and obj["kind"] == "PrometheusRule"
        assert obj["metadata"]["name"] == f"django-celery-ops-{path.stem}"
        assert set(obj["metadata"]) <= {"name", "namespace", "labels"}
        assert all(isinstance(v, str) for v in obj["metadata"]["labels"].values())
        assert set(obj["spec"]) == {"groups"} and obj["spec"]["groups"]
        for group in obj["spec"]["groups"]:
            assert set(group) == {"name", "rules"} and group["rules"]
        plain = yaml.safe_load((out / "prometheus" / "rules" / f"{path.stem}.yml").read_text())
        assert obj["spec"]["groups"] == plain["groups"]


def test_operator_namespace_and_name_prefix_come_from_the_config(tmp_path):
    cfg = config.merge({"operator": {"name_prefix": "shop-", "namespace": "monitoring"}})
    files = cli.generate(cfg, only=("operator",))
    obj = yaml.safe_load(files["prometheus/operator/django.yaml"])
    assert obj["metadata"]["name"] == "shop-django" and obj["metadata"]["namespace"] == "monitoring"


@pytest.mark.skipif(not PROMTOOL, reason="promtool is installed by `make up` / CI")
def test_generated_rules_of_another_app_pass_promtool(shop):
    _path, out = shop
    result = subprocess.run([PROMTOOL, "check", "rules", "--lint=all", "--lint-fatal",
                             *sorted(map(str, (out / "prometheus" / "rules").glob("*.yml")))],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(not AMTOOL, reason="amtool is installed by `make up` / CI")
def test_the_routes_snippet_is_a_valid_alertmanager_config(shop, tmp_path):
    _path, out = shop
    snippet = yaml.safe_load((out / "alertmanager" / "routes.yml").read_text())
    assert snippet["route"]["matchers"] == ['namespace="shop"']  # a child route of a shared Alertmanager
    full = {"route": {"receiver": "ticket", "routes": [snippet["route"]]}, "inhibit_rules": snippet["inhibit_rules"],
            "receivers": [{"name": n} for n in ("pager", "ticket", "deadman")]}
    (tmp_path / "am.yml").write_text(yaml.safe_dump(full))
    result = subprocess.run([AMTOOL, "check-config", str(tmp_path / "am.yml")], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_links_in_alerts_and_runbooks_come_from_the_config(shop):
    _path, out = shop
    groups = yaml.safe_load((out / "prometheus" / "rules" / "celery.yml").read_text())["groups"]
    annotations = _alert(groups, "CeleryWorkerDown")["annotations"]
    assert annotations["runbook_url"] == "https://wiki.shop.example/display/OPS/CeleryWorkerDown"  # no forced suffix
    assert annotations["dashboard_url"] == "https://grafana.shop.example/d/shop-celery-queues?viewPanel=4"
    runbook = (out / "runbooks" / "CeleryWorkerDown.md").read_text()
    assert "https://grafana.shop.example/d/shop-celery-queues?viewPanel=4" in runbook
    assert "localhost:3000" not in runbook and "{{ " not in runbook


def test_thresholds_and_for_durations_come_from_the_config():
    cfg = config.merge({"thresholds": {"task_failure_ratio": 0.33}, "for": {"CeleryTaskFailureRateHigh": "7m"}})
    rule = _alert(rules.build(cfg | {"components": ["celery"]})["celery"], "CeleryTaskFailureRateHigh")
    assert rule["expr"].endswith("> 0.33") and rule["for"] == "7m"
    runbook = cli.generate(cfg, only=("runbooks",))["runbooks/CeleryTaskFailureRateHigh.md"]
    assert "`task_failure_ratio` = 0.33" in runbook and "`7m`" in runbook


def test_components_are_chosen_by_the_config():
    files = cli.generate(config.load(None), only=("rules", "runbooks"))
    assert "prometheus/rules/jobs.yml" not in files and "runbooks/JobsStuck.md" not in files
    assert "[JobsStuck](JobsStuck.md)" not in files["runbooks/README.md"]  # the index links only written pages
    assert "[CeleryWorkerDown](CeleryWorkerDown.md)" in files["runbooks/README.md"]
    assert set(rules.REGISTRY) == set(config.COMPONENTS)


def test_check_passes_on_fresh_output_and_fails_on_an_edit_or_a_stray_file(shop, capsys):
    path, out = shop
    check = ["generate", "--config", str(path), "--out", str(out), "--check"]
    assert cli.main(check) == 0
    edited = out / "prometheus" / "rules" / "redis.yml"
    edited.write_text(edited.read_text().replace("for: 1m", "for: 2m"))
    assert cli.main(check) == 1
    assert "prometheus/rules/redis.yml" in capsys.readouterr().err
    assert cli.main(["generate", "--config", str(path), "--out", str(out)]) == 0
    (out / "runbooks" / "Gone.md").write_text("# Gone\n")
    assert cli.main(check) == 1
    assert "runbooks/Gone.md" in capsys.readouterr().err


def test_compress_divides_every_for_and_window_and_rules_only_writes_flat(tmp_path):
    out = tmp_path / "fast"
    assert cli.main(["generate", "--out", str(out), "--compress", "20", "--rules-only"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{c}.yml" for c in config.load(None)["components"])
    redis = yaml.safe_load((out / "redis.yml").read_text())["groups"]
    assert _alert(redis, "RedisDown")["for"] == "3s"
    django = {r.get("record"): r for g in yaml.safe_load((out / "django.yml").read_text())["groups"]
              for r in g["rules"]}
    assert "[12960s]" in django["job:django_http_server_errors:ratio_rate3d"]["expr"]


def test_a_config_error_exits_2_naming_the_key(tmp_path, capsys):
    (tmp_path / "bad.yml").write_text("thresholds:\n  slow_request_ratio: high\n")
    assert cli.main(["generate", "--config", str(tmp_path / "bad.yml"), "--out", str(tmp_path / "o")]) == 2
    assert "thresholds.slow_request_ratio" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_dashboards_are_skipped_with_a_message_only_when_the_module_is_missing(monkeypatch, capsys):
    import sys

    import django_celery_ops.monitoring as package

    monkeypatch.delattr(package, "dashboards", raising=False)
    monkeypatch.setitem(sys.modules, "django_celery_ops.monitoring.dashboards", None)  # import raises
    files = cli.generate(config.load(None), only=("dashboards",))
    assert files == {} and "dashboards skipped" in capsys.readouterr().err
