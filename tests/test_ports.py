"""Ports chosen for servers that start later lie outside the kernel's ephemeral range (ops/_ports.py)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ops._chaos import HubInstance
from ops._ports import candidate_spans, ephemeral_range, free_port, free_ports
from ops.errors import OpsError

ROOT = Path(__file__).resolve().parents[1]


def test_the_ephemeral_range_is_read_from_the_kernels_form_and_a_bad_one_falls_back() -> None:
    assert ephemeral_range("32768\t60999\n") == (32768, 60999)
    assert ephemeral_range("1024 4999") == (1024, 4999)
    assert ephemeral_range("garbage") == (32768, 60999)
    assert ephemeral_range("5000 10") == (32768, 60999)


def test_spans_leave_room_for_the_whole_block_on_both_sides_of_the_range() -> None:
    assert candidate_spans(1, (32768, 60999)) == [(10000, 32767), (61000, 65535)]
    assert candidate_spans(6, (32768, 60999)) == [(10000, 32762), (61000, 65530)]
    assert candidate_spans(1, (10000, 65535)) == [(1024, 65535)]  # a kernel that lends every port above 10000


def test_free_ports_are_distinct_bindable_and_never_ephemeral() -> None:
    first, last = ephemeral_range()
    ports = free_ports(20)
    assert len(set(ports)) == 20
    if candidate_spans(1, (first, last)) != [(1024, 65535)]:
        assert not [p for p in ports if first <= p <= last]
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_consecutive_block_is_consecutive_and_free() -> None:
    ports = free_ports(6, consecutive=True)
    assert ports == list(range(ports[0], ports[0] + 6))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))


def test_a_taken_port_is_never_given() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", free_port()))
        taken = squatter.getsockname()[1]
        assert taken not in free_ports(200)


def test_a_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        free_ports(0)


async def test_a_hub_that_stops_during_start_up_says_why_in_the_error(tmp_path: Path) -> None:
    """The campaign's error carries the end of the instance's log, so a failed CI run shows the cause."""
    nobody = f"127.0.0.1:{free_port()}"  # no broker listens there: the hub cannot start
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "NSW_BOOTSTRAP": nobody}
    hub = HubInstance(name="x", port=free_port(), admin_port=free_port(), state_dir=tmp_path / "state", env=env,
                      log=tmp_path / "hub-x.log")  # fmt: skip
    with pytest.raises(OpsError) as caught:
        await hub.start(within=60)
    message = str(caught.value)
    assert "exited during start-up" in message
    assert nobody in message  # the log's last lines name what it could not reach
