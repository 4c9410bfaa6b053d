"""Proof on projects nobody here wrote for it: the README's adoption path, followed on two new Django projects.

Each project comes from ``django-admin startproject`` with its own names and its own pinned
versions (ADOPTION_PROJECT_REQUIREMENTS, set per matrix cell by noxfile.py), in a fresh virtualenv
made with ADOPTION_PYTHON. The built wheel goes in with the README's ``pip install`` and the
project's lock file as constraints; every README command then runs as written (placeholders
replaced by project.Project.table). Both projects run under gunicorn and Celery on one real
Redis, each with the exporter, and one real Prometheus loads both projects' generated rules
(time-compressed) and scrapes both.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
import zipfile
from pathlib import Path

import pytest
import requests
import yaml

from tests.adoption import project as proj
from tests.adoption import readme
from tests.support.stack import Proc, free_port, start_redis, wait_for

pytestmark = pytest.mark.integration

# What the project pins by default (a `make test` run without nox): the LTS, newest of the rest.
DEFAULT_REQUIREMENTS = "Django>=5.2,<5.3 celery[redis] gunicorn"
COMPRESS = 30          # rule windows and for: divided by this (the drills use 20)
SLOW_SECONDS = 1.5     # the slow view's sleep; the README sets SLOW_REQUEST_SECONDS 1.0
README_PORTS = (8000, 9100, 9808)  # gunicorn, web metrics, Celery exporter in the README
LONG_RUNNING = {"gunicorn", "celery", "django-celery-ops-metrics", "django-celery-ops-exporter"}
PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"

APPS = [  # two projects with names of their own; the second keeps Django's settings.py
    dict(name="shopsite", app="orders", settings_module="shopsite.settings.production",
         celery_module="shopsite.workers", celery_var="orders_app"),
    dict(name="blogsite", app="posts", settings_module="blogsite.settings",
         celery_module="blogsite.tasking", celery_var="queue"),
]


def _get(url: str, **kw) -> requests.Response:
    return requests.get(url, timeout=kw.pop("timeout", 5), **kw)


class Stack:
    """Both projects, their processes, and one Prometheus."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[Proc] = []
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.projects: list[proj.Project] = []
        self.install_output = ""
        self.pins: dict[str, str] = {}
        self.after: dict[str, str] = {}
        self.prometheus = ""

    def start(self, name: str, args: list[str], env: dict, cwd: Path, ready, what: str) -> Proc:
        proc = Proc(name, args, env, self.logs, cwd=cwd)
        self.procs.append(proc)

        def up():
            assert proc.alive(), f"{name} exited:\n{proc.log()[-4000:]}"
            return ready(proc)

        wait_for(up, 60, what)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()

    def query(self, expr: str) -> list[dict]:
        body = _get(f"{self.prometheus}/api/v1/query", params={"query": expr}).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict]:
        """Every pending or firing alert, with the rule file that made it."""
        groups = _get(f"{self.prometheus}/api/v1/rules", params={"type": "alert"}).json()["data"]["groups"]
        return [{"file": g["file"], "alertname": a["labels"]["alertname"], "state": a["state"], "labels": a["labels"]}
                for g in groups for r in g["rules"] for a in r.get("alerts", [])]


def _install(stack: Stack, venv: proj.Venv, blocks, wheel: Path, root: Path) -> None:
    """The README's pip install line, run as written in the project folder, its lock file as requirements.txt."""
    requirements = (root / "requirements.txt")
    requirements.write_text("".join(f"{name}=={version}\n" for name, version in sorted(stack.pins.items())
                                    if name not in ("pip", "setuptools")))
    (line,) = readme.commands(blocks["install"].body)
    _, words = proj.split_command(line)
    (spec,) = [w for w in words if w.startswith("django-celery-ops[")]
    # First without the constraints, as a dry run: the library's own ranges must admit every pin.
    report = stack.tmp / "dry-run.json"
    venv.pip("install", "--dry-run", "--quiet", "--report", str(report), "--find-links", str(wheel.parent), spec,
             cwd=root)
    changed = {proj.canonical(item["metadata"]["name"]): item["metadata"]["version"]
               for item in json.loads(report.read_text())["install"]
               if proj.canonical(item["metadata"]["name"]) in stack.pins}
    assert not changed, f"without constraints pip would change pinned versions: {changed} (pins {stack.pins})"
    # Then the README's command itself.
    out = proj.run(line, cwd=root, env=venv.env(PIP_FIND_LINKS=str(wheel.parent)))
    stack.install_output = f"$ {line}\n{out.stdout}{out.stderr}"
    (stack.tmp / "pip-install.txt").write_text(stack.install_output)
    if os.environ.get("ADOPTION_REPORT_DIR"):  # noxfile.py keeps it per cell, for the release notes
        report_dir = Path(os.environ["ADOPTION_REPORT_DIR"])
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "pip-install.txt").write_text(stack.install_output)
        (report_dir / "requirements.txt").write_text(requirements.read_text())
    stack.after = venv.freeze()
    moved = {name: (version, stack.after.get(name)) for name, version in stack.pins.items()
             if stack.after.get(name) != version}
    assert not moved, f"pip changed pinned versions (pinned, now): {moved}"
    # The installed library is the wheel under test, not a namesake from the index.
    site = proj.run([venv.python, "-c", "import importlib.metadata as m; print(m.distribution('django-celery-ops')"
                     ".read_text('RECORD'))"], env=venv.env()).stdout
    with zipfile.ZipFile(wheel) as whl:
        record = next(n for n in whl.namelist() if n.endswith(".dist-info/RECORD"))
        wheel_files = {line.rsplit(",", 2)[0]: line.rsplit(",", 2)[1] for line in whl.read(record).decode().splitlines()
                       if line.startswith("django_celery_ops/")}
    installed = {line.rsplit(",", 2)[0]: line.rsplit(",", 2)[1] for line in site.splitlines()
                 if line.startswith("django_celery_ops/") and "__pycache__" not in line}
    assert wheel_files == installed, "the installed django-celery-ops is not the built wheel"


def _run_block(stack: Stack, project: proj.Project, venv: proj.Venv, block: readme.Block, broker: str,
               extra: dict[str, list[str]] | None = None) -> None:
    """Run a README sh block in the project folder: short commands to completion, servers in the background."""
    env = project.env(venv, broker)
    for line in readme.commands(readme.substitute(block.body, project.table())):
        words_env, words = proj.split_command(line)
        program = words[0]
        if program not in LONG_RUNNING:
            out = proj.run(line, cwd=project.root, env=env)
            assert "django_celery_ops." not in out.stdout + out.stderr, f"{line}:\n{out.stdout}{out.stderr}"
            continue
        args = [str(venv.bin / program), *words[1:], *(extra or {}).get(program, [])]
        name = f"{project.name}-{program}"
        if program == "gunicorn":
            url = project.url(8000)
            stack.start(name, args, {**env, **words_env}, project.root,
                        lambda p: _get(url + "/").status_code == 200, f"{name} on {url}")
        elif program == "django-celery-ops-metrics":
            url = project.url(9100)
            stack.start(name, args, {**env, **words_env}, project.root,
                        lambda p: _get(url + "/metrics").status_code == 200, f"{name} on {url}")
        elif program == "celery":
            stack.start(name, args, {**env, **words_env}, project.root, lambda p: "ready." in p.log(),
                        f"{name} ready")
        else:
            url = project.url(9808)
            stack.start(name, args, {**env, **words_env}, project.root,
                        lambda p: _get(url + "/metrics").status_code == 200, f"{name} on {url}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory, wheel):
    tmp = tmp_path_factory.mktemp("adoption")
    stack = Stack(tmp)
    blocks = readme.blocks()
    try:
        python = proj.default_python()
        venv = proj.make_venv(python, tmp / "venv")
        venv.pip("install", "--quiet", *os.environ.get("ADOPTION_PROJECT_REQUIREMENTS", DEFAULT_REQUIREMENTS).split())
        stack.pins = {k: v for k, v in venv.freeze().items() if k not in ("pip", "setuptools", "wheel")}

        redis_proc, redis_port = start_redis(tmp / "redis")
        stack.procs.append(redis_proc)
        for n, names in enumerate(APPS):
            ports = {p: free_port() for p in README_PORTS}
            project = _create(venv, tmp, names, ports, blocks)
            assert not readme.missing_placeholders(project.table()), readme.missing_placeholders(project.table())
            stack.projects.append(project)
            if n == 0:
                _install(stack, venv, blocks, wheel, project.root)
            broker = f"redis://{proj.HOST}:{redis_port}/{n}"
            # The project's own deploy step, before the README's: its database is migrated.
            proj.run([venv.python, "manage.py", "migrate", "--noinput"], cwd=project.root,
                     env=project.env(venv, broker))
            _run_block(stack, project, venv, blocks["check"], broker)
            _run_block(stack, project, venv, blocks["web"], broker)
            _run_block(stack, project, venv, blocks["celery"], broker)
            (project.root / "monitoring.yml").write_text(readme.substitute(blocks["monitoring-config"].body,
                                                                           project.table()) + "\n")
            _run_block(stack, project, venv, blocks["generate"], broker)
            # The same command again, time-compressed, for the Prometheus below (the drills do this too).
            generate = readme.commands(blocks["generate"].body)[0]
            assert generate.endswith("--out monitoring"), generate
            proj.run(f"{generate}-fast --compress {COMPRESS}", cwd=project.root, env=project.env(venv, broker))
        _start_prometheus(stack, blocks)
        yield stack
    finally:
        stack.stop()


def _create(venv, tmp, names, ports, blocks) -> proj.Project:
    return proj.create(venv, tmp, names["name"], names["app"], names["settings_module"], names["celery_module"],
                       names["celery_var"], ports, blocks)


def _start_prometheus(stack: Stack, blocks) -> None:
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
              "rule_files": [], "scrape_configs": []}
    for project in stack.projects:
        fragment = readme.substitute(blocks["prometheus"].body, project.table())
        part = yaml.safe_load(fragment.replace("monitoring/prometheus/rules",
                                               str(project.root / "monitoring-fast/prometheus/rules")))
        config["rule_files"] += part["rule_files"]
        config["scrape_configs"] += part["scrape_configs"]
    confdir = stack.tmp / "prometheus"
    confdir.mkdir()
    (confdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    proj.run(["promtool", "check", "config", str(confdir / "prometheus.yml")])
    port = free_port()
    stack.prometheus = f"http://{proj.HOST}:{port}"
    stack.start("prometheus", [PROMETHEUS_BIN, f"--config.file={confdir / 'prometheus.yml'}",
                               f"--storage.tsdb.path={confdir / 'data'}", f"--web.listen-address={proj.HOST}:{port}"],
                dict(os.environ), confdir, lambda p: _get(f"{stack.prometheus}/-/ready").status_code == 200,
                "prometheus ready")
    jobs = {job for p in stack.projects for job in (p.job("web"), p.job("celery"))}

    def all_up():
        up = {r["metric"]["job"] for r in stack.query("up == 1")}
        return jobs <= up

    wait_for(all_up, 30, f"every scrape job up: {sorted(jobs)}")
    time.sleep(2.5)  # two more scrapes: what the start-up probes counted is in Prometheus before the tests count


def test_install_changed_no_pinned_version(stack):
    assert stack.pins and stack.after
    assert {k: stack.after[k] for k in stack.pins} == stack.pins
    added = sorted(set(stack.after) - set(stack.pins))
    assert "django-celery-ops" in added and "prometheus-client" in stack.after
    print(stack.install_output)


def _counted(stack: Stack, series: dict[str, tuple[str, float]]) -> None:
    """Each series grows by exactly its n: it reaches before + n, and two scrapes later is still there."""
    want = {expr: target for expr, target in series.values()}
    seen: dict[str, float | None] = {}

    def reached():
        seen.update({expr: stack.value(expr) for expr in want})
        return seen == want

    try:
        wait_for(reached, 30, "every count reached")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: wanted {want}, last seen {seen}") from None
    time.sleep(2.5)  # two more scrapes: nothing counted twice, nothing late
    assert {expr: stack.value(expr) for expr in want} == want


@pytest.mark.parametrize("index,requests_n,orders_n", [(0, 23, 7), (1, 11, 4)])
def test_requests_and_tasks_are_counted_exactly(stack, index, requests_n, orders_n):
    project = stack.projects[index]
    web, celery = project.job("web"), project.job("celery")
    series = {
        "home": (f'sum(django_http_requests_total_by_view_transport_method_total{{job="{web}",view="home"}})',
                 requests_n),
        "order": (f'sum(django_http_responses_total_by_status_view_method_total'
                  f'{{job="{web}",view="order",status="202"}})', orders_n),
        "statements": (f'sum(django_db_execute_total{{job="{web}",alias="default",vendor="sqlite"}})', orders_n),
        "succeeded": (f'sum(celery_task_succeeded_total{{job="{celery}",name="{project.task_name}"}})', orders_n),
        "received": (f'sum(celery_task_received_total{{job="{celery}",name="{project.task_name}"}})', orders_n),
    }
    before = {key: stack.value(expr) or 0.0 for key, (expr, _) in series.items()}
    for _ in range(requests_n):
        assert _get(project.url(8000) + "/").status_code == 200
    for i in range(orders_n):
        assert _get(project.url(8000) + f"/order/?id={i}").status_code == 202
    _counted(stack, {key: (expr, before[key] + n) for key, (expr, n) in series.items()})


def test_slow_view_fires_django_slow_requests_for_its_app_only(stack):
    faulty, healthy = stack.projects
    assert stack.alerts() == [], "an alert is pending or firing before any fault"
    stop = threading.Event()

    def traffic(url: str, pause: float):
        while not stop.is_set():
            try:
                _get(url, timeout=10)
            except requests.RequestException:
                pass
            stop.wait(pause)

    threads = [threading.Thread(target=traffic, args=(faulty.url(8000) + f"/report/?seconds={SLOW_SECONDS}", 0.1)),
               threading.Thread(target=traffic, args=(faulty.url(8000) + "/", 0.3)),
               threading.Thread(target=traffic, args=(healthy.url(8000) + "/", 0.2)),
               threading.Thread(target=traffic, args=(healthy.url(8000) + "/report/?seconds=0", 0.2))]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        def fired():
            return [a for a in stack.alerts() if a["alertname"] == "DjangoSlowRequests" and a["state"] == "firing"
                    and a["labels"].get("job") == faulty.job("web")]

        alerts = wait_for(fired, 150, "DjangoSlowRequests firing for the slow app", interval=1)
        print(f"DjangoSlowRequests fired {time.monotonic() - started:.0f} s after the fault: {alerts}")
        assert {a["labels"].get("view") for a in alerts} == {"report"}
        assert all(str(faulty.root) in a["file"] for a in alerts), alerts
        time.sleep(5)  # a few more evaluations, to catch anything slower to start on the other side
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    alerts = stack.alerts()
    other = [a for a in alerts if str(healthy.root) in a["file"]
             or any(v.startswith(healthy.name) for v in a["labels"].values())]
    assert not other, f"the healthy app's rules or series alerted: {other}"
