"""Links of every alert come from one documented place (links: of the config), any host, respected by --check."""

import re
import shutil

import pytest
import yaml

from django_celery_ops.monitoring import cli, config, lib
from django_celery_ops.monitoring.config import ConfigError
from tests.monitoring.support import PROJECT_CONFIG, REPO, all_rules


def _rules(cfg):
    return [r for _c, r in all_rules(cli.rules.build(cfg)) if "alert" in r]


@pytest.mark.parametrize("template,expected", [
    ("https://github.com/acme/shop/blob/main/runbooks/{alert}.md",
     "https://github.com/acme/shop/blob/main/runbooks/RedisDown.md"),  # a repository
    ("https://docs.acme.example/ops/runbooks/{alert}/", "https://docs.acme.example/ops/runbooks/RedisDown/"),  # docs site
    ("https://wiki.acme.example/display/OPS/{alert}", "https://wiki.acme.example/display/OPS/RedisDown"),  # a wiki
    ("https://wiki.acme.example/index.php?title=Alert_{alert}&action=view",
     "https://wiki.acme.example/index.php?title=Alert_RedisDown&action=view"),  # anywhere in the URL
])
def test_any_runbook_host_is_a_url_template_with_the_alert_name(template, expected):
    cfg = config.merge({"links": {"runbook_url": template}})
    redis = next(r for r in _rules(cfg) if r["alert"] == "RedisDown")
    assert redis["annotations"]["runbook_url"] == expected
    assert all(r["annotations"]["runbook_url"] == template.replace("{alert}", r["alert"]) for r in _rules(cfg))


def test_grafana_base_may_have_a_sub_path():
    cfg = config.merge({"links": {"grafana_base_url": "https://ops.acme.example/grafana/"}})
    assert lib.dashboard_url(cfg, "celery-queues", 10) == "https://ops.acme.example/grafana/d/celery-queues?viewPanel=10"


@pytest.mark.parametrize("links,message", [
    ({"runbook_url": "https://wiki.acme.example/runbooks/"}, r"links\.runbook_url: .* has no \{alert\}"),
    ({"runbook_url": "runbooks/{alert}.md"}, r"links\.runbook_url: .* not an http\(s\) URL"),
    ({"grafana_base_url": "localhost:3000"}, r"links\.grafana_base_url: .* not an http\(s\) URL"),
])
def test_a_link_that_cannot_work_is_a_config_error(links, message):
    with pytest.raises(ConfigError, match=message):
        config.merge({"links": links})


def test_an_override_in_the_project_config_is_kept_by_generate_and_check(tmp_path):
    """The documented override (links: in ops/monitoring.yml) is what --check compares with: never undone."""
    project = yaml.safe_load(PROJECT_CONFIG.read_text())
    project["links"] = {"runbook_url": "https://wiki.acme.example/display/OPS/{alert}",
                        "grafana_base_url": "https://grafana.acme.example"}
    path = tmp_path / "monitoring.yml"
    path.write_text(yaml.safe_dump(project))
    out = tmp_path / "ops"
    args = ["generate", "--config", str(path), "--out", str(out), "--runbooks-out", str(tmp_path / "runbooks"),
            "--only", "rules", "--only", "runbooks"]
    assert cli.main(args) == 0
    assert cli.main([*args, "--check"]) == 0  # the override is the source: no drift
    rules = (out / "prometheus" / "rules" / "redis.yml").read_text()
    assert "https://wiki.acme.example/display/OPS/RedisDown" in rules and "github.com" not in rules
    assert "https://grafana.acme.example/d/celery-queues?viewPanel=10" in rules
    index = (tmp_path / "runbooks" / "README.md").read_text()
    assert "https://grafana.acme.example" in index
    # and the committed files are not this override's output: --check against them fails
    shutil.copytree(REPO / "runbooks", tmp_path / "committed-runbooks")
    committed = ["generate", "--config", str(path), "--out", str(REPO / "ops"), "--runbooks-out",
                 str(tmp_path / "committed-runbooks"), "--only", "rules", "--check"]
    assert cli.main(committed) == 1


def test_the_project_names_its_links_in_ops_monitoring_yml():
    """One place for the team to change: the project config names every link (and documents them)."""
    text = PROJECT_CONFIG.read_text()
    project = yaml.safe_load(text)
    assert set(project["links"]) == {"runbook_url", "grafana_base_url", "source_url"}
    assert "{alert}" in project["links"]["runbook_url"]


@pytest.mark.parametrize("text,words", [("5m", "5 minutes"), ("1h", "1 hour"), ("4320s", "72 minutes"),
                                        ("15s", "15 seconds"), ("1500ms", "1500 milliseconds"), ("1h30m", "90 minutes")])
def test_human_duration_reads_compressed_durations(text, words):
    assert lib.human_duration(text) == words


def test_compressed_texts_speak_of_the_compressed_for_and_windows():
    cfg = config.load(PROJECT_CONFIG)
    fast = {r["alert"] + r["labels"]["severity"]: r
            for _c, r in all_rules({k: lib.compress(v, 20) for k, v in cli.rules.build(cfg).items()}) if "alert" in r}
    assert "for 9 seconds" in fast["CeleryWorkerDownwarning"]["annotations"]["description"]  # for: 3m / 20
    assert "in the last 30 seconds" in fast["GunicornWorkerTimeoutswarning"]["annotations"]["description"]  # [10m]
    page = fast["DjangoAvailabilityBudgetBurncritical"]["annotations"]["description"]
    assert "over the last 3 minutes (and the last 15 seconds)" in page, page  # 1h and 5m windows
    assert "hour" not in page and "minutes (and the last 5 minutes)" not in page


def _rendered_runbooks(cfg):
    from django_celery_ops.monitoring import runbooks
    return runbooks.render_all(cfg, {name[:-3]: "" for name in runbooks.templates() if name != runbooks.INDEX})


def test_an_adopters_runbooks_keep_no_link_to_the_demos_files():
    # The templates link this repository's own files (../app/jobs/services.py): an adopter has none.
    from django_celery_ops.monitoring import runbooks
    assert any("](../" in text for text in runbooks.templates().values())  # what the rule below removes
    pages = _rendered_runbooks(config.merge({}))
    assert not [name for name, text in pages.items() if "](../" in text]
    assert "[`job_rerun`](" not in pages["CeleryWorkerDown.md"] and "`job_rerun`" in pages["CeleryWorkerDown.md"]


def test_project_file_links_follow_the_source_url_template():
    cfg = config.merge({"links": {"source_url": "https://git.acme.example/shop/blob/main/{path}"}})
    pages = _rendered_runbooks(cfg)
    assert not [name for name, text in pages.items() if "](../" in text]
    assert "](https://git.acme.example/shop/blob/main/app/jobs/services.py)" in pages["CeleryWorkerDown.md"]


def test_the_demo_keeps_its_runbook_links_relative_and_they_resolve():
    cfg = config.load(PROJECT_CONFIG)
    for name, text in _rendered_runbooks(cfg).items():
        for path in re.findall(r"\]\(\.\./([^)#\s]+)", text):
            assert (REPO / path).exists(), f"runbooks/{name} links ../{path}, which does not exist"


def test_a_source_url_without_the_path_fails_naming_the_key():
    with pytest.raises(ConfigError, match=r"links\.source_url: .* has no \{path\}"):
        config.merge({"links": {"source_url": "https://git.acme.example/shop"}})


def test_the_old_runbook_base_key_names_its_replacement():
    with pytest.raises(ConfigError, match=r"links\.runbook_base_url was replaced by links\.runbook_url.*\{alert\}"):
        config.merge({"links": {"runbook_base_url": "https://wiki.acme.example/runbooks/"}})
