"""Each system check names its misconfiguration, and stays quiet on a correct set-up (run_checks)."""
import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test.utils import override_settings
from django.urls import include, path

from django_celery_ops import checks

MW = checks.MIDDLEWARE


def _ids(**kwargs) -> list[str]:
    return [m.id for m in run_checks(**kwargs) if m.id.startswith("django_celery_ops.")]


@pytest.fixture
def multiproc(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


def test_the_library_settings_pass_every_check_deploy_included(multiproc):
    assert _ids(include_deployment_checks=True) == []
    call_command("check", "--fail-level", "WARNING")  # nothing at all


def test_an_unknown_key_is_E001_naming_it(settings):
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECOND": 2}
    [error] = [m for m in run_checks() if m.id == "django_celery_ops.E001"]
    assert "SLOW_REQUEST_SECOND" in error.msg


def test_a_wrong_type_is_E002_naming_it_and_fails_manage_py_check(settings):
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": "1.0"}
    assert _ids() == ["django_celery_ops.E002"]
    with pytest.raises(SystemCheckError, match=r"DJANGO_CELERY_OPS\['SLOW_REQUEST_SECONDS'\]"):
        call_command("check")


def test_an_unset_multiproc_dir_is_W001_in_deploy_checks_only(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert _ids() == []
    assert _ids(include_deployment_checks=True) == ["django_celery_ops.W001"]


def test_a_multiproc_dir_that_is_not_a_directory_is_E003(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    assert _ids() == ["django_celery_ops.E003"]
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "file"))
    assert _ids() == ["django_celery_ops.E003"]


def test_a_multiproc_dir_that_is_not_writable_is_E004(multiproc, monkeypatch):
    import os

    multiproc.chmod(0o500)
    try:
        if os.access(multiproc, os.W_OK):  # root may write anywhere: what the kernel would say to a user
            real = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(multiproc) else real(p, mode))
        assert _ids() == ["django_celery_ops.E004"]
    finally:
        multiproc.chmod(0o700)


def _metrics_view(request):
    from django.http import HttpResponse
    return HttpResponse()


@pytest.mark.parametrize("module", ["django_prometheus.exports", "prometheus_client.exposition"])
def test_a_url_serving_metrics_from_a_view_is_W002(module, monkeypatch):
    import sys
    import types

    view = types.FunctionType(_metrics_view.__code__, {}, "ExportToDjangoView")
    view.__module__ = module
    urls = types.ModuleType("tests_library_metrics_urls")
    urls.urlpatterns = [path("ops/", include([path("metrics", view)]))]
    monkeypatch.setitem(sys.modules, urls.__name__, urls)
    with override_settings(ROOT_URLCONF=urls.__name__):
        [warning] = [m for m in run_checks() if m.id == "django_celery_ops.W002"]
    assert "'ops/metrics'" in warning.msg


def test_a_slow_threshold_that_is_not_a_bucket_is_W003(settings):
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 0.3, "LATENCY_BUCKETS": [0.1, 0.5, 1.0]}
    [warning] = [m for m in run_checks() if m.id == "django_celery_ops.W003"]
    assert "SLOW_REQUEST_SECONDS']=0.3" in warning.msg
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 0.5, "LATENCY_BUCKETS": [0.1, 0.5, 1.0]}
    assert _ids() == []
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 0.3}  # default buckets: the threshold is added
    assert _ids() == []


def test_a_monitoring_config_with_another_slow_threshold_is_W009(settings, tmp_path):
    monitoring = tmp_path / "monitoring.yml"
    monitoring.write_text("slo:\n  latency_seconds: 2.5\n")
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 1.0, "MONITORING_CONFIG": str(monitoring)}
    [warning] = [m for m in run_checks() if m.id == "django_celery_ops.W009"]
    assert "slo.latency_seconds=2.5" in warning.msg and "SLOW_REQUEST_SECONDS']=1.0" in warning.msg
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 2.5, "MONITORING_CONFIG": str(monitoring)}
    assert _ids() == []
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 2.5}  # not set: nothing to compare
    assert _ids() == []


@pytest.mark.parametrize("text,reason", [(None, "No such file"), ("slo: [", "not valid YAML"),
                                         ("slo:\n  latency_seconds: soon\n", "slo.latency_seconds")])
def test_a_monitoring_config_that_cannot_be_read_is_W009_saying_why(settings, tmp_path, text, reason):
    monitoring = tmp_path / "monitoring.yml"
    if text is not None:
        monitoring.write_text(text)
    settings.DJANGO_CELERY_OPS = {"MONITORING_CONFIG": str(monitoring)}
    [warning] = [m for m in run_checks() if m.id == "django_celery_ops.W009"]
    assert "cannot be read" in warning.msg and reason in warning.msg


def test_a_missing_middleware_is_W004(settings):
    settings.MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
    assert _ids() == ["django_celery_ops.W004"]


def test_a_middleware_that_is_not_first_is_W005_naming_the_one_above(settings):
    settings.MIDDLEWARE = ["django.middleware.security.SecurityMiddleware", MW]
    [warning] = [m for m in run_checks() if m.id == "django_celery_ops.W005"]
    assert "django.middleware.security.SecurityMiddleware" in warning.msg and "#2" in warning.msg


def test_django_prometheus_middlewares_next_to_ours_are_E005(settings):
    settings.MIDDLEWARE = [MW, "django_prometheus.middleware.PrometheusBeforeMiddleware",
                           "django_prometheus.middleware.PrometheusAfterMiddleware"]
    assert _ids() == ["django_celery_ops.E005"]


def test_django_prometheus_engine_is_E006_while_db_metrics_are_on(settings, monkeypatch):
    from types import SimpleNamespace

    db = {"ENGINE": "django_prometheus.db.backends.postgresql", "NAME": "x"}
    monkeypatch.setattr(checks, "settings", SimpleNamespace(INSTALLED_APPS=[], DATABASES={"default": db}))
    [error] = checks.check_db_engine()
    assert error.id == "django_celery_ops.E006" and "'django.db.backends.postgresql'" in error.hint
    settings.DJANGO_CELERY_OPS = {"DB_METRICS": False}
    assert checks.check_db_engine() == []


def test_django_prometheus_app_still_installed_is_W006(monkeypatch):
    from types import SimpleNamespace

    # (overriding INSTALLED_APPS would import django_prometheus, which the library does not need)
    monkeypatch.setattr(checks, "settings", SimpleNamespace(INSTALLED_APPS=["django_prometheus"], DATABASES={}))
    assert [m.id for m in checks.check_db_engine()] == ["django_celery_ops.W006"]


def test_the_checks_are_registered_by_the_app():
    from django.core.checks.registry import registry

    assert {checks.check_settings, checks.check_middleware, checks.check_db_engine,
            checks.check_metrics_view} <= set(registry.get_checks()) | set(registry.get_checks(include_deployment_checks=True))


def test_an_unusable_multiproc_dir_fails_only_the_explicit_setup_never_the_import(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "file").write_text("")
    code = ("import django_celery_ops\nfrom django_celery_ops import multiprocess\n"
            "from prometheus_client import Counter\nCounter('c', 'c').inc()\n"  # in memory, no crash
            "try:\n    multiprocess.setup('worker')\nexcept RuntimeError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "file")}).stdout
    assert "PROMETHEUS_MULTIPROC_DIR=" in out and "is not a directory" in out


@pytest.mark.parametrize("value, code", [({"DB_METRICS": "yes", "SLOW_REQUEST_SECONDS": "1"}, "E002"),
                                         ({"SLOW_REQUEST_SECOND": 1.0}, "E001")])
def test_a_wrong_setting_is_named_by_manage_py_check_at_start_up_not_a_traceback(tmp_path, value, code):
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "wrong_settings.py").write_text(f"from tests.library.settings import *\nDJANGO_CELERY_OPS = {value!r}\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "wrong_settings", "PYTHONPATH": str(tmp_path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    result = subprocess.run([sys.executable, "-m", "django", "check"], env=env, capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 1
    assert f"django_celery_ops.{code}" in result.stderr and "Traceback" not in result.stderr


def test_a_dsn_without_sentry_sdk_is_E007_and_init_refuses_it(settings, monkeypatch):
    from django.core.exceptions import ImproperlyConfigured

    from django_celery_ops import sentry

    settings.DJANGO_CELERY_OPS = {"SENTRY": {"DSN": "https://key@sentry.invalid/1"}}
    assert "django_celery_ops.E007" not in _ids()  # the SDK is installed here: quiet
    monkeypatch.setattr(sentry, "sentry_sdk", None)  # as without the [sentry] extra
    assert "django_celery_ops.E007" in _ids()
    with pytest.raises(ImproperlyConfigured, match=r"sentry-sdk is not installed"):
        sentry.init()
    settings.DJANGO_CELERY_OPS = {}
    assert "django_celery_ops.E007" not in _ids() and sentry.init() is False and not sentry.enabled()


# --- profiling and slow stacks (E008, E009, W007, W008) ----------------------------------------------

TOKEN = "a-profiling-token-of-at-least-32-characters"
PROFILING_MW = checks.PROFILING_MIDDLEWARE
AUTH_MW = "django.contrib.auth.middleware.AuthenticationMiddleware"
SESSION_MW = "django.contrib.sessions.middleware.SessionMiddleware"


@pytest.fixture
def profiling_on(settings, tmp_path):
    settings.MIDDLEWARE = [MW, SESSION_MW, AUTH_MW, PROFILING_MW]
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 0.5, "PROFILE_DIR": str(tmp_path / "profiles"),
                                  "PROFILE_TOKEN": TOKEN, "STACKS_DIR": str(tmp_path / "stacks")}
    return settings


def test_profiling_set_up_right_passes_the_checks(profiling_on):
    assert _ids() == []  # the folders do not exist yet: the workers make them


def test_a_profile_or_stack_folder_that_cannot_be_made_is_E008(profiling_on, tmp_path):
    (tmp_path / "file").write_text("")
    profiling_on.DJANGO_CELERY_OPS = {**profiling_on.DJANGO_CELERY_OPS, "PROFILE_DIR": str(tmp_path / "file"),
                                      "STACKS_DIR": str(tmp_path / "file" / "stacks")}
    errors = [m for m in run_checks() if m.id == "django_celery_ops.E008"]
    assert [e.msg.split("]")[0] for e in errors] == ["DJANGO_CELERY_OPS['PROFILE_DIR'", "DJANGO_CELERY_OPS['STACKS_DIR'"]
    assert "is not a directory" in errors[0].msg and "cannot be created" in errors[1].msg


def test_an_unwritable_folder_is_E008_only_when_its_feature_is_on(profiling_on, tmp_path, monkeypatch):
    import os

    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(locked) else real(p, mode))
    profiling_on.DJANGO_CELERY_OPS = {**profiling_on.DJANGO_CELERY_OPS, "PROFILE_DIR": str(locked)}
    assert _ids() == ["django_celery_ops.E008"]
    profiling_on.DJANGO_CELERY_OPS = {**profiling_on.DJANGO_CELERY_OPS, "PROFILE_TOKEN": ""}  # profiling off
    assert _ids() == []
    profiling_on.DJANGO_CELERY_OPS = {**profiling_on.DJANGO_CELERY_OPS, "STACKS_DIR": str(locked)}
    assert _ids() == ["django_celery_ops.E008"]
    profiling_on.DJANGO_CELERY_OPS = {**profiling_on.DJANGO_CELERY_OPS, "SLOW_STACKS": False}
    assert _ids() == []


def test_a_short_token_is_W007(profiling_on):
    profiling_on.DJANGO_CELERY_OPS = {**profiling_on.DJANGO_CELERY_OPS, "PROFILE_TOKEN": "s3cret"}
    [warning] = [m for m in run_checks() if m.id == "django_celery_ops.W007"]
    assert "6 characters" in warning.msg and "s3cret" not in warning.msg  # the token itself is never shown


def test_profiling_on_without_pyinstrument_is_E009(profiling_on, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyinstrument", None)  # import fails as if not installed
    assert _ids() == ["django_celery_ops.E009"]


def test_profiling_without_its_middleware_or_above_authentication_is_W008(profiling_on):
    profiling_on.MIDDLEWARE = [MW, SESSION_MW, AUTH_MW]
    [warning] = [m for m in run_checks() if m.id == "django_celery_ops.W008"]
    assert "not in MIDDLEWARE" in warning.msg
    profiling_on.MIDDLEWARE = [MW, PROFILING_MW, SESSION_MW, AUTH_MW]
    assert _ids() == []  # token only: the session's user is not needed
    profiling_on.DJANGO_CELERY_OPS = {**profiling_on.DJANGO_CELERY_OPS, "PROFILE_STAFF": True}
    [warning] = [m for m in run_checks() if m.id == "django_celery_ops.W008"]
    assert "below django.contrib.auth.middleware.AuthenticationMiddleware" in warning.msg
