"""django_db_* metrics for every connection of any backend, with django-prometheus' names and labels,
from an execute wrapper and the base connect(), not from a wrapped ENGINE."""
import os
import shutil
import socket
import subprocess
import time

import pytest
from django.db import OperationalError, connection, connections
from prometheus_client import REGISTRY

from django_celery_ops import db


def _v(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


def _wrapper(alias, **settings_dict):
    """A connection of its own (not in `connections`), as Django would build it from DATABASES."""
    from django.utils.module_loading import import_string

    cfg = connections.configure_settings({"default": {}, alias: settings_dict})[alias]
    return import_string(cfg["ENGINE"] + ".base.DatabaseWrapper")(cfg, alias=alias)


@pytest.mark.django_db
def test_a_statement_is_counted_and_timed_by_alias_and_vendor():
    labels = {"alias": "default", "vendor": "sqlite"}
    before = _v("django_db_execute_total", **labels), _v("django_db_query_duration_seconds_count", **labels)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    assert (_v("django_db_execute_total", **labels),
            _v("django_db_query_duration_seconds_count", **labels)) == (before[0] + 1, before[1] + 1)


@pytest.mark.django_db
def test_executemany_counts_each_row_in_both_counters_even_from_an_iterator():
    labels = {"alias": "default", "vendor": "sqlite"}
    before = _v("django_db_execute_total", **labels), _v("django_db_execute_many_total", **labels)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE t (n INTEGER)")
        cursor.executemany("INSERT INTO t VALUES (%s)", iter([(1,), (2,), (3,)]))
        cursor.execute("SELECT COUNT(*) FROM t")
        assert cursor.fetchone() == (3,)
    assert _v("django_db_execute_total", **labels) == before[0] + 2 + 3
    assert _v("django_db_execute_many_total", **labels) == before[1] + 3


@pytest.mark.django_db
def test_a_failing_statement_is_counted_by_the_drivers_exception_type_and_still_timed():
    labels = {"alias": "default", "vendor": "sqlite"}
    before = _v("django_db_errors_total", type="OperationalError", **labels)
    timed = _v("django_db_query_duration_seconds_count", **labels)
    with pytest.raises(OperationalError), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    assert _v("django_db_errors_total", type="OperationalError", **labels) == before + 1
    assert _v("django_db_query_duration_seconds_count", **labels) == timed + 1


@pytest.mark.django_db(databases=["default", "custom"])
def test_a_custom_backend_is_counted_like_any_other():
    labels = {"alias": "custom", "vendor": "sqlite"}
    before = _v("django_db_execute_total", **labels)
    with connections["custom"].cursor() as cursor:
        cursor.execute("SELECT 1")
    assert _v("django_db_execute_total", **labels) == before + 1


def test_connections_and_refused_connections_are_counted(django_db_blocker, tmp_path):
    labels = {"alias": "side", "vendor": "sqlite"}
    before = _v("django_db_new_connections_total", **labels), _v("django_db_new_connection_errors_total", **labels)
    with django_db_blocker.unblock():
        good = _wrapper("side", ENGINE="django.db.backends.sqlite3", NAME=str(tmp_path / "db.sqlite3"))
        with good.cursor() as cursor:
            cursor.execute("SELECT 1")
        good.close()
        with good.cursor() as cursor:  # reconnects: a second connection, still one wrapper
            cursor.execute("SELECT 1")
        assert sum(isinstance(w, db.ExecuteMetrics) for w in good.execute_wrappers) == 1
        good.close()
        bad = _wrapper("side", ENGINE="django.db.backends.sqlite3", NAME=str(tmp_path / "missing" / "db.sqlite3"))
        with pytest.raises(OperationalError):
            bad.ensure_connection()
    # every attempt is a new connection (django-prometheus counts in get_new_connection); the refused one an error
    assert _v("django_db_new_connections_total", **labels) == before[0] + 3
    assert _v("django_db_new_connection_errors_total", **labels) == before[1] + 1


def test_a_projects_own_execute_wrapper_is_kept_when_the_connection_opens_inside_it(django_db_blocker, tmp_path):
    seen = []

    def mine(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with django_db_blocker.unblock():
        conn = _wrapper("side2", ENGINE="django.db.backends.sqlite3", NAME=str(tmp_path / "db.sqlite3"))
        with conn.execute_wrapper(mine):
            with conn.cursor() as cursor:  # connects here: ours is added while the project's is on
                cursor.execute("SELECT 1")
        assert [type(w) for w in conn.execute_wrappers] == [db.ExecuteMetrics]  # the project's own was popped
        conn.close()
    assert seen == ["SELECT 1"]


def test_db_metrics_off_installs_nothing(settings):
    settings.DJANGO_CELERY_OPS = {"DB_METRICS": False}
    assert db.install() is False


# --- PostgreSQL: a throwaway cluster when the server binaries and psycopg are here -----------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    import glob

    import psycopg  # noqa: F401 (the matrix installs it; make install has it from the lock)

    # Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin
    # (scripts/install-system.sh installs the postgresql package).
    path = os.pathsep.join([os.environ.get("PATH", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"))])
    initdb, pg_ctl = shutil.which("initdb", path=path), shutil.which("pg_ctl", path=path)
    assert initdb and pg_ctl, "no PostgreSQL server binaries (initdb, pg_ctl): run scripts/install-system.sh"
    base = tmp_path_factory.mktemp("pg")
    data, port = base / "data", _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        if not os.stat("/").st_mode & 0o001:
            # Seen only in a chroot sandbox whose / is 0700: no user but root can reach any
            # program, so no PostgreSQL can run at all (it refuses root). Every real machine,
            # this one and CI included, has a traversable / and runs the test.
            pytest.skip("/ is not traversable by non-root users: PostgreSQL cannot run as any user here")
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise AssertionError("running as root and there is no postgres user to run the server as") from None
        os.chown(base, pw.pw_uid, pw.pw_gid)
        for parent in base.parents:  # the server needs to reach its folder
            if str(parent).startswith(str(tmp_path_factory.getbasetemp().parent)):
                os.chmod(parent, os.stat(parent).st_mode | 0o011)
        as_user = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
    def run(*args):
        done = subprocess.run([*as_user, *args], capture_output=True, text=True, env={**os.environ, "LC_ALL": "C"})
        assert done.returncode == 0, f"{args[0]} failed:\n{done.stdout}\n{done.stderr}"

    # --no-locale: a fresh machine has no locale but C (initdb refuses an unknown one).
    run(initdb, "-D", str(data), "-U", "ops", "--auth=trust", "-E", "UTF8", "--no-locale")
    run(pg_ctl, "-D", str(data), "-l", str(base / "log"), "-w", "-o",
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1", "start")
    try:
        yield {"ENGINE": "django.db.backends.postgresql", "NAME": "postgres", "USER": "ops", "HOST": "127.0.0.1",
               "PORT": str(port)}
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)


def test_postgresql_statements_errors_and_refused_connections(postgres, django_db_blocker):
    labels = {"alias": "pg", "vendor": "postgresql"}
    before = {n: _v(n, **labels) for n in ("django_db_new_connections_total", "django_db_execute_total",
                                           "django_db_new_connection_errors_total")}
    errors = _v("django_db_errors_total", type="UndefinedTable", **labels)
    with django_db_blocker.unblock():
        conn = _wrapper("pg", **postgres)
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
        with pytest.raises(Exception), conn.cursor() as cursor:
            cursor.execute("SELECT * FROM no_such_table")
        conn.close()
        refused = _wrapper("pg", **{**postgres, "PORT": str(_free_port())})
        started = time.monotonic()
        with pytest.raises(OperationalError):
            refused.ensure_connection()
        assert time.monotonic() - started < 30
    assert _v("django_db_new_connections_total", **labels) == before["django_db_new_connections_total"] + 2
    assert _v("django_db_execute_total", **labels) >= before["django_db_execute_total"] + 2
    # django-prometheus' label: the driver's class (psycopg's UndefinedTable), not Django's ProgrammingError
    assert _v("django_db_errors_total", type="UndefinedTable", **labels) == errors + 1
    assert _v("django_db_new_connection_errors_total", **labels) == before["django_db_new_connection_errors_total"] + 1
