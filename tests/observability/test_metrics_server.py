"""The metrics server streams the slot reader's output: concurrent scrapes exact, gzip when asked."""
import gzip
import os
import random
import threading

import pytest
import requests

from django_celery_ops import metrics_server
from tests.observability.test_slotreader import Files, blocks, hold, parsed, reference, write_random

pytestmark = pytest.mark.integration


@pytest.fixture
def server(tmp_path):
    srv = metrics_server.make_server("127.0.0.1", 0, str(tmp_path))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _slot_families(text: str) -> dict:
    """The families that come from the slot files (not the tier's or the cardinality policy's)."""
    return {h: lines for h, lines in blocks(text).items() if " fam" in h}


def _scrape_together(url, n=2, **kwargs):
    barrier, bodies = threading.Barrier(n), [None] * n

    def scrape(i):
        barrier.wait()
        bodies[i] = requests.get(f"{url}/metrics", timeout=30, **kwargs)

    threads = [threading.Thread(target=scrape, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return bodies


def test_concurrent_scrapes_of_an_ha_pair_get_identical_exact_output(tmp_path, server):
    rnd = random.Random(11)
    files = Files(tmp_path, rnd)
    locks = [hold(tmp_path, f"w-{i}") for i in range(3)]
    try:
        write_random(files, rnd, ["w-0", "w-1", "w-2"], families=20, series=100)  # a few thousand lines
        for _ in range(2):  # the first scrapes build the index together, the next ones reread values
            one, two = _scrape_together(server)
            assert one.status_code == two.status_code == 200
            assert one.text == two.text
            assert _slot_families(one.text) == _slot_families(reference(tmp_path))
            assert parsed(one.text)["gunicorn_workers"][2] == {("gunicorn_workers", ()): 0.0}
            for m in files.maps.values():
                for key in list(m._positions)[:50]:
                    m.write_value(key, files.value(), 0.0)
    finally:
        files.close()
        for fd in locks:
            os.close(fd)


def test_gzip_when_the_scraper_accepts_it_and_only_metrics_are_served(tmp_path, server):
    rnd = random.Random(5)
    files = Files(tmp_path, rnd)
    write_random(files, rnd, ["w-0"], families=5)
    files.close()
    plain = requests.get(f"{server}/metrics", headers={"Accept-Encoding": "identity"}, timeout=10)
    assert plain.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "Content-Encoding" not in plain.headers
    zipped = requests.get(f"{server}/metrics", headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.raw.read()) == plain.content
    assert requests.get(f"{server}/", timeout=10).text == plain.text
    assert requests.get(f"{server}/admin/", timeout=10).status_code == 404
    assert _slot_families(plain.text) == _slot_families(reference(tmp_path))
