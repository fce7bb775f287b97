"""Ports for a private stack come from below the kernel's ephemeral range (where outgoing
connections take their local ports), are free when handed out, and never handed out twice."""

from __future__ import annotations

import socket

from appeals_devstack.processes import PORT_RANGE, free_port


def test_ports_are_outside_the_ephemeral_range_free_and_distinct() -> None:
    ephemeral_low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])  # noqa: SIM115
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert all(port in PORT_RANGE and port < ephemeral_low for port in ports)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # nothing listens there
