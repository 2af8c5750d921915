"""``gardien reload`` never lets a banned address through: the new jails' firewall actions take
over the sets and rules of the old ones in place, for each backend, proved by a counter placed
after every filter chain while the banned client keeps knocking."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.ci import require
from support.e2e import Setup, eventually
from support.netns import Lab, netns_available


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    available, why = netns_available() if os.geteuid() == 0 else (False, "needs root")
    require(available, f"network namespaces: {why}")
    for tool in ("iptables", "ipset", "nft"):
        require(shutil.which(tool) is not None, f"{tool} is missing")
    with Lab.create(clients=1) as built:
        yield built


@pytest.fixture
def counter(lab: Lab) -> Iterator[None]:
    lab.count_past_filters(lab.clients[0], "tcp", 22)
    yield
    lab.run(lab.server, "nft", "delete", "table", "inet", "past_filters", check=False)


@pytest.mark.parametrize(
    "action",
    [
        "nftables-allports[name=asterisk, protocol=all]",
        "iptables-ipset-proto6-allports[name=asterisk, protocol=all]",
        "iptables-allports[name=asterisk, protocol=all]",
    ],
)
def test_reload_never_lets_a_banned_address_through(
    lab: Lab,
    counter: None,
    tmp_path: Path,
    action: str,
) -> None:
    setup = Setup(lab, tmp_path, action)
    attacker = lab.clients[0]
    address = str(attacker.address(4))
    daemon = setup.start()
    try:
        assert setup.cli("set", "asterisk-provya", "banip", address).returncode == 0
        eventually(lambda: lab.probe(attacker, "tcp", 22, 4, 0.3) != "open", "the ban")
        before = lab.packets_past_filters()
        stop = threading.Event()
        probes: list[str] = []

        def knock() -> None:
            while not stop.is_set():
                probes.append(lab.probe(attacker, "tcp", 22, 4, 0.2))

        knocker = threading.Thread(target=knock)
        knocker.start()
        try:
            for reload in (("reload",), ("reload", "asterisk-provya"), ("reload",)):
                result = setup.cli(*reload)
                assert result.returncode == 0, result.stderr
                time.sleep(0.2)
        finally:
            stop.set()
            knocker.join()
        assert len(probes) >= 5 and "open" not in probes
        assert lab.packets_past_filters() == before, "a banned packet got through during a reload"
        assert f"Banned IP list:\t{address}" in setup.cli("status", "asterisk-provya").stdout
        # the counter is live: once the ban is lifted, the client's packets reach it
        assert setup.cli("set", "asterisk-provya", "unbanip", address).returncode == 0
        eventually(lambda: lab.probe(attacker, "tcp", 22, 4, 0.5) == "open", "the unban")
        assert lab.packets_past_filters() > before
    finally:
        output = setup.stop(daemon)
    assert daemon.returncode == 0, output
