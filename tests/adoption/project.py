"""A Django project nobody here wrote for the library: made by ``django-admin startproject`` in a temporary folder.

It has its own names everywhere the README says ``proj``: its package, its settings module
(not ``settings.py``), its Django app, its Celery module and app variable, its task names. The
README's adoption blocks are applied to it as a reader would (readme.py has them).
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tests.adoption import readme

HOST = "127.0.0.1"


def run(args: list[str] | str, *, cwd: Path | None = None, env: dict | None = None, timeout: float = 600,
        check: bool = True) -> subprocess.CompletedProcess:
    """Run a command (a string runs in bash, -e), capture its output; on failure show it."""
    if isinstance(args, str):
        args = ["bash", "-ec", args]
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{shlex.join(args)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                             f"\n--- stderr\n{proc.stderr[-6000:]}")
    return proc


@dataclass
class Venv:
    path: Path

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> str:
        return str(self.bin / "python")

    def env(self, **extra: str) -> dict:
        """A clean environment for the project's processes: this venv first on PATH, nothing of ours."""
        keep = {k: v for k, v in os.environ.items()
                if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "USER") or k.startswith("PIP_")}
        return {**keep, "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin", "VIRTUAL_ENV": str(self.path),
                "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                **extra}

    def pip(self, *args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
        return run([self.python, "-m", "pip", *args], cwd=cwd, env=self.env(**env))

    def freeze(self) -> dict[str, str]:
        """{canonical name: version} of every installed distribution."""
        out = run([self.python, "-m", "pip", "list", "--format", "json"], env=self.env()).stdout
        return {canonical(d["name"]): d["version"] for d in json.loads(out)}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def make_venv(python: str, path: Path) -> Venv:
    run([python, "-m", "venv", str(path)])
    return Venv(path)


@dataclass
class Project:
    """One generated project: where it lives, its names, and what the README's placeholders become in it."""

    root: Path
    name: str                 # the project package (README: proj)
    app: str                  # its Django app with the views and tasks
    settings_module: str      # DJANGO_SETTINGS_MODULE
    celery_module: str        # the module that makes the Celery app (README: proj/celery.py)
    celery_var: str           # the Celery app's variable (README: app)
    run_dir: Path             # README: /run/proj
    ports: dict[str, int] = field(default_factory=dict)  # README port -> this project's port

    @property
    def celery_ref(self) -> str:
        return f"{self.celery_module}:{self.celery_var}"

    @property
    def settings_path(self) -> Path:
        return self.root / (self.settings_module.replace(".", "/") + ".py")

    @property
    def task_name(self) -> str:
        return f"{self.app}.send_receipt"

    def job(self, kind: str) -> str:
        return f"{self.name}-{kind}"

    def url(self, readme_port: int) -> str:
        return f"http://{HOST}:{self.ports[readme_port]}"

    def table(self) -> list[tuple[str, str]]:
        """README placeholder (regex) -> this project's value, applied in order to every block."""
        return [
            (r"\bproj\.celery:app\b", self.celery_ref),
            (r"-A proj\b", f"-A {self.celery_ref}"),
            (r"/run/proj\b", str(self.run_dir)),
            *[(rf"\b{port}\b", str(mine)) for port, mine in self.ports.items()],
            (r"\bproj\b", self.name),
        ]

    def env(self, venv: Venv, broker_url: str) -> dict:
        return venv.env(DJANGO_SETTINGS_MODULE=self.settings_module, SHOP_BROKER_URL=broker_url)


VIEWS = '''\
import time

from django.contrib.auth.models import User
from django.http import HttpResponse

from .tasks import send_receipt


def home(request):
    return HttpResponse("welcome")


def place_order(request):
    User.objects.filter(username="customer").exists()  # one SQL statement per order
    send_receipt.delay(int(request.GET.get("id", "1")))
    return HttpResponse("order placed", status=202)


def report(request):
    time.sleep(float(request.GET.get("seconds", "1.5")))  # the fault: slow work inside the request
    return HttpResponse("report")
'''

TASKS = '''\
from celery import shared_task


@shared_task(name="{app}.send_receipt")
def send_receipt(order_id):
    return order_id
'''

URLS = '''\
from django.contrib import admin
from django.urls import path

from {app} import views

urlpatterns = [
    path("", views.home, name="home"),
    path("order/", views.place_order, name="order"),
    path("report/", views.report, name="report"),
    path("admin/", admin.site.urls),
]
'''

CELERY_MODULE = '''\
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{settings}")

{var} = Celery("{name}")
{var}.config_from_object("django.conf:settings", namespace="CELERY")
{var}.autodiscover_tasks()
'''

SETTINGS_TAIL = '''
# --- this project's own production settings (before the library's) ---
import os

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS += ["{app}"]
CELERY_BROKER_URL = os.environ["SHOP_BROKER_URL"]
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
'''


def create(venv: Venv, parent: Path, name: str, app: str, settings_module: str, celery_module: str,
           celery_var: str, ports: dict[int, int], blocks: dict[str, readme.Block]) -> Project:
    """startproject + startapp, the project's own views, task and Celery app, then the README's settings and Celery blocks."""
    root = parent / name
    root.mkdir(parents=True)
    env = venv.env()
    run([str(venv.bin / "django-admin"), "startproject", name, str(root)], env=env)
    run([venv.python, "manage.py", "startapp", app], cwd=root, env=env)
    project = Project(root=root, name=name, app=app, settings_module=settings_module, celery_module=celery_module,
                      celery_var=celery_var, run_dir=parent / f"run-{name}", ports=ports)

    generated = root / name / "settings.py"
    if settings_module != f"{name}.settings":  # e.g. shopsite/settings/production.py
        target = project.settings_path
        target.parent.mkdir(parents=True, exist_ok=True)
        for pkg in target.relative_to(root / name).parents:
            (root / name / pkg / "__init__.py").touch()
        text = generated.read_text().replace("Path(__file__).resolve().parent.parent",
                                             "Path(__file__).resolve().parent.parent.parent")
        generated.unlink()
        target.write_text(text)
    settings = project.settings_path
    settings.write_text(settings.read_text() + SETTINGS_TAIL.format(app=app))

    (root / app / "views.py").write_text(VIEWS)
    (root / app / "tasks.py").write_text(TASKS.format(app=app))
    (root / name / "urls.py").write_text(URLS.format(app=app))
    celery_path = root / (celery_module.replace(".", "/") + ".py")
    celery_path.write_text(CELERY_MODULE.format(settings=settings_module, var=celery_var, name=name))
    (root / name / "__init__.py").write_text(
        f"from .{celery_module.rsplit('.', 1)[1]} import {celery_var}\n\n__all__ = [\"{celery_var}\"]\n")

    apply_settings(project, blocks["settings"])
    apply_celery(project, blocks["celery-app"])
    project.run_dir.mkdir()
    return project


def apply_settings(project: Project, block: readme.Block) -> None:
    """Append the README's settings block to the project's settings module, as the README says."""
    text = readme.substitute(block.body, project.table())
    path = project.settings_path
    path.write_text(path.read_text() + "\n# --- README: Adopt it in your project, step 2 ---\n" + text + "\n")


def apply_celery(project: Project, block: readme.Block) -> None:
    """Put the README's Celery lines into the project's own Celery module, after its ``Celery(...)`` line.

    The README shows ``app = Celery("proj")``; this project calls its app something else, so the
    block's other lines are inserted with ``app`` renamed, exactly where the README puts them.
    """
    lines = block.body.splitlines()
    assert "from celery import Celery" in lines and 'app = Celery("proj")' in lines, block.body
    imports = [line for line in lines if line.startswith(("from ", "import ")) and line != "from celery import Celery"]
    after = lines[lines.index('app = Celery("proj")') + 1:]
    after = [re.sub(r"\bapp\b", project.celery_var, line) for line in after]
    path = project.root / (project.celery_module.replace(".", "/") + ".py")
    out = []
    for line in path.read_text().splitlines():
        out.append(line)
        if line == "from celery import Celery":
            out.extend(imports)
        if line.startswith(f"{project.celery_var} = Celery("):
            out.extend(after)
    assert any("instrument(" in line for line in out), out
    path.write_text("\n".join(out) + "\n")


def split_command(line: str) -> tuple[dict[str, str], list[str]]:
    """`A=1 B=2 prog args` -> ({A: 1, B: 2}, [prog, args])."""
    words = shlex.split(line, comments=True)
    env = {}
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        key, _, value = words.pop(0).partition("=")
        env[key] = value
    return env, words


def describe(project: Project) -> str:
    return textwrap.dedent(f"""\
        project {project.name} in {project.root}: settings {project.settings_module},
        Celery app {project.celery_ref}, ports {project.ports}""")


def python_version(python: str) -> str:
    return run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"]).stdout.strip()


def default_python() -> str:
    return os.environ.get("ADOPTION_PYTHON") or sys.executable
