"""What an attacker on the network or a curious neighbour on the machine meets on the running local stack: every
Airflow REST endpoint refuses a call without a token, and every socket the stack's services listen on (Airflow's
four components, the Spark Connect server, and what they started) is bound to the loopback interface."""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

# Airflow's endpoints meant to be reached without a token: liveness, version, and the login/logout redirects
PUBLIC = re.compile(r"^/api/v2/(monitor/health|version|auth/login|auth/logout)$")
LOOPBACK_V4 = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it (little-endian hex)
LOOPBACK_V6 = {"00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}  # ::1, ::ffff:127.0.0.1


def _call(method: str, url: str) -> int:
    data = b"{}" if method in ("POST", "PUT", "PATCH") else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_every_rest_endpoint_refuses_a_call_without_a_token(airflow_stack):
    with urllib.request.urlopen(f"{airflow_stack.base_url}/openapi.json", timeout=30) as resp:
        spec = json.load(resp)
    answered = {}
    for path, operations in spec["paths"].items():
        if PUBLIC.search(path) or not path.startswith("/api/v2/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)  # any value: the token is checked before the object is looked up
        for method in operations:
            if method.upper() in ("GET", "POST", "PUT", "PATCH", "DELETE"):
                answered[f"{method.upper()} {path}"] = _call(method.upper(), airflow_stack.base_url + concrete)
    assert len(answered) > 50, "the API server's OpenAPI document lists the REST API"
    let_through = {call: status for call, status in answered.items() if status not in (401, 403)}
    assert not let_through, let_through


def _listening_sockets() -> dict[str, str]:
    """inode -> local address of every TCP socket in LISTEN state (0A) on the machine."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A":
                listening[inode] = local
    return listening


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def test_every_server_the_stack_started_listens_on_loopback_only(airflow_stack):
    from local_airflow import SERVICES, live_group_members

    groups = {pid for name in SERVICES if (pid := airflow_stack.pid(name)) is not None}
    assert len(groups) >= 5, "Airflow's four components and the Spark Connect server run"
    listening = _listening_sockets()
    ours = {}
    for pid in [member for group in groups for member in live_group_members(group)]:
        comm = Path(f"/proc/{pid}/comm").read_text().strip() if Path(f"/proc/{pid}/comm").exists() else "?"
        for inode in _socket_inodes(pid) & listening.keys():
            ours[f"{comm}[{pid}] {listening[inode]}"] = listening[inode]
    ports = {int(addr.rsplit(":", 1)[1], 16) for addr in ours.values()}
    assert {airflow_stack.port, airflow_stack.spark_port} <= ports, ours  # the REST API and Spark Connect seen
    exposed = {what for what, addr in ours.items()
               if addr.split(":")[0] != LOOPBACK_V4 and addr.split(":")[0] not in LOOPBACK_V6}
    assert not exposed, f"listening beyond loopback: {sorted(exposed)}"
