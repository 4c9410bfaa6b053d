"""Flower, as `make up` runs it: loopback only and behind basic authentication."""
import pytest
import requests

from tests.support import stack

pytestmark = pytest.mark.integration


def test_flower_asks_for_the_login_and_serves_with_it(celery_env, var_dir, procs):
    port = stack.free_port()
    env = {**celery_env, "FLOWER_BASIC_AUTH": "admin:s3cret-test"}
    flower = stack.Proc("flower", [str(stack.VENV_BIN / "celery"), "-A", "app", "flower",
                                   f"--address={stack.HOST}", f"--port={port}", "--max_tasks=10000"], env, var_dir)
    procs.append(flower)
    url = f"http://{stack.HOST}:{port}/"

    def answering():
        assert flower.alive(), flower.log()[-3000:]
        return requests.get(url, timeout=2).status_code

    assert stack.wait_for(answering, 30, "flower answers") == 401
    assert requests.get(url, auth=("admin", "wrong"), timeout=5).status_code == 401
    assert requests.get(url, auth=("admin", "s3cret-test"), timeout=5).status_code == 200
