"""Run drills one after another on a stack, then write the report (JSON, Markdown, PNG plots)."""
from __future__ import annotations

import json
import re
import time
import urllib.parse
from pathlib import Path

from ops.drills.harness import DrillFailed, Result, Stack, wait_until
from ops.drills.procs import ROOT, http
from ops.drills.scenarios import Drill

QUIET_TIMEOUT = 240.0
NOTIFY_TIMEOUT = 60.0
POLL_SECONDS = 0.5  # Prometheus evaluates every second in drills: a state change is seen within half of it
RUNBOOKS_DIR = ROOT / "runbooks"

# --- runbook diagnosis on the real fault ----------------------------------------------------------
# When a drill's expected alert fires, its runbook's Diagnosis queries run on the live stack with
# the placeholders filled from the alert's own labels (as on-call pastes them). Each must be
# accepted and return data, and one of them must name the injected cause: a series carrying these
# labels (values are regexes). Drills not listed here are not diagnosed (yet).
CAUSES: dict[str, dict[str, dict[str, str]]] = {
    "slow-view": {"DjangoSlowRequests": {"view": "drills:slow-view"}},
    "task-backlog": {"CeleryQueueBacklog": {"queue_name": "default"}},
    "task-failures": {"CeleryTaskFailureRateHigh": {"name": "drills.fail", "exception": ".+"}},
    "server-errors": {"DjangoHighServerErrorRate": {"view": "drills:error", "status": "500"}},
    "worker-timeout": {"GunicornWorkerTimeouts": {"job": "django-wsgi"}},
    "slow-clients-direct": {"GunicornWorkerTimeouts": {"job": "django-wsgi"}},
    "worker-down": {"CeleryWorkerDown": {"hostname": ".+"}},
    "broker-down": {"RedisDown": {"job": "redis|celery-exporter"}},
    "redis-exporter-down": {"RedisExporterDown": {"job": "redis", "instance": ".+"}},
}
# Diagnosis queries that may return nothing during that alert's drill, each with why (matched by a
# substring of the query).
EMPTY_OK: dict[str, dict[str, str]] = {
    "DjangoSlowRequests": {"django_db_query_duration_seconds_bucket": "the drill's slow view runs no query",
                           "django_db_execute_total": "the drill's slow view runs no query"},
    "DjangoHighServerErrorRate": {"django_migrations_unapplied_total": "a gauge absent while nothing is unapplied"},
    "CeleryQueueBacklog": {"celery_task_runtime_bucket": "no task finished yet in a young backlog"},
}
_PROMQL = re.compile(r"^[ \t]*```promql[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.MULTILINE | re.DOTALL)
_PLACEHOLDER = re.compile(r"\$([A-Z][A-Z_]*)\b")
_LABEL_OF = {"VIEW": "view", "QUEUE": "queue_name", "JOB": "job", "INSTANCE": "instance", "TASK": "name",
             "HOSTNAME": "hostname"}


def diagnosis_queries(alert: str, labels: dict[str, str]) -> list[str]:
    """The ```promql blocks of the alert's runbook Diagnosis, placeholders filled from its labels (else .+)."""
    text = (RUNBOOKS_DIR / f"{alert}.md").read_text()
    diagnosis = text.split("## Diagnosis", 1)[1].split("\n## ", 1)[0]

    def fill(m):
        label = _LABEL_OF.get(m[1])
        return labels[label] if label in labels else ".+"  # pasted as it is, like on-call does
    return [_PLACEHOLDER.sub(fill, block.strip()) for block in _PROMQL.findall(diagnosis)]


def diagnose(stack: Stack, alert: str, labels: dict[str, str], cause: dict[str, str]) -> dict:
    """Run the alert's diagnosis queries now; return {"queries": [(query, series or error)], "problems": [...]}."""
    found, problems, queries = False, [], []
    for query in diagnosis_queries(alert, labels):
        try:
            series = stack.query(query)
        except Exception as exc:  # a rejected query is a broken runbook
            queries.append((query, f"error: {exc}"))
            problems.append(f"rejected: {query}")
            continue
        queries.append((query, len(series)))
        if not series and not any(k in query for k in EMPTY_OK.get(alert, {})):
            problems.append(f"empty: {query}")
        if any(all(re.fullmatch(v, s["metric"].get(k, "")) for k, v in cause.items()) for s in series):
            found = True
    if not found:
        problems.append(f"no diagnosis query names the cause {cause}")
    return {"labels": labels, "queries": queries, "problems": problems}


def _firing_labels(stack: Stack, alert: str) -> dict[str, str] | None:
    for a in stack.prom("/api/v1/alerts")["alerts"]:
        if a["labels"]["alertname"] == alert and a["state"] == "firing":
            return a["labels"]
    return None


def wait_quiet(stack: Stack, timeout: float = QUIET_TIMEOUT, names: set[str] | None = None) -> None:
    """Wait until no alert (or none of `names`) fires or is pending, Watchdog aside."""
    def quiet():
        alerts = {a["labels"]["alertname"] for a in stack.prom("/api/v1/alerts")["alerts"]} - {"Watchdog"}
        return not (alerts & names if names is not None else alerts)
    wait_until(quiet, timeout, f"the stack to be quiet ({', '.join(sorted(names)) if names else 'all alerts'})")


def _inhibited(stack: Stack, names: set[str]) -> set[str]:
    """Alerts Alertmanager holds back on purpose (an inhibition rule): they are routed correctly."""
    found = set()
    for name in names:
        status, body = http(stack.url("ALERTMANAGER_PORT") + "/api/v2/alerts?filter=" +
                            urllib.parse.quote(f'alertname="{name}"'))
        if status == 200 and any(a["status"].get("inhibitedBy") for a in json.loads(body)):
            found.add(name)
    return found


def _notified_alerts(stack: Stack, since_count: int) -> set[str]:
    """Alerts that reached the inbox firing, with the links on-call needs (runbook, dashboard)."""
    names = set()
    for notification in stack.notifications()[since_count:]:
        for alert in notification.get("alerts", []):
            links = alert.get("annotations", {})
            if alert.get("status") == "firing" and links.get("runbook_url") and links.get("dashboard_url"):
                names.add(alert["labels"]["alertname"])
    return names


def run_drill(stack: Stack, drill: Drill) -> Result:
    """Inject, wait for the expected alerts to fire and notify, remove, wait for them to resolve.

    The drill starts once none of its expected alerts fires or is pending; alerts of an earlier
    drill still resolving (a burned SLO budget takes a while) are carried over, not counted.
    """
    started = time.time()
    result = Result(drill.name, list(drill.expected))
    causes = CAUSES.get(drill.name, {})
    wait_quiet(stack, names=set(drill.expected))
    carried = stack.alerts("firing") | stack.alerts("pending")
    before = len(stack.notifications())
    t0 = time.time()
    remove = drill.inject(stack)
    removed_at = None
    try:
        deadline = t0 + (drill.hold or drill.fire_timeout)
        notify_deadline = None
        while time.time() < deadline:
            now = time.time()
            firing = stack.alerts("firing") - {"Watchdog"}
            result.seen |= firing
            for name in firing:
                result.fired.setdefault(name, now - t0)
                if name in causes and name not in result.diagnosis and (labels := _firing_labels(stack, name)):
                    result.diagnosis[name] = diagnose(stack, name, labels, causes[name])
            for name in _notified_alerts(stack, before):
                result.notified.setdefault(name, time.time() - t0)
            if drill.expected and set(drill.expected) <= set(result.fired):
                notify_deadline = notify_deadline or now + NOTIFY_TIMEOUT
                waiting = set(drill.expected) - set(result.notified)
                result.inhibited |= _inhibited(stack, waiting)
                if waiting <= result.inhibited or now > notify_deadline:
                    break
            time.sleep(POLL_SECONDS)
    finally:
        remove()
        removed_at = time.time()
    missing = [a for a in drill.expected if a not in result.fired]
    if missing:
        result.error = f"did not fire within {drill.fire_timeout:.0f} s: {', '.join(missing)}"
    else:
        unnotified = [a for a in drill.expected if a not in result.notified and a not in result.inhibited]
        if unnotified:
            result.error = f"fired but never reached the inbox: {', '.join(unnotified)}"

    def resolved():
        firing = stack.alerts("firing") - {"Watchdog"}
        result.seen |= firing
        return not firing & set(drill.expected)
    try:
        wait_until(resolved, drill.resolve_timeout, f"{drill.name}'s alerts to resolve")
        result.resolved_after = time.time() - removed_at
    except DrillFailed as exc:
        result.error = result.error or str(exc)
    if drill.check is not None:  # what the drill asserts beyond alerts, e.g. against the database
        try:
            problem = drill.check(stack)
        except DrillFailed as exc:
            problem = str(exc)
        if problem:
            result.error = result.error or f"check failed: {problem}"
    result.seen -= carried
    result.unexpected = result.seen - set(drill.expected) - set(drill.tolerated)
    if result.unexpected and not result.error:
        result.error = f"unexpected alerts fired: {', '.join(sorted(result.unexpected))}"
    ended = time.time()
    result.window = (t0, removed_at, ended)
    for title, expr in drill.series.items():
        try:
            data = stack.prom("/api/v1/query_range", query=expr, start=t0 - 30, end=ended, step=1)["result"]
            result.series[title] = [(float(t), float(v)) for s in data[:8] for t, v in s["values"]]
        except Exception as exc:  # a plot is a convenience; its absence must not hide the verdict
            result.series[title] = []
            result.error = result.error or f"could not read series {title!r}: {exc}"
    result.duration = time.time() - started
    return result


def run_healthy(stack: Stack, seconds: float) -> Result:
    """Background traffic only, for `seconds`: nothing but Watchdog may fire."""
    started = time.time()
    result = Result("healthy-load", [])
    wait_quiet(stack, timeout=180)
    t0 = time.time()
    while time.time() < t0 + seconds:
        result.seen |= stack.alerts("firing") - {"Watchdog"}
        time.sleep(1)
    result.unexpected = set(result.seen)
    if result.unexpected:
        result.error = f"alerts fired under healthy load: {', '.join(sorted(result.unexpected))}"
    result.window = (t0, time.time(), time.time())
    result.duration = time.time() - started
    return result


def _plot(result: Result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = list(result.series) or ["(no series)"]
    fig, axes = plt.subplots(len(titles), 1, figsize=(9, 2.6 * len(titles)), squeeze=False)
    t0, removed, ended = result.window
    for ax, title in zip(axes[:, 0], titles):
        points = result.series.get(title, [])
        if points:
            ax.plot([t - t0 for t, _ in points], [v for _, v in points], ".", markersize=2)
        for name, at in result.fired.items():
            style = "-" if name in result.expected else ":"
            ax.axvline(at, color="red", linestyle=style, linewidth=1)
        first_fire = min((result.fired[a] for a in result.expected if a in result.fired), default=None)
        if first_fire is not None:
            end = removed - t0 + (result.resolved_after or 0)
            ax.axvspan(first_fire, end, color="red", alpha=0.12, label="expected alert firing")
        ax.axvspan(0, removed - t0, color="orange", alpha=0.08, label="fault injected")
        ax.set_title(title, fontsize=9)
        ax.set_xlim(-30, ended - t0)
    axes[-1, 0].set_xlabel("seconds since the fault was injected")
    axes[0, 0].legend(loc="upper right", fontsize=7)
    fig.suptitle(f"drill {result.name}: {'ok' if result.ok else 'FAILED'}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write_report(results: list[Result], out: Path, note: str = "") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    summaries = [{**r.summary(), "diagnosis": r.diagnosis} for r in results]
    (out / "report.json").write_text(json.dumps(summaries, indent=2))
    lines = [f"# Drill report {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "", note, "",
             "| drill | ok | expected alerts | time to fire (s) | time to notify (s) | resolved after (s) | "
             "unexpected | stack | took (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        fire = ", ".join(f"{a} {r.fired[a]:.0f}" for a in r.expected if a in r.fired) or "–"
        notify = ", ".join(f"{a} {r.notified[a]:.0f}" if a in r.notified else f"{a} inhibited"
                           for a in r.expected if a in r.notified or a in r.inhibited) or "–"
        resolved = "–" if r.resolved_after is None else f"{r.resolved_after:.0f}"
        lines.append(f"| {r.name} | {'yes' if r.ok else 'NO'} | {', '.join(r.expected) or 'none'} | {fire} | "
                     f"{notify} | {resolved} | {', '.join(sorted(r.unexpected)) or 'none'} | {r.stack or '–'} | "
                     f"{'–' if r.duration is None else f'{r.duration:.0f}'} |")
        if r.window and (r.series or r.expected):
            _plot(r, out / f"{r.name}.png")
    diagnosed = [(r.name, alert, d) for r in results for alert, d in r.diagnosis.items()]
    if diagnosed:
        lines += ["", "Runbook diagnosis on the live fault (the alert's Diagnosis queries, placeholders from its labels):",
                  "", "| drill | alert | queries with data | problems |", "|---|---|---|---|"]
        for name, alert, d in diagnosed:
            with_data = sum(1 for _q, n in d["queries"] if isinstance(n, int) and n)
            lines.append(f"| {name} | {alert} | {with_data}/{len(d['queries'])} | {'; '.join(d['problems']) or 'none'} |")
    failures = [r for r in results if not r.ok]
    lines += ["", f"{len(results) - len(failures)} passed, {len(failures)} failed"]
    lines += [f"- {r.name}: {r.error}" for r in failures]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out
