"""A small network lab in Linux network namespaces, for testing firewall backends on the real
kernel without touching the host's firewall. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).

    with Lab.create(clients=2) as lab:       # or the ``lab`` fixture of a test module
        fw = lab.server_python.new("gardien.backends.nftables:NftablesFirewall")
        fw.setup(spec)                        # runs in the server namespace
        client = lab.clients[0]
        lab.reachable(client, "udp", 5060, 4)  # -> bool
        lab.probe(client, "tcp", 22, 6)        # -> "open" | "refused" | "timeout"
        lab.run(lab.server, "nft", "list", "ruleset")

Layout: one server namespace ``gardien-srv-<random>``; each client ``gardien-cli<N>-<random>``
is joined to it by its own veth pair. Client ``N`` (1-based) uses a /30 of 192.0.2.0/24 (odd
N) or 198.51.100.0/24 (even N), and ``2001:db8:N::/64`` (``nodad``: usable at once). The server
runs a UDP echo listener on 5060 and a TCP listener on 22, on IPv4 and IPv6.

Why the firewall runs in a child process rather than in a thread moved with ``setns``: a
thread of pytest that changed namespace would leave the host's namespace one mistake away (a
call from the wrong thread, a thread pool, a namespace left on failure would change the host's
real firewall), Python 3.11 has no ``os.setns``, and a crash in a C library would take pytest
down. ``ip netns exec NS python tests/support/netns.py serve`` puts the whole process in the namespace;
``PythonWorker`` calls functions and objects there through pickles over its pipes, and
exceptions come back as they were raised. Probes run the same way in a worker per client, so
each one costs a round trip, not a Python start.

Everything is removed on ``close()`` (the context manager and the fixture call it even when a
test fails): the workers and listeners are killed, then the namespaces deleted.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import ipaddress
import json
import os
import pickle
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gardien.model import Ban

__all__ = [
    "DROP_TIMEOUT",
    "OPEN_TIMEOUT",
    "Client",
    "Lab",
    "PythonWorker",
    "RemoteObject",
    "assert_dropped",
    "assert_open",
    "bans_of",
    "netns_available",
]

HERE = Path(__file__).resolve()
#: how long a call into a namespace may take before the lab gives up on the worker
CALL_TIMEOUT = 120.0
UDP_PORT = 5060
TCP_PORT = 22
#: expected-open probes wait long (a loaded machine is slow to answer), expected-dropped ones
#: briefly (a drop never answers, however long one waits)
OPEN_TIMEOUT = 3.0
DROP_TIMEOUT = 0.5


def netns_available() -> tuple[bool, str]:
    """Whether this process may create network namespaces (root, ``ip``); why not if not."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    name = f"gardien-probe-{secrets.token_hex(4)}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as error:
        return False, f"cannot create a network namespace: {error}"
    subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)
    return True, ""


# ---- calling Python inside a namespace ------------------------------------------------


class RemoteObject:
    """An object living in a worker; attribute calls run there (``fw.ban(...)``)."""

    def __init__(self, worker: PythonWorker, handle: int) -> None:
        self._worker = worker
        self._handle = handle

    def __getattr__(self, name: str) -> Any:
        def method(*args: Any, **kwargs: Any) -> Any:
            return self._worker.request(("method", self._handle, name, args, kwargs))

        return method

    def remote_setattr(self, name: str, value: Any) -> None:
        """Set an attribute of the object in the worker (a test switch, say)."""
        self._worker.request(("method", self._handle, "__setattr__", (name, value), {}))


class PythonWorker:
    """A Python process in a network namespace that runs what it is sent.

    ``call("module:function", *args)`` runs a function there and returns its result;
    ``new("module:Class", *args)`` makes an object there and returns a ``RemoteObject``.
    Arguments, results and exceptions travel as pickles, so they must be picklable.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, str(HERE), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.request(("call", "os:getpid", (), {}))  # started and answering

    def call(self, target: str, *args: Any, **kwargs: Any) -> Any:
        return self.request(("call", target, args, kwargs))

    def new(self, target: str, *args: Any, **kwargs: Any) -> RemoteObject:
        return RemoteObject(self, self.request(("new", target, args, kwargs)))

    def request(self, message: tuple[Any, ...], timeout: float = CALL_TIMEOUT) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        _send(self.process.stdin.fileno(), message)
        ok, value = _receive(self.process.stdout.fileno(), timeout)
        if ok:
            return value
        raise value

    def close(self) -> None:
        _kill(self.process)


def _send(fd: int, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("!Q", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError("no answer from the namespace worker")
        chunk = os.read(fd, min(size - len(chunks), 1 << 20))
        if not chunk:
            raise EOFError("the namespace worker exited")
        chunks += chunk
    return bytes(chunks)


def _receive(fd: int, timeout: float | None) -> Any:
    deadline = None if timeout is None else time.monotonic() + timeout
    (size,) = struct.unpack("!Q", _read_exactly(fd, 8, deadline))
    return pickle.loads(_read_exactly(fd, size, deadline))  # noqa: S301 (our own child)


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    value: Any = importlib.import_module(module)
    for part in name.split("."):
        value = getattr(value, part)
    return value


def serve() -> None:
    """The worker's loop: answer requests on stdin until it closes."""
    reply_fd = os.dup(1)
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    objects: dict[int, Any] = {}
    while True:
        try:
            request = _receive(0, None)
        except EOFError:
            return
        kind, *rest = request
        try:
            if kind == "method":
                handle, name, args, kwargs = rest
                result = getattr(objects[handle], name)(*args, **kwargs)
            else:
                target, args, kwargs = rest
                result = _resolve(target)(*args, **kwargs)
                if kind == "new":
                    objects[id(result)] = result
                    result = id(result)
            reply: tuple[bool, Any] = (True, result)
        except Exception as error:
            reply = (False, error)
        try:
            _send(reply_fd, reply)
        except (pickle.PicklingError, TypeError, AttributeError):
            text = "".join(traceback.format_exception(reply[1])) if not reply[0] else ""
            _send(reply_fd, (False, RuntimeError(f"unpicklable reply: {text or reply[1]!r}")))


# ---- probes (run in a client's worker) -----------------------------------------------


def probe(protocol: str, host: str, port: int, timeout: float) -> str:
    """``open`` when the server answered, ``refused`` when it was refused (TCP reset or ICMP
    port unreachable), ``timeout`` when nothing came back."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, kind) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            if protocol == "udp":
                payload = secrets.token_bytes(8)
                sock.send(payload)
                while sock.recv(64) != payload:
                    pass
        except TimeoutError:
            return "timeout"
        except ConnectionRefusedError:
            return "refused"
        except OSError as error:
            if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EACCES):
                return "refused"
            raise
    return "open"


def listen(udp_port: int, tcp_port: int) -> None:
    """Echo UDP datagrams and accept (then close) TCP connections, IPv4 and IPv6, for ever."""
    sockets: list[tuple[socket.socket, bool]] = []
    for family, any_address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):  # noqa: S104
        for kind, port in ((socket.SOCK_DGRAM, udp_port), (socket.SOCK_STREAM, tcp_port)):
            sock = socket.socket(family, kind)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((any_address, port))
            if kind == socket.SOCK_STREAM:
                sock.listen(128)
            sockets.append((sock, kind == socket.SOCK_STREAM))
    print("ready", flush=True)
    streams = dict(sockets)
    while True:
        for sock in select.select(list(streams), [], [])[0]:
            if streams[sock]:
                connection, _ = sock.accept()
                connection.close()
            else:
                data, peer = sock.recvfrom(2048)
                sock.sendto(data, peer)


# ---- the lab --------------------------------------------------------------------------


@dataclass
class Client:
    """One client namespace and its addresses, with the server's address on its link."""

    number: int
    namespace: str
    ipv4: ipaddress.IPv4Address
    ipv6: ipaddress.IPv6Address
    server_ipv4: ipaddress.IPv4Address
    server_ipv6: ipaddress.IPv6Address
    worker: PythonWorker | None = field(default=None, repr=False)

    def address(self, family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return self.ipv4 if family == 4 else self.ipv6

    def server_address(self, family: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return self.server_ipv4 if family == 4 else self.server_ipv6


def _link_addresses(number: int) -> tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]:
    base = ipaddress.IPv4Address("192.0.2.0" if number % 2 else "198.51.100.0")
    index = (number - 1) // 2
    if index >= 64:
        raise ValueError("at most 128 clients")
    return (
        ipaddress.IPv4Network(f"{base + 4 * index}/30"),
        ipaddress.IPv6Network(f"2001:db8:{number:x}::/64"),
    )


class Lab:
    """A server namespace with listeners and client namespaces wired to it (see the module
    docstring). Build it with ``Lab.create``; use it as a context manager or call ``close``."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(3)
        self.server = f"gardien-srv-{self.token}"
        self.clients: list[Client] = []
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen[bytes]] = []
        self.workers: list[PythonWorker] = []
        self._server_python: PythonWorker | None = None

    @classmethod
    def create(cls, clients: int = 2, *, listen: bool = True) -> Lab:
        """``listen=False``: no listeners in the server namespace, for a test that runs the
        real services there (a container in that namespace, say)."""
        lab = cls()
        try:
            lab._build(clients, listen=listen)
        except BaseException:
            lab.close()
            raise
        return lab

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- use

    def run(
        self, namespace: str, *argv: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in a namespace; its output as text."""
        return subprocess.run(
            ["ip", "netns", "exec", namespace, *argv],
            check=check,
            capture_output=True,
            text=True,
            timeout=CALL_TIMEOUT,
        )

    @property
    def server_python(self) -> PythonWorker:
        """A Python worker in the server namespace (started on first use)."""
        if self._server_python is None:
            self._server_python = self.python(self.server)
        return self._server_python

    def python(self, namespace: str) -> PythonWorker:
        """A new Python worker in ``namespace``, closed with the lab."""
        worker = PythonWorker(namespace)
        self.workers.append(worker)
        return worker

    def probe(
        self, client: Client, protocol: str, port: int, family: int, timeout: float = 0.5
    ) -> str:
        """From ``client`` to the server: ``open``, ``refused`` or ``timeout``."""
        assert client.worker is not None
        host = str(client.server_address(family))
        return str(client.worker.call("netns:probe", protocol, host, port, timeout))

    def ssh_login(self, client: Client, user: str = "nosuchuser", timeout: int = 2) -> str:
        """One login attempt by the real OpenSSH client from ``client`` to the server's port
        22, with no key and no password to offer: an sshd there logs "Invalid user" for a user
        it does not know. The client's last line of complaint, or "" if it got in."""
        try:
            result = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    client.namespace,
                    "ssh",
                    "-F",
                    "/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "StrictHostKeyChecking=no",
                    "-o",
                    "UserKnownHostsFile=/dev/null",
                    "-o",
                    f"ConnectTimeout={timeout}",
                    f"{user}@{client.server_ipv4}",
                    "true",
                ],
                capture_output=True,
                text=True,
                # a connection cut by a ban in its middle waits for the server forever
                timeout=timeout + 5,
            )
        except subprocess.TimeoutExpired:
            return "timeout"
        return result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""

    def count_past_filters(self, client: Client, protocol: str, port: int) -> None:
        """Count the packets of ``client``'s IPv4 address to the server's ``protocol``/``port``
        in a chain at priority 100, after every filter chain (fail2ban's at 0, gardien's at
        -1): a packet counted there is one no firewall stopped. Read with
        :meth:`packets_past_filters`; table ``inet past_filters``."""
        subprocess.run(
            ["ip", "netns", "exec", self.server, "nft", "-f", "-"],
            input=f"""
            table inet past_filters {{
                chain input {{
                    type filter hook input priority 100; policy accept;
                    ip saddr {client.ipv4} {protocol} dport {port} counter
                }}
            }}""",
            text=True,
            check=True,
            capture_output=True,
        )

    def packets_past_filters(self) -> int:
        """The packets :meth:`count_past_filters` counted so far."""
        listing = json.loads(
            self.run(self.server, "nft", "-j", "list", "table", "inet", "past_filters").stdout
        )
        for item in listing["nftables"]:
            for expression in item.get("rule", {}).get("expr", ()):
                if "counter" in expression:
                    return int(expression["counter"]["packets"])
        raise AssertionError("no counter in table inet past_filters")

    def reachable(
        self, client: Client, protocol: str, port: int, family: int, timeout: float = 0.5
    ) -> bool:
        """Whether ``client`` reaches the server's ``protocol``/``port`` over IPv``family``."""
        return self.probe(client, protocol, port, family, timeout) == "open"

    def close(self) -> None:
        """Kill every process started and delete every namespace; safe to call twice."""
        for worker in self.workers:
            worker.close()
        for client in self.clients:
            if client.worker is not None:
                client.worker.close()
        for process in self.processes:
            _kill(process)
        self.workers.clear()
        self.processes.clear()
        self._server_python = None
        for namespace in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)
        self.namespaces.clear()

    # -- building

    def _add_namespace(self, name: str) -> None:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        self.namespaces.append(name)
        self._ip(name, "link", "set", "lo", "up")

    def _ip(self, namespace: str, *argv: str) -> None:
        result = subprocess.run(["ip", "-n", namespace, *argv], capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"ip -n {namespace} {' '.join(argv)}: {result.stderr.strip()}")

    def _build(self, count: int, *, listen: bool = True) -> None:
        self._add_namespace(self.server)
        for number in range(1, count + 1):
            namespace = f"gardien-cli{number}-{self.token}"
            self._add_namespace(namespace)
            network4, network6 = _link_addresses(number)
            server_side, client_side = f"s{number}", "eth0"
            # Created inside the namespaces: no interface ever appears on the host.
            self._ip(
                namespace,
                "link",
                "add",
                client_side,
                "type",
                "veth",
                "peer",
                "name",
                server_side,
                "netns",
                self.server,
            )
            client = Client(
                number=number,
                namespace=namespace,
                ipv4=network4.network_address + 2,
                ipv6=network6.network_address + 2,
                server_ipv4=network4.network_address + 1,
                server_ipv6=network6.network_address + 1,
            )
            for ns, device, v4, v6 in (
                (self.server, server_side, client.server_ipv4, client.server_ipv6),
                (namespace, client_side, client.ipv4, client.ipv6),
            ):
                self._ip(ns, "addr", "add", f"{v4}/30", "dev", device)
                self._ip(ns, "addr", "add", f"{v6}/64", "dev", device, "nodad")
                self._ip(ns, "link", "set", device, "up")
            self.clients.append(client)
        if not listen:
            for client in self.clients:
                client.worker = PythonWorker(client.namespace)
            return
        listener = subprocess.Popen(
            ["ip", "netns", "exec", self.server, sys.executable, str(HERE), "listen"],
            stdout=subprocess.PIPE,
        )
        self.processes.append(listener)
        assert listener.stdout is not None
        if (
            not select.select([listener.stdout], [], [], 30)[0]
            or listener.stdout.readline() != b"ready\n"
        ):
            raise RuntimeError("the listeners in the server namespace did not start")
        for client in self.clients:
            client.worker = PythonWorker(client.namespace)
            self._wait_reachable(client)

    def _wait_reachable(self, client: Client, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        for family in (4, 6):
            while not self.reachable(client, "tcp", TCP_PORT, family, timeout=1.0):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"client {client.number} cannot reach the server (IPv{family})"
                    )
                time.sleep(0.05)


def _kill(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


@contextlib.contextmanager
def lab(clients: int = 2) -> Iterator[Lab]:
    """``Lab.create(clients)`` as a context manager."""
    with Lab.create(clients) as built:
        yield built


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    elif sys.argv[1:] == ["listen"]:
        listen(UDP_PORT, TCP_PORT)
    else:
        sys.exit(f"usage: {sys.argv[0]} serve|listen")


def bans_of(client: Client, seconds: float | None = 600, *, now: float) -> list[Ban]:
    """Bans of ``client``'s IPv4 and IPv6 addresses in jail ``test``, from ``now``."""
    end = None if seconds is None else now + seconds
    return [Ban("test", client.address(family), now, end) for family in (4, 6)]


def assert_open(lab: Lab, client: Client, target: tuple[str, int], family: int) -> None:
    """``client`` reaches the server's ``(protocol, port)`` over IPv``family``."""
    protocol, port = target
    outcome = lab.probe(client, protocol, port, family, OPEN_TIMEOUT)
    assert outcome == "open", f"client {client.number} {protocol}/{port} IPv{family}: {outcome}"


def assert_dropped(lab: Lab, client: Client, target: tuple[str, int], family: int) -> None:
    """``client``'s packets to the server's ``(protocol, port)`` get no answer at all."""
    protocol, port = target
    outcome = lab.probe(client, protocol, port, family, DROP_TIMEOUT)
    assert outcome == "timeout", f"client {client.number} {protocol}/{port} IPv{family}: {outcome}"
