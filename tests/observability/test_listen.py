"""The listen backlog is read from the kernel: connections nobody accepted yet."""
import socket

from django_celery_ops import listen


def test_accept_queue_counts_connections_not_yet_accepted():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    clients = []
    try:
        inode = listen.socket_inode(server)
        assert listen.accept_queues({inode}) == {inode: 0}
        for _ in range(3):
            clients.append(socket.create_connection(server.getsockname(), timeout=5))
        assert listen.accept_queues({inode}) == {inode: 3}
        conn, _ = server.accept()
        conn.close()
        assert listen.accept_queues({inode}) == {inode: 2}
    finally:
        for client in clients:
            client.close()
        server.close()


def test_unknown_sockets_are_not_reported():
    assert listen.accept_queues({1}) == {}


def test_backlog_limit_is_capped_by_somaxconn():
    with open("/proc/sys/net/core/somaxconn") as f:
        somaxconn = int(f.read())
    assert listen.backlog_limit(10**9) == somaxconn
    assert listen.backlog_limit(7) == 7
