"""gardien's own filter library as an administrator uses it without fail2ban: the services the
issue names each have a bundled filter and a bundled jail, disabled, that ``enabled = true`` in
jail.local is enough to turn on, and all of them at once pass ``gardien config check``."""

from __future__ import annotations

import configparser
import shutil
from pathlib import Path

import pytest

from gardien.config.filters import bundled_config_dir, load_filter
from gardien.config.jails import jail_filter, load_jails
from gardien.errors import ConfigError
from gardien.matching.filter import Filter
from support import REPO
from support.cli import gardien
from support.samples import SHIPPED

#: the services the filter library covers (issue 14), by filter name
LIBRARY = {
    "remote access": "sshd dropbear selinux-ssh openvpn cockpit webmin-auth",
    "VoIP": "asterisk freeswitch kamailio opensips",
    "mail": "postfix postfix-sasl dovecot exim exim-spam courier-auth courier-smtp cyrus-imap "
    "sendmail-auth sendmail-reject roundcube-auth sogo-auth sieve",
    "FTP": "pure-ftpd vsftpd proftpd",
    "web": "nginx-http-auth nginx-limit-req nginx-botsearch nginx-bad-request apache-auth "
    "apache-badbots apache-noscript apache-overflows apache-nohome apache-botsearch "
    "apache-shellshock apache-modsecurity php-url-fopen traefik-auth haproxy-http-auth squid "
    "phpmyadmin-syslog nextcloud wordpress caddy-auth",
    "databases and directories": "mysqld-auth mssql-auth mongodb-auth postgresql slapd",
    "DNS": "named-refused nsd",
    "others": "monit gitlab grafana bitwarden recidive",
}
NAMES = sorted({name for names in LIBRARY.values() for name in names.split()})


def _bundled_jails() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.read(bundled_config_dir() / "jail.conf")
    return parser


def test_every_service_of_the_library_has_a_filter() -> None:
    missing = sorted(set(NAMES) - set(SHIPPED))
    assert not missing, f"no bundled filter for: {missing}"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_filter_has_a_disabled_jail_of_its_name(name: str) -> None:
    jails = _bundled_jails()
    assert jails.has_section(name), f"jail.conf has no [{name}]"
    assert jails.get(name, "enabled", fallback="false").strip() == (
        "true" if name == "sshd" else "false"
    )
    assert jails.get(name, "port", fallback="").strip(), f"[{name}] names no port"


@pytest.mark.parametrize("name", SHIPPED)
def test_every_filter_compiles_in_each_of_its_modes(name: str) -> None:
    Filter(load_filter(name, None))
    for mode in ("normal", "more", "auth", "rbl", "errors", "ddos", "extra", "aggressive"):
        try:
            moded = load_filter(name, None, parameters={"mode": mode})
        except ConfigError as error:  # a mode this filter does not have, and says so
            assert "has no mode" in str(error), error
            continue
        assert moded.failregex or moded.failjson, f"{name}[mode={mode}] has no rule"
        Filter(moded)


def test_enabling_every_bundled_jail_is_all_a_user_writes(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    shutil.copytree(bundled_config_dir(), etc, ignore=shutil.ignore_patterns("samples"))
    logs = tmp_path / "logs"
    logs.mkdir()
    local = []
    names = [n for n in _bundled_jails().sections() if n != "DEFAULT"]
    for name in names:
        log = logs / f"{name}.log"
        log.write_text("")
        # the usual Debian log paths do not exist here: only the path changes
        local.append(f"[{name}]\nenabled = true\nlogpath = {log}\nbackend = auto\n")
    (etc / "jail.local").write_text("\n".join(local))
    jails = {j.name: j for j in load_jails(etc)}
    assert set(NAMES) <= set(jails)
    for name, jail in jails.items():
        assert jail.enabled, name
        Filter(jail_filter(jail, etc))
    result = gardien("-c", str(etc), "config", "check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "OK:" in result.stdout, result.stdout


def test_the_readme_lists_every_filter() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## The filter library", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in SHIPPED if f"`{name}`" not in section]
    assert not missing, f"README's filter library does not list: {missing}"
