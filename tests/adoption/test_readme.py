"""The README's adoption section keeps the blocks the adoption test runs (fast: no server, no install)."""
from __future__ import annotations

import yaml

from tests.adoption import readme
from tests.adoption.project import split_command


def test_section_has_every_step_once_in_order():
    assert list(readme.blocks()) == list(readme.ROLES)


def test_every_shell_line_is_a_command_the_test_knows():
    known = {"pip", "mkdir", "python", "gunicorn", "django-celery-ops-metrics", "celery",
             "django-celery-ops-exporter", "django-celery-ops-monitoring", "promtool"}
    for block in readme.blocks().values():
        if block.lang == "sh":
            for line in readme.commands(block.body):
                _, words = split_command(line)
                assert words[0] in known, f"README runs {words[0]!r}: teach tests/adoption to run it"


def test_yaml_blocks_parse_and_name_the_same_jobs():
    blocks = readme.blocks()
    config = yaml.safe_load(blocks["monitoring-config"].body)
    scrape = yaml.safe_load(blocks["prometheus"].body)
    selected = {value.split('"')[1] for value in config["selectors"].values()}
    assert selected == {job["job_name"] for job in scrape["scrape_configs"]}


def test_install_line_names_the_distribution_with_extras_and_constraints():
    (line,) = readme.commands(readme.blocks()["install"].body)
    _, words = split_command(line)
    assert words[:2] == ["pip", "install"] and "-c" in words
    assert any(w.startswith("django-celery-ops[") for w in words)
