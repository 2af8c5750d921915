"""gardien under fail2ban's names: run as ``fail2ban-client`` (or ``fail2ban-regex``), through a
symbolic link of that name to the ``gardien`` executable, it takes what fail2ban's command takes
and prints what it prints.

:func:`main` chooses by the name it was run as (``argv[0]``): ``fail2ban-client`` goes to
:func:`fail2ban_client_main`, ``fail2ban-regex`` to ``fail2ban_regex_main`` of
:mod:`gardien.cli.regex_compat`, anything else to gardien's own command line.

``fail2ban-client [OPTIONS] COMMAND...``: the global options of fail2ban-client 1.0.2 (``-c``,
``-s``, ``-p``, ``-v``, ``-q``, ``--timeout``, ``-x``, ``-b``, ``-f``, ``-t``, ``-d``, ``-h``,
``-V``, ``--str2sec``...), then the command words as fail2ban-client takes them. Answers are
printed as fail2ban-client prints them (:mod:`gardien.cli.f2b_output`); a refusal is printed
as fail2ban-client prints one (its message on stdout, an ``ERROR   NOK: (...)`` log line on
stderr) with exit status 255.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from gardien._version import __version__
from gardien.config.filters import bundled_config_dir
from gardien.config.values import parse_duration
from gardien.errors import ControlError, GardienError, UnknownJailError

__all__ = ["FAIL2BAN_VERSION", "fail2ban_client_main", "main"]

#: the fail2ban-client whose interface gardien's drop-in follows (``-V`` prints it, so that a
#: script choosing its commands by version picks 1.0's)
FAIL2BAN_VERSION = "1.0.2"

#: options that take a value, and those that do not (fail2ban-client's, all accepted)
_WITH_VALUE = {
    "-c": "conf",
    "--conf": "conf",
    "-s": "socket",
    "--socket": "socket",
    "-p": "pidfile",
    "--pidfile": "pidfile",
    "--pname": "pname",
    "--loglevel": "loglevel",
    "--logtarget": "logtarget",
    "--syslogsocket": "syslogsocket",
    "--timeout": "timeout",
    "--str2sec": "str2sec",
}
_FLAGS = {
    "-d": "dump",
    "--dp": "dump",
    "--dump-pretty": "dump",
    "-t": "test",
    "--test": "test",
    "-i": "interactive",
    "-v": "verbose",
    "-q": "quiet",
    "-x": "force",
    "-b": "background",
    "-f": "foreground",
    "--async": "async",
    "-h": "help",
    "--help": "help",
    "-V": "short_version",
    "--version": "version",
}
#: the first words fail2ban-client knows (anything else is its "Invalid command")
COMMAND_WORDS = frozenset(
    {
        "start",
        "restart",
        "reload",
        "stop",
        "unban",
        "banned",
        "status",
        "stats",
        "statistics",
        "ping",
        "echo",
        "help",
        "version",
        "set",
        "get",
        "flushlogs",
        "add",
    }
)

HELP = f"""\
Usage: fail2ban-client [OPTIONS] <COMMAND>

gardien {__version__} as fail2ban-client {FAIL2BAN_VERSION}: the same options and commands, the
same output; `gardien --help` tells what gardien adds.

Options:
    -c, --conf <DIR>        configuration directory (a fail2ban one works as is)
    -s, --socket <FILE>     the daemon's control socket (default: from the configuration)
    -p, --pidfile <FILE>    pid file of a daemon `start` starts
    --timeout <SECONDS>     how long to wait for the daemon (default 30)
    --str2sec <STRING>      a duration (1h30m) in seconds
    -t, --test              check the configuration
    -d, --dp                print the configuration as gardien reads it
    -f                      `start`: run the daemon in the foreground
    -b, -x, -v, -q, --async, --pname, --loglevel, --logtarget, --syslogsocket
                            accepted, for scripts that pass them; they change nothing
    -i                      interactive mode: not supported
    -h, --help              this help
    -V, --version           the version (-V: of the fail2ban-client followed, {FAIL2BAN_VERSION})

Commands: start, restart [JAIL], reload [--restart] [--unban] [--all] [--if-exists] [JAIL],
stop [JAIL], start JAIL, status [JAIL|--all] [FLAVOR], stats, banned [IP...],
unban --all|IP..., ping, echo, version, flushlogs,
get [JAIL] OPTION..., set [JAIL] OPTION VALUE... (as fail2ban-client's; see gardien's README,
"Control commands (the daemon's client)", for what differs).
"""


def _log_line(message: str) -> None:
    """One line on stderr shaped as fail2ban-client's log lines."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
    millis = int(now * 1000) % 1000
    where = f"{'fail2ban':<24}[{os.getpid()}]"
    print(f"{stamp},{millis:03d} {where}: ERROR   {message}", file=sys.stderr)


def _fail(stdout: str | None, log: str) -> NoReturn:
    if stdout is not None:
        print(stdout)
    _log_line(log)
    sys.stdout.flush()
    raise SystemExit(255)


def _refuse(words: Sequence[str], error: GardienError, socket: str) -> NoReturn:
    """Exit as fail2ban-client does when the server refuses ``words``."""
    message = str(error)
    if isinstance(error, ControlError) and message.startswith("gardien is not running"):
        _fail(None, f"Failed to access socket path: {socket}. Is fail2ban running?")
    if message == "Server already running":
        _fail(None, message)
    if words and words[0] in ("reload", "restart"):
        _fail(None, f"Failed during configuration: {message}")
    if isinstance(error, UnknownJailError):
        jail = message.split("'")[1] if message.count("'") >= 2 else ""
        _fail(f"Sorry but the jail '{jail}' does not exist", f"NOK: ({jail!r},)")
    _fail(message, f"NOK: ({message!r},)")


def _parse(argv: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """fail2ban-client's options (up to the first word that is not one) and the command."""
    options: dict[str, Any] = {}
    index = 0
    while index < len(argv) and argv[index].startswith("-") and argv[index] != "-":
        word = argv[index]
        name, _, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        if name in _WITH_VALUE:
            if inline:
                options[_WITH_VALUE[name]] = inline
            elif len(word) > 2 and not word.startswith("--"):
                options[_WITH_VALUE[name]] = word[2:]
            else:
                index += 1
                if index >= len(argv):
                    print(f"ERROR: option {name} requires an argument")
                    print("Init of command line failed", file=sys.stderr)
                    raise SystemExit(255)
                options[_WITH_VALUE[name]] = argv[index]
        elif len(word) > 2 and word[:2] in _WITH_VALUE and not word.startswith("--"):
            options[_WITH_VALUE[word[:2]]] = word[2:]  # -s/run/x.sock
        elif word in _FLAGS:
            options[_FLAGS[word]] = True
        elif not word.startswith("--") and all(f"-{c}" in _FLAGS for c in word[1:]):
            for letter in word[1:]:  # -vvq
                options[_FLAGS[f"-{letter}"]] = True
        else:
            print(f"ERROR: option {word} not recognized")
            print("Init of command line failed", file=sys.stderr)
            raise SystemExit(255)
        index += 1
    return options, list(argv[index:])


def _config_dir(options: dict[str, Any]) -> Path:
    from gardien.cli import DEFAULT_CONFIG_DIR

    given = options.get("conf")
    if given:
        path = Path(given)
        if not path.is_dir():
            _fail(None, f"Failed during configuration: {given}: no such configuration directory")
        return path
    default = Path(os.environ.get("GARDIEN_CONFIG_DIR", DEFAULT_CONFIG_DIR))
    return default if default.is_dir() else bundled_config_dir()


def _gardien(args: Sequence[str]) -> tuple[int, str, str]:
    """gardien's own command line, in this process: exit status, stdout, stderr."""
    from gardien.cli import cli

    out, err = io.StringIO(), io.StringIO()
    status = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            cli.main(args=list(args), prog_name="gardien", standalone_mode=False)
        except SystemExit as exit_:
            status = int(exit_.code or 0)
        except Exception as error:  # click's usage errors, shown as they would be
            status = getattr(error, "exit_code", 1)
            print(f"gardien: error: {error}", file=sys.stderr)
    return status, out.getvalue(), err.getvalue()


def _test(config_dir: Path) -> NoReturn:
    status, _out, err = _gardien(["-c", str(config_dir), "config", "check"])
    if status == 0:
        print("OK: configuration test is successful")
        raise SystemExit(0)
    for line in err.splitlines():
        if not line.endswith(f"problem(s) in {config_dir}"):
            _log_line(line.removeprefix("gardien: error: "))
    print("ERROR: test configuration failed", file=sys.stderr)
    raise SystemExit(255)


def fail2ban_client_main(argv: Sequence[str]) -> None:
    """``fail2ban-client ARGV...`` carried out by gardien; exits with fail2ban-client's status
    (0, or 255 for a refusal)."""
    from gardien.cli.client import restart_daemon, start_daemon
    from gardien.cli.f2b_output import render
    from gardien.cli.f2b_requests import execute
    from gardien.config.daemon import load_daemon_settings
    from gardien.daemon.control import ControlClient

    options, words = _parse(argv)
    if options.get("help") or words == ["help"]:
        print(HELP, end="")
        return
    if options.get("short_version"):
        print(FAIL2BAN_VERSION)
        return
    if options.get("version"):
        print(f"Fail2Ban v{FAIL2BAN_VERSION} (gardien {__version__})")
        return
    if "str2sec" in options:
        try:
            print(int(parse_duration(options["str2sec"])))
        except GardienError as error:
            print(f"ERROR: {error}")
            print("Init of command line failed", file=sys.stderr)
            raise SystemExit(255) from None
        return
    if options.get("interactive"):
        _fail(None, "interactive mode (-i) is not supported by gardien: give the command")
    config_dir = _config_dir(options)
    if options.get("test"):
        _test(config_dir)
    if options.get("dump"):
        status, out, err = _gardien(["-c", str(config_dir), "config", "show"])
        print(out, end="")
        print(err, end="", file=sys.stderr)
        raise SystemExit(0 if status == 0 else 255)
    if not words:
        print(HELP, end="")
        raise SystemExit(255)
    if words[0] not in COMMAND_WORDS:
        _fail("Invalid command", "NOK: ('Invalid command',)")
    try:
        socket = options.get("socket") or load_daemon_settings(config_dir).socket
    except GardienError as error:
        _fail(None, f"Failed during configuration: {error}")
    timeout = float(options.get("timeout") or 30.0)
    obj = {"config_dir": config_dir, "socket": socket, "timeout": timeout}
    try:
        if words == ["start"]:
            if options.get("foreground"):
                _exec_run(config_dir, socket, options.get("pidfile"))
            start_daemon(obj, timeout)
            print("Server ready")
            return
        if words == ["restart"]:
            restart_daemon(obj, timeout)
            print("Server ready")
            return
        client = ControlClient(socket, timeout=timeout)
        if words == ["stop"]:
            result = client.call("stop")
            client.wait_for_exit(timeout)
            print(render(words, result))
            return
        utf8 = (sys.stdout.encoding or "").lower().replace("-", "") == "utf8"
        print(render(words, execute(client, words), utf8=utf8))
    except GardienError as error:
        _refuse(words, error, socket)


def _exec_run(config_dir: Path, socket: str, pidfile: str | None) -> NoReturn:
    """``start -f``: become ``gardien run`` in the foreground."""
    args = [sys.executable, "-m", "gardien", "-c", str(config_dir), "-s", socket, "run"]
    if pidfile:
        args += ["--pidfile", pidfile]
    os.execv(sys.executable, args)  # noqa: S606 (an argv list, no shell)


def main(argv: list[str] | None = None, prog: str | None = None) -> None:
    """Entry point: ``gardien``, or fail2ban's ``fail2ban-client``/``fail2ban-regex`` when run
    under that name (``prog``, by default ``argv[0]``'s base name)."""
    name = prog if prog is not None else os.path.basename(sys.argv[0])
    args = list(sys.argv[1:] if argv is None else argv)
    if name == "fail2ban-client":
        fail2ban_client_main(args)
        return
    if name == "fail2ban-regex":
        from gardien.cli.regex_compat import fail2ban_regex_main

        raise SystemExit(fail2ban_regex_main(args))
    from gardien.cli import cli

    cli.main(args=args, prog_name="gardien")
