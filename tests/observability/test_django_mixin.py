"""django-mixin's dashboards and alerts, run verbatim against a live gunicorn tier scraped by Prometheus.

Upstream: adinhodovic/django-mixin at 5ba6788d7080824b2538f4e1516119b549d51c08 (2026-03-01).
fixtures/django-mixin-alerts.yaml is its prometheus_alerts.yaml, verbatim; fixtures/django-mixin-queries.yaml
holds every panel expression and template-variable query of its dashboards_out/*.json, verbatim, and the
metric families with the label names those panels filter or group by.

The one substitution: the mixin's job selector. Its alerts carry config.libsonnet's
`djangoSelector: 'job="django"'`; we replace that matcher with `job="django-wsgi"` (our job name), as a
user would by overriding `_config.djangoSelector`. Its dashboards select the job with their `$job`
variable (`job=~"$job"`); we give the variables the values Grafana would: $job = our job, $cluster and
$namespace = "" (our targets carry neither label; Prometheus matches an absent label with ""), $view,
$method, $model = ".*" (All), $__rate_interval = 5m.

Documented departures (asserted absent, their panels asserted to show "No data"):
- django_model_inserts_total, django_model_updates_total, django_model_deletes_total: django-prometheus'
  ExportModelOperationsMixin counters; the whole "Django / Model Overview" dashboard is empty.
- django_cache_get_total, django_cache_get_hits_total, django_cache_get_misses_total: django-prometheus'
  cache backends; the "Cache Hitrate [30m]" and "Cache Get Operations" panels of "Django / Overview".
Panels empty by construction, not by a missing family: the "(1 Week Ago)" panels (`offset 1w`, a fresh
Prometheus has no history) and "Admin Views Response Status" for 5xx (no admin view fails here).

With the mixin's DEFAULT selector (job="django") none of its alerts matches a series: the issue's finding.
"""
from __future__ import annotations

import threading
import time

import pytest
import requests
import yaml

from tests.support import stack, web
from tests.support.celery_mixin import query, start_prometheus

pytestmark = pytest.mark.integration

FIXTURES = stack.ROOT / "tests/observability/fixtures"
JOB = "django-wsgi"
DEFAULT_SELECTOR = 'job="django"'
OUR_SELECTOR = f'job="{JOB}"'
NOT_EXPORTED = ("django_model_inserts_total", "django_model_updates_total", "django_model_deletes_total",
                "django_cache_get_total", "django_cache_get_hits_total", "django_cache_get_misses_total")
ROUNDS = 5


def _alerts() -> dict[str, str]:
    groups = yaml.safe_load((FIXTURES / "django-mixin-alerts.yaml").read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def _queries() -> dict:
    return yaml.safe_load((FIXTURES / "django-mixin-queries.yaml").read_text())


def _ours(expr: str) -> str:
    """The mixin's selector convention, substituted: djangoSelector -> our job. Nothing else changes."""
    assert expr.count(DEFAULT_SELECTOR) >= 1, expr
    return expr.replace(DEFAULT_SELECTOR, OUR_SELECTOR)


def _dashboard(expr: str) -> str:
    """A panel expression with the values Grafana gives its variables for our job (module docstring)."""
    for var, value in (("$__rate_interval", "5m"), ("$cluster", ""), ("$namespace", ""), ("$job", JOB),
                       ("$view", ".*"), ("$method", ".*"), ("$model", ".*")):
        expr = expr.replace(var, value)
    assert "$" not in expr.replace("${1}", ""), expr
    return expr


def _round(session: requests.Session, url: str) -> None:
    """One round of traffic; per view: healthz 3x200 + 1x405 (25 % 4xx), two views always 500."""
    def send(method, path, status, **kw):
        got = session.request(method, f"{url}{path}", timeout=10, allow_redirects=False, **kw).status_code
        assert got == status, (method, path, got)

    for _ in range(3):
        send("GET", "/healthz", 200)
    send("POST", "/healthz", 405, data=b"x" * 300)  # a request body, a 4xx
    send("GET", "/drills/db-view/", 200)             # queries: execute, duration, connections
    send("GET", "/drills/error/", 500)               # an exception: by type, by view
    send("GET", "/drills/db-errors/", 500)           # a statement the database refuses
    send("GET", "/no-such-page/", 404)               # <unnamed view>: ignored by the mixin
    send("GET", "/admin/login/", 200)                # a template response, an admin view
    send("GET", "/admin/", 302)                      # a 3xx (redirect to the login page)
    send("POST", "/admin/login/", 403)               # an admin 4xx (no CSRF token)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A migrated WSGI tier and Prometheus scraping its metrics server every second as job django-wsgi."""
    var_dir = tmp_path_factory.mktemp("django-mixin") / "var"
    (var_dir / "run").mkdir(parents=True)
    started: list = []
    try:
        stack.migrate(stack.app_env(var_dir, "redis://127.0.0.1:1/0"))
        tier = web.start_tier(started, var_dir, name="web", workers=2)
        with requests.Session() as session:
            # Every series exists, well above 0, before the first scrape: rate() then extrapolates every
            # series of a view alike (its clamp at the counter's zero point stays out of reach) and the
            # alert's ratio of rates is the ratio of the requests sent while Prometheus scraped.
            for _ in range(3):
                _round(session, tier.url)
            prometheus, prom = start_prometheus(var_dir, {JOB: [tier.metrics_url.split("//")[1].split("/")[0]]})
            started.append(prometheus)
            stack.wait_for(lambda: list(query(prom, f'up{{{OUR_SELECTOR}}}').values()) == [1.0], 30, "tier scraped")
            stack.wait_for(lambda: query(prom, f'django_http_responses_total_by_status_view_method_total'
                                               f'{{{OUR_SELECTOR}, view="drills:error"}}'), 10, "first scrape")
            for _ in range(ROUNDS):
                _round(session, tier.url)
                time.sleep(1)
        final = web.value(tier.scrape(), "django_http_responses_total_by_status_view_method_total")

        def caught_up():
            got = query(prom, f'sum(django_http_responses_total_by_status_view_method_total{{{OUR_SELECTOR}}})')
            return list(got.values()) == [final]

        stack.wait_for(caught_up, 15, "Prometheus has the final counts")
        yield tier, prom
    finally:
        for proc in reversed(started):
            proc.stop()


def test_every_family_the_dashboards_read_is_exported_with_the_labels_they_group_by(live):
    _, prom = live
    families = _queries()["families"]
    assert set(NOT_EXPORTED) <= set(families)
    for family, spec in families.items():
        body = requests.get(f"{prom}/api/v1/series", params={"match[]": f'{{__name__="{family}"}}'}, timeout=10).json()
        series = body["data"]
        if family in NOT_EXPORTED:
            assert series == [], (family, series)
            continue
        assert series, f"{family}: no series ({spec['sources']})"
        assert {s["job"] for s in series} == {JOB}, family
        labels = set(spec["labels"])  # what the panels filter or group by: on every series, never empty
        missing = [s for s in series if not labels <= {k for k, v in s.items() if v != ""}]
        assert not missing, (family, labels, missing[:3])
    # the values the panels break down by
    views = {s["view"] for s in requests.get(f"{prom}/api/v1/series", params={
        "match[]": "django_http_responses_total_by_status_view_method_total"}, timeout=10).json()["data"]}
    assert {"healthz", "drills:db-view", "drills:error", "drills:db-errors", "admin:login", "admin:index",
            "<unnamed view>"} <= views
    assert query(prom, 'sum by (type) (django_http_exceptions_total_by_type_total)').keys() >= {
        frozenset({"type": "DrillError"}.items())}
    # str(response.template_name), as django-prometheus does: LoginView's is a list. The mixin's ignore regex
    # (".*'health_check/index.html'.*") is written for exactly that form.
    assert frozenset({"templatename": "['admin/login.html']"}.items()) in query(
        prom, "sum by (templatename) (django_http_responses_total_by_templatename_total)")
    assert list(query(prom, f"max(django_migrations_unapplied_total{{{OUR_SELECTOR}}})").values()) == [0.0]
    assert list(query(prom, f"max(django_migrations_applied_total{{{OUR_SELECTOR}}})").values())[0] > 0
    assert not query(prom, '{__name__=~"django_model_.*|django_cache_.*"}')


def test_the_mixin_alerts_with_our_job_selector_evaluate_to_the_right_values(live):
    _, prom = live
    alerts = _alerts()
    assert set(alerts) == {"DjangoMigrationsUnapplied", "DjangoDatabaseException", "DjangoHighHttp4xxErrorRate",
                           "DjangoHighHttp5xxErrorRate"}

    def by_view(name):
        return {dict(lab)["view"]: value for lab, value in query(prom, _ours(alerts[name])).items()}

    # 5xx share per view: the two failing views, 100 %; healthz, db-view (200s only) below the 5 % threshold
    assert by_view("DjangoHighHttp5xxErrorRate") == {"drills:error": 100.0, "drills:db-errors": 100.0}
    four = by_view("DjangoHighHttp4xxErrorRate")
    # healthz: 1 POST (405) in 4 requests per round; admin:login: 1 POST (403) in 2; <unnamed view> ignored
    assert four.keys() == {"healthz", "admin:login"}, four
    assert four["healthz"] == pytest.approx(25.0, abs=0.01)
    assert four["admin:login"] == pytest.approx(50.0, abs=0.01)
    labels = dict(next(iter(query(prom, _ours(alerts["DjangoHighHttp5xxErrorRate"])))))
    assert labels.keys() == {"job", "view"} and labels["job"] == JOB
    db = query(prom, _ours(alerts["DjangoDatabaseException"]))
    assert [dict(lab) for lab in db] == [{"job": JOB, "type": "OperationalError"}], db
    assert list(db.values())[0] > 0
    assert query(prom, _ours(alerts["DjangoMigrationsUnapplied"])) == {}  # migrated: 0 unapplied


def test_with_the_mixin_default_selector_no_alert_matches_our_metrics(live):
    _, prom = live
    for name, expr in _alerts().items():
        assert DEFAULT_SELECTOR in expr, name
        assert query(prom, expr) == {}, name
        # not an empty threshold: the same expression with the threshold removed also matches nothing
        core = expr.rsplit(">", 1)[0]
        assert query(prom, core) == {}, name
        assert query(prom, _ours(core)), name


def test_every_dashboard_panel_has_data_except_the_documented_departures(live):
    tier, prom = live
    spec = _queries()
    stop = threading.Event()

    def traffic():  # irate() panels need the last two scrapes to differ
        with requests.Session() as session:
            while not stop.is_set():
                _round(session, tier.url)
                time.sleep(0.3)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        time.sleep(2.5)
        empty, seen = set(), {}
        for q in spec["queries"]:  # (dashboard, panel, n-th query of the panel)
            key = (q["file"].split("/")[-1], q["panel"])
            seen[key] = seen.get(key, -1) + 1
            if not query(prom, _dashboard(q["expr"])):
                empty.add((*key, seen[key]))
        for v in spec["variables"]:
            if v["variable"] == "datasource":
                continue
            expr = _dashboard(v["query"])
            metric, label = expr.removeprefix("label_values(").removesuffix(")").rsplit(",", 1)
            if label.strip() in ("cluster", "namespace"):
                continue  # our targets carry no cluster/namespace: the variable is "" and matches absent labels
            got = requests.get(f"{prom}/api/v1/label/{label.strip()}/values", params={"match[]": metric},
                               timeout=10).json()["data"]
            if not got:
                empty.add((v["file"].split("/")[-1], "variable $" + v["variable"], 0))
    finally:
        stop.set()
        thread.join(15)
    model = {(key[0], key[1], n) for key, last in seen.items() if key[0] == "django-model-overview.json"
             for n in range(last + 1)}
    model |= {("django-model-overview.json", "variable $job", 0), ("django-model-overview.json", "variable $model", 0)}
    cache = {("django-overview.json", "Cache Hitrate [30m]", 0),
             ("django-overview.json", "Cache Get Operations", 0), ("django-overview.json", "Cache Get Operations", 1)}
    week_ago = {("django-requests-by-view.json", "Request Total (1 Week Ago)", 0),
                *(("django-requests-by-view.json", "Latency Total (1 Week Ago)", n) for n in range(3))}
    admin_5xx = {("django-requests-overview.json", "Admin Views Response Status", 2)}  # 2xx, 4xx, 5xx: no admin 5xx
    assert empty == model | cache | week_ago | admin_5xx, sorted(empty ^ (model | cache | week_ago | admin_5xx))
