"""DJANGO_CELERY_OPS: documented defaults, the project's values, and a wrong one named, never guessed."""
import pytest
from django.core.exceptions import ImproperlyConfigured

from django_celery_ops import conf


def test_every_setting_has_a_default(settings):
    settings.DJANGO_CELERY_OPS = {}
    assert conf.get("SLOW_REQUEST_SECONDS") == 1.0
    assert conf.get("LOOP_LAG_INTERVAL_SECONDS") == 0.1
    assert conf.get("LOOP_LAG_LOG_SECONDS") == 0.5
    assert conf.get("TRUSTED_PROXIES") == ()
    assert conf.get("DB_METRICS") is True
    assert set(conf.get("SENTRY")) == {"DSN", "ENVIRONMENT", "RELEASE", "TRACES_SAMPLE_RATE"}
    # profiles: off (no folder, no token, no staff); slow stacks: on, in the log line only
    assert (conf.get("PROFILE_DIR"), conf.get("PROFILE_TOKEN"), conf.get("PROFILE_STAFF")) == ("", "", False)
    assert conf.get("PROFILE_KEEP") == 50
    assert (conf.get("SLOW_STACKS"), conf.get("STACKS_DIR"), conf.get("STACKS_KEEP")) == (True, "", 200)


def test_without_the_setting_at_all_the_defaults_apply(settings):
    del settings.DJANGO_CELERY_OPS
    assert conf.get("SLOW_REQUEST_SECONDS") == 1.0
    assert conf.problems() == []


def test_default_buckets_are_django_prometheus_plus_the_slow_threshold(settings):
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 0.3}
    buckets = conf.get("LATENCY_BUCKETS")
    assert buckets == tuple(sorted({*conf.DEFAULT_LATENCY_BUCKETS, 0.3})) + (float("inf"),)
    settings.DJANGO_CELERY_OPS = {}
    assert conf.get("LATENCY_BUCKETS") == conf.DEFAULT_LATENCY_BUCKETS + (float("inf"),)  # 1.0 is one already


def test_explicit_buckets_are_taken_as_given_with_inf_added(settings):
    settings.DJANGO_CELERY_OPS = {"LATENCY_BUCKETS": [0.1, 1, 10]}
    assert conf.get("LATENCY_BUCKETS") == (0.1, 1.0, 10.0, float("inf"))


def test_a_changed_setting_is_read_again(settings):
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 2.0}
    assert conf.get("SLOW_REQUEST_SECONDS") == 2.0
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 3.0}
    assert conf.get("SLOW_REQUEST_SECONDS") == 3.0


def test_sentry_defaults_come_from_the_environment_and_the_dict_wins(settings, monkeypatch):
    monkeypatch.setenv("SENTRY_DSN", "https://k@sentry.example/1")
    monkeypatch.setenv("SENTRY_TRACES_SAMPLE_RATE", "0.5")
    settings.DJANGO_CELERY_OPS = {}
    assert conf.get("SENTRY")["DSN"] == "https://k@sentry.example/1"
    assert conf.get("SENTRY")["TRACES_SAMPLE_RATE"] == 0.5
    settings.DJANGO_CELERY_OPS = {"SENTRY": {"DSN": ""}}
    assert conf.get("SENTRY")["DSN"] == ""


@pytest.mark.parametrize("key, value, words", [
    ("SLOW_REQUEST_SECONDS", "1", "greater than 0"),
    ("SLOW_REQUEST_SECONDS", 0, "greater than 0"),
    ("SLOW_REQUEST_SECONDS", True, "greater than 0"),
    ("LATENCY_BUCKETS", [1, 0.5], "increasing"),
    ("LATENCY_BUCKETS", "0.5,1", "list of numbers"),
    ("TRUSTED_PROXIES", "10.0.0.0/8", "list of addresses"),
    ("TRUSTED_PROXIES", ["not-an-ip"], "'not-an-ip' is not an address"),
    ("SENTRY", {"DSN": "x", "SAMPLE": 1}, "unknown key(s) SAMPLE"),
    ("SENTRY", {"TRACES_SAMPLE_RATE": 2}, "from 0 to 1"),
    ("DB_METRICS", "yes", "True or False"),
    ("PROFILE_DIR", None, "must be a string"),
    ("PROFILE_TOKEN", 12345, "must be a string"),
    ("PROFILE_STAFF", 1, "True or False"),
    ("PROFILE_KEEP", 0, "whole number above 0"),
    ("SLOW_STACKS", "on", "True or False"),
    ("STACKS_DIR", ["var"], "must be a string"),
    ("STACKS_KEEP", 2.5, "whole number above 0"),
])
def test_a_wrong_value_is_named_by_get_and_by_problems(settings, key, value, words):
    settings.DJANGO_CELERY_OPS = {key: value}
    with pytest.raises(ImproperlyConfigured, match=rf"DJANGO_CELERY_OPS\['{key}'\]"):
        conf.get(key)
    [(named, message)] = conf.problems()
    assert named == key and words in message


def test_an_unknown_key_is_a_problem_and_an_unknown_name_an_error(settings):
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECOND": 2}
    [(named, message)] = conf.problems()
    assert named == "SLOW_REQUEST_SECOND" and "not a setting of django_celery_ops" in message
    with pytest.raises(ImproperlyConfigured, match="'NOPE' is not a setting"):
        conf.get("NOPE")


def test_a_setting_that_is_not_a_dict_is_a_problem(settings):
    settings.DJANGO_CELERY_OPS = [("SLOW_REQUEST_SECONDS", 1)]
    [(named, message)] = conf.problems()
    assert named == "" and "must be a dict" in message
