"""Ports for the servers the tests, benchmarks and the soak start on 127.0.0.1.

Why not `bind(("127.0.0.1", 0))`: the kernel answers with a port of its ephemeral range (32768-60999 on Linux),
the same range it draws from for every outgoing connection and for every server that asks for port 0 (the Spark
drivers, block managers and Py4J gateways of the tests running beside). A port picked that way and bound minutes
later (the deployment test starts PostgreSQL and MLflow before Airflow's API server) can be taken meanwhile: CI saw
the API server restart on "address already in use" while another process answered its health checks with 404.

So ports come from below the ephemeral range, where only explicit binds land, in a slice of their own for each
pytest-xdist worker (`PYTEST_XDIST_WORKER`=gwN): two workers never hand out the same port, and a process never hands
out one port twice.
"""

from __future__ import annotations

import os
import random
import socket

FIRST_PORT = 20000  # above the well-known and common service ports (5000, 8080, 4040...), below the ephemeral range
SLICE = 500  # ports per process: 24 slices up to 32000
_handed_out: set[int] = set()


def _slice_start() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    # the controller or a plain run (the soak, a benchmark) takes slice 0; xdist worker gwN takes slice N + 1
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    return FIRST_PORT + SLICE * (index % 24)


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now, not handed out before by this process, and outside the range
    the kernel gives to other processes' port-0 binds and outgoing connections."""
    start = _slice_start()
    offset = random.randrange(SLICE)  # two separate runs on one machine (a CI clone beside a developer's) rarely meet
    for step in range(SLICE):
        port = start + (offset + step) % SLICE
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port left in 127.0.0.1:{start}-{start + SLICE - 1}")
