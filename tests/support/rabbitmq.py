"""Debian's rabbitmq-server for a test: loopback only, free ports, a private epmd, state under var_dir."""
from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from ops.drills.procs import HOST, Proc, free_port, wait_for

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
EPMD = "/usr/bin/epmd"


def available() -> bool:
    return os.path.exists(SERVER) and os.path.exists(EPMD)


def start_rabbitmq(var_dir: Path) -> tuple[list[Proc], str]:
    """Start epmd and a RabbitMQ node; return both processes (stop in reverse) and the AMQP URL."""
    base = var_dir / f"rabbitmq-{secrets.token_hex(3)}"
    (base / "log").mkdir(parents=True)
    amqp_port, epmd_port, dist_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "HOME": str(base),  # the Erlang cookie
        "ERL_EPMD_ADDRESS": HOST, "ERL_EPMD_PORT": str(epmd_port),
        "RABBITMQ_NODENAME": f"rabbit-test-{secrets.token_hex(4)}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": HOST, "RABBITMQ_NODE_PORT": str(amqp_port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"), "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        # The node name's host, resolved by Erlang itself: a minimal machine may lack /etc/hosts.
        "ERL_INETRC": str(base / "inetrc"),
    }
    (base / "inetrc").write_text('{host, {127,0,0,1}, ["localhost"]}.\n{lookup, [file, native]}.\n')
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(f"listeners.tcp.1 = {HOST}:{amqp_port}\nloopback_users = none\n")
    epmd = Proc(f"epmd-{epmd_port}", [EPMD, "-port", str(epmd_port), "-address", HOST], env, var_dir)
    server = Proc(f"rabbitmq-{amqp_port}", [SERVER], env, var_dir)

    def ready():
        assert server.alive(), f"rabbitmq-server exited:\n{server.log()[-3000:]}"
        with socket.create_connection((HOST, amqp_port), timeout=1) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            return sock.recv(8).startswith(b"\x01")  # Connection.Start frame

    try:
        wait_for(ready, 90, f"rabbitmq on port {amqp_port}", interval=0.5)
    except BaseException:
        server.stop()
        epmd.stop()
        raise
    return [epmd, server], f"amqp://guest:guest@{HOST}:{amqp_port}//"
