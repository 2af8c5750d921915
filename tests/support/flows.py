"""A SIP flow kept open from a client of the lab, to see whether a ban cuts an established
flow (conntrack), and a firewall that accepts established traffic first."""

from __future__ import annotations

import socket

from support.netns import Client, Lab, RemoteObject

SIP_PORT = 5060


def sip_scanner(lab: Lab, client: Client) -> RemoteObject:
    """A UDP socket in the client's namespace keeping one flow (one source port) to 5060."""
    assert client.worker is not None
    scanner = client.worker.new("socket:socket", socket.AF_INET, socket.SOCK_DGRAM)
    scanner.bind((str(client.ipv4), 40000))
    scanner.connect((str(client.server_ipv4), SIP_PORT))
    return scanner


def answered(scanner: RemoteObject, timeout: float) -> bool:
    scanner.settimeout(timeout)
    scanner.send(b"OPTIONS sip:x SIP/2.0\r\n")
    try:
        return bool(scanner.recv(2048))
    except TimeoutError:
        return False


def accept_established_first(lab: Lab) -> None:
    """A firewall (re)loaded after gardien that accepts established traffic before anything."""
    lab.run(lab.server, "iptables", "-I", "INPUT", "1", "-m", "conntrack", "--ctstate",
            "ESTABLISHED", "-j", "ACCEPT")  # fmt: skip
