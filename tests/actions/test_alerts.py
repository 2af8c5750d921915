"""Mail and webhook alerts, against a real SMTP relay (aiosmtpd with STARTTLS and AUTH, a
trustme certificate) and a real HTTP endpoint; and once through a real ``gardien run``."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from gardien.actions import MailAction, WebhookAction, build_action
from gardien.actions.mail import Composer, DigestMode, ThresholdMode
from gardien.clock import FakeClock
from gardien.config.mail import load_mail_relay
from gardien.config.values import parse_spec
from gardien.errors import ConfigError
from gardien.model import Ban, Unban
from gardien.settings import MailRelay
from support.cli import gardien
from support.daemon import Running, failure_line
from support.ports import free_port
from support.smtp_server import HttpEndpoint, SmtpRelay, silent_port

USERS = {"gardien": "correct horse battery staple"}


def ban(address: str, *, jail: str = "sshd", failures: int = 5, start: float | None = None) -> Ban:
    start = time.time() if start is None else start
    return Ban(
        jail,
        ipaddress.ip_address(address),
        start,
        start + 600,
        failures=failures,
        matches=(f"sshd[812]: Failed password for root from {address} port 4711 ssh2",),
    )


# ---- the relay and its settings ------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def smtp(server_tls: ssl.SSLContext) -> Iterator[SmtpRelay]:
    with SmtpRelay(tls=server_tls, users=USERS) as relay:
        yield relay


def write_mail_conf(directory: Path, port: int, **options: str) -> Path:
    """gardien.conf with a [mail] section; returns the file."""
    lines = ["[mail]", "host = 127.0.0.1", f"port = {port}"]
    lines += [f"{key} = {value}" for key, value in options.items()]
    path = directory / "gardien.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def password_file(directory: Path, password: str, mode: int = 0o600) -> Path:
    path = directory / "smtp.password"
    path.write_text(password + "\n")
    path.chmod(mode)
    return path


@pytest.fixture
def relay(tmp_path: Path, smtp: SmtpRelay, ca: trustme.CA) -> MailRelay:
    """Settings read from a real gardien.conf: STARTTLS required, the trustme CA, AUTH."""
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    write_mail_conf(
        tmp_path,
        smtp.port,
        tls="starttls",
        cafile=str(cafile),
        user="gardien",
        password_file=str(password_file(tmp_path, USERS["gardien"])),
        sender="gardien@example.org",
        timeout="5s",
    )
    return load_mail_relay(tmp_path)


def mail(spec: str, relay: MailRelay, jail: str = "sshd") -> MailAction:
    action = build_action(parse_spec(spec), jail, mail_relay=relay)
    assert isinstance(action, MailAction)
    action.retry_delay = 0.01
    action.attempts = 3
    return action


async def run(action: MailAction | WebhookAction, *batches: list[Ban]) -> None:
    await action.start()
    for bans in batches:
        await action.ban(bans)
    await action.stop()


# ---- mail: each ban ------------------------------------------------------------------------
def test_each_ban_is_mailed_through_starttls_and_auth(smtp: SmtpRelay, relay: MailRelay) -> None:
    action = mail("mail[dest=admin@example.org, mode=each]", relay)
    asyncio.run(run(action, [ban("192.0.2.7")], [ban("2001:db8::5", failures=8)]))
    first, second = smtp.wait_for(2)
    assert first.recipients == ["admin@example.org"]
    assert first.mail_from == "gardien@example.org"
    assert first.over_tls and first.user == "gardien"
    assert first.subject == "[gardien] sshd: banned 192.0.2.7 after 5 failures"
    assert "192.0.2.7" in first.body and "jail:      sshd" in first.body
    assert "failures:  5" in first.body
    assert "Failed password" not in first.body  # lines only for the -lines variants
    assert second.subject == "[gardien] sshd: banned 2001:db8::5 after 8 failures"


def test_fail2ban_lines_action_mails_the_matched_lines(smtp: SmtpRelay, relay: MailRelay) -> None:
    # what fail2ban's stock action_mwl expands to
    spec = (
        'sendmail-whois-lines[sender="root@<fq-hostname>", dest="root@localhost, sec@example.org",'
        ' logpath="/var/log/auth.log", chain="INPUT"]'
    )
    action = mail(spec, relay)
    asyncio.run(run(action, [ban("198.51.100.23")]))
    (received,) = smtp.wait_for(1)
    assert received.recipients == ["root@localhost", "sec@example.org"]
    # the stock sender placeholder yields to the relay's sender
    assert received.mail_from == "gardien@example.org"
    assert "Failed password for root from 198.51.100.23 port 4711" in received.body


def test_fail2ban_mail_actions_pass_config_check(tmp_path: Path, fail2ban_config: Path) -> None:
    """A fail2ban directory using %(action_mw)s and %(action_mwl)s checks as it is."""
    etc = tmp_path / "fail2ban"
    etc.mkdir()
    for name in os.listdir(fail2ban_config):
        if name.endswith((".conf", ".d")):
            (etc / name).symlink_to(fail2ban_config / name)
    log = tmp_path / "auth.log"
    log.write_text("")
    (etc / "jail.local").write_text(
        "[DEFAULT]\ndestemail = admin@example.org\n"
        f"[sshd]\nenabled = true\nlogpath = {log}\nbackend = polling\naction = %(action_mw)s\n"
        f"[dropbear]\nenabled = true\nlogpath = {log}\nbackend = polling\n"
        "action = %(action_mwl)s\n"
    )
    result = gardien("-c", str(etc), "config", "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK:")


# ---- mail: digest and threshold ------------------------------------------------------------
def test_digest_gathers_the_bans_of_a_period_into_one_mail(
    smtp: SmtpRelay, relay: MailRelay
) -> None:
    action = mail("mail[dest=admin@example.org, mode=digest, every=0.4]", relay)

    async def scenario() -> None:
        await action.start()
        await action.ban([ban("192.0.2.1"), ban("192.0.2.2")])
        await action.ban([ban("192.0.2.3")])
        await asyncio.to_thread(smtp.wait_for, 1)  # the period ends: one mail for three bans
        await action.ban([ban("192.0.2.4")])
        await action.stop()  # the digest in progress is sent at stop

    asyncio.run(scenario())
    first, second = smtp.wait_for(2)
    assert len(smtp.received) == 2
    assert first.subject.startswith("[gardien] sshd: 3 ban(s) in the last")
    assert all(f"192.0.2.{n}" in first.body for n in (1, 2, 3))
    assert "192.0.2.4" in second.body and "192.0.2.1" not in second.body


def test_digest_lists_a_bounded_number_and_counts_the_rest() -> None:
    clock = FakeClock(1_000_000)
    digest = DigestMode(Composer("sshd", "host1", with_lines=False), 3600, start=clock.now())
    many = [ban(str(ipaddress.ip_address("10.0.0.0") + n), start=clock.now()) for n in range(150)]
    assert digest.add(many, clock.now()) == []
    clock.advance(1800)
    assert digest.due(clock.now()) == []  # the period is not over
    clock.advance(1800)
    (notice,) = digest.due(clock.now())
    assert notice.subject == "[gardien] sshd: 150 ban(s) in the last 1 h"
    assert "10.0.0.99" in notice.body and "10.0.0.100" not in notice.body
    assert "... and 50 more" in notice.body
    clock.advance(3600)
    assert digest.due(clock.now()) == []  # a period without bans sends nothing


def test_threshold_alerts_once_per_wave_and_rearms() -> None:
    clock = FakeClock(1_000_000)
    mode = ThresholdMode(Composer("sshd", "host1", with_lines=False), threshold=5, period=600)
    notices = []
    for n in range(40):  # a wave: 40 bans, 5 s apart
        clock.advance(5)
        notices += mode.add([ban(f"192.0.2.{n}", start=clock.now())], clock.now())
    assert len(notices) == 1
    assert notices[0].subject == "[gardien] sshd: 5 bans within 10 min (alert threshold 5)"
    clock.advance(300)
    assert mode.due(clock.now()) == []
    assert not mode.armed  # still 5 bans within the last 10 min
    clock.advance(600)
    mode.due(clock.now())
    assert mode.armed  # the wave is over
    second = []
    for n in range(5):
        clock.advance(1)
        second += mode.add([ban(f"198.51.100.{n}", start=clock.now())], clock.now())
    assert len(second) == 1


def test_threshold_mails_one_alert_for_a_wave(smtp: SmtpRelay, relay: MailRelay) -> None:
    action = mail("mail[dest=admin@example.org, mode=threshold, bans=3, period=1h]", relay)
    asyncio.run(run(action, *([ban(f"192.0.2.{n}")] for n in range(1, 11))))
    (alert,) = smtp.wait_for(1)
    assert len(smtp.received) == 1
    assert alert.subject == "[gardien] sshd: 3 bans within 1 h (alert threshold 3)"
    assert all(f"192.0.2.{n}" in alert.body for n in (1, 2, 3))


# ---- mail: failures never delay a ban ------------------------------------------------------
def test_an_unresponsive_relay_does_not_delay_bans(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    listener, port = silent_port()  # connections hang: no greeting ever comes
    with listener:
        write_mail_conf(tmp_path, port, timeout="0.2")
        action = mail("mail[dest=admin@example.org]", load_mail_relay(tmp_path))
        action.attempts = 2
        durations: list[float] = []

        async def scenario() -> None:
            await action.start()
            for n in range(150):  # more than the queue holds
                started = time.perf_counter()
                await action.ban([ban(f"10.1.{n // 250}.{n % 250}")])
                durations.append(time.perf_counter() - started)
            action.stop_timeout = 0.6  # two attempts of 0.2 s
            await action.stop()

        with caplog.at_level(logging.INFO, logger="gardien"):
            asyncio.run(scenario())
    assert max(durations) < 0.05
    messages = [record.getMessage() for record in caplog.records]
    assert any("not sent after 2 attempts" in m and "timed out" in m for m in messages), messages
    assert any("further ones are counted and summarised" in m for m in messages)
    assert any("gave up" in m for m in messages)


def test_a_relay_down_is_retried_then_given_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_mail_conf(tmp_path, free_port())  # nothing listens
    action = mail("mail[dest=admin@example.org]", load_mail_relay(tmp_path))
    with caplog.at_level(logging.WARNING, logger="gardien"):
        started = time.perf_counter()
        asyncio.run(run(action, [ban("192.0.2.7")]))
    assert time.perf_counter() - started < 5
    messages = [record.getMessage() for record in caplog.records]
    assert sum("trying again" in m for m in messages) == 2
    assert any("not sent after 3 attempts" in m and "refused" in m.lower() for m in messages)


def test_a_refused_login_is_logged_with_the_relay_answer_and_not_retried(
    tmp_path: Path, smtp: SmtpRelay, ca: trustme.CA, caplog: pytest.LogCaptureFixture
) -> None:
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    write_mail_conf(
        tmp_path,
        smtp.port,
        cafile=str(cafile),
        user="gardien",
        password_file=str(password_file(tmp_path, "wrong")),
    )
    action = mail("mail[dest=admin@example.org]", load_mail_relay(tmp_path))
    with caplog.at_level(logging.WARNING, logger="gardien"):
        asyncio.run(run(action, [ban("192.0.2.7")]))
    assert smtp.received == []
    assert len(smtp.logins) == 1  # a wrong password is not tried again and again
    messages = [record.getMessage() for record in caplog.records]
    assert any("not sent" in m and "535" in m for m in messages), messages


def test_an_untrusted_certificate_gets_nothing(
    tmp_path: Path, smtp: SmtpRelay, caplog: pytest.LogCaptureFixture
) -> None:
    # no cafile: the system CAs do not know the test CA
    write_mail_conf(
        tmp_path,
        smtp.port,
        user="gardien",
        password_file=str(password_file(tmp_path, USERS["gardien"])),
    )
    action = mail("mail[dest=admin@example.org]", load_mail_relay(tmp_path))
    with caplog.at_level(logging.WARNING, logger="gardien"):
        asyncio.run(run(action, [ban("192.0.2.7")]))
    assert smtp.received == [] and smtp.logins == []
    assert any("certificate is not trusted" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("tls", ["starttls", "auto"])
def test_no_password_in_clear_when_the_relay_offers_no_starttls(
    tmp_path: Path, tls: str, caplog: pytest.LogCaptureFixture
) -> None:
    with SmtpRelay(tls=None, users=USERS) as plain:
        write_mail_conf(
            tmp_path,
            plain.port,
            tls=tls,
            user="gardien",
            password_file=str(password_file(tmp_path, USERS["gardien"])),
        )
        action = mail("mail[dest=admin@example.org]", load_mail_relay(tmp_path))
        with caplog.at_level(logging.WARNING, logger="gardien"):
            asyncio.run(run(action, [ban("192.0.2.7")]))
        assert plain.received == [] and plain.logins == []
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "does not offer STARTTLS" in error
    assert "trying again" not in caplog.text


# ---- webhook -------------------------------------------------------------------------------
def hook(spec: str) -> WebhookAction:
    action = build_action(parse_spec(spec), "sshd")
    assert isinstance(action, WebhookAction)
    action.retry_delay = 0.01
    return action


def test_webhook_retries_5xx_and_429_then_delivers_once(tmp_path: Path) -> None:
    token = tmp_path / "hook.token"
    token.write_text("t0ken-42\n")
    token.chmod(0o600)
    answers: list[int | tuple[int, dict[str, str]]] = [503, (429, {"Retry-After": "1"}), 200]
    with HttpEndpoint(answers) as endpoint:
        action = hook(f"webhook[url={endpoint.url}, token_file={token}, header='X-Team: sec']")
        started = time.time()
        asyncio.run(run(action, [ban("192.0.2.7", start=started), ban("2001:db8::9")]))
        endpoint.wait_until(lambda: len(endpoint.requests) == 3)
    statuses = [request.status for request in endpoint.requests]
    assert statuses == [503, 429, 200]  # delivered once, after two retries
    assert endpoint.requests[2].at - endpoint.requests[1].at >= 0.9  # Retry-After honoured
    request = endpoint.requests[2]
    assert request.headers["authorization"] == "Bearer t0ken-42"
    assert request.headers["x-team"] == "sec"
    assert request.body["event"] == "ban"
    first, second = request.body["bans"]
    assert first == {
        "jail": "sshd",
        "ip": "192.0.2.7",
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "end": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + 600)),
        "failures": 5,
        "count": 1,
    }
    assert second["ip"] == "2001:db8::9"
    assert all(r.body == request.body for r in endpoint.requests)


def test_webhook_400_is_not_retried(caplog: pytest.LogCaptureFixture) -> None:
    with HttpEndpoint([400]) as endpoint:
        action = hook(f"webhook[url={endpoint.url}]")
        with caplog.at_level(logging.WARNING, logger="gardien"):
            asyncio.run(run(action, [ban("192.0.2.7")]))
        assert len(endpoint.requests) == 1
    assert any(
        "HTTP 400" in r.getMessage() and "no such hook" in r.getMessage() for r in caplog.records
    )


def test_webhook_posts_unbans_when_asked() -> None:
    with HttpEndpoint() as endpoint:
        action = hook(f"webhook[url={endpoint.url}, unban=yes]")

        async def scenario() -> None:
            await action.start()
            await action.ban([ban("192.0.2.7")])
            await action.unban([Unban("sshd", ipaddress.ip_address("192.0.2.7"), "manual")])
            await action.stop()

        asyncio.run(scenario())
    events = [request.body["event"] for request in endpoint.requests]
    assert events == ["ban", "unban"]
    assert endpoint.requests[1].body["unbans"][0]["ip"] == "192.0.2.7"
    assert endpoint.requests[1].body["unbans"][0]["reason"] == "manual"


def test_an_unresponsive_webhook_does_not_delay_bans() -> None:
    listener, port = silent_port()
    with listener:
        action = hook(f"webhook[url=http://127.0.0.1:{port}/x, timeout=0.3, attempts=1]")
        action.stop_timeout = 0.5
        durations: list[float] = []

        async def scenario() -> None:
            await action.start()
            for n in range(50):
                started = time.perf_counter()
                await action.ban([ban(f"10.2.0.{n}")])
                durations.append(time.perf_counter() - started)
            await action.stop()

        asyncio.run(scenario())
    assert max(durations) < 0.05


# ---- configuration errors ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("webhook[url=ftp://example.org/x]", "url"),
        ("webhook[url=not a url]", "url"),
        ("webhook", "url"),
        ("webhook[url=https://example.org/x, retries=3]", "retries"),
        ("webhook[url=https://example.org/x, header=nocolon]", "header"),
        ("mail[mode=each]", "dest"),
        ("mail[dest=not-an-address]", "dest"),
        ("mail[dest=a@example.org, colour=red]", "colour"),
        ("mail[dest=a@example.org, mode=weekly]", "mode"),
        ("mail[dest=a@example.org, mode=threshold]", "bans"),
        ("mail[dest=a@example.org, mode=digest, every=soon]", "every"),
        ("sendmail-whois[dest=a@example.org, sender='x y']", "sender"),
    ],
)
def test_bad_action_parameters_are_named(spec: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        build_action(parse_spec(spec), "sshd", mail_relay=MailRelay())


def test_fail2ban_parameters_are_accepted_and_ignored() -> None:
    spec = (
        "sendmail-whois[name=sshd, dest=a@example.org, sender=root@example.org, "
        "protocol=tcp, chain=INPUT, port=ssh, logpath=/var/log/auth.log, sendername=Fail2Ban]"
    )
    action = build_action(parse_spec(spec), "sshd", mail_relay=MailRelay())
    assert isinstance(action, MailAction)
    assert action.recipients == ("a@example.org",) and action.sendername == "Fail2Ban"


def test_destemail_of_the_mail_section_is_the_default_recipient(tmp_path: Path) -> None:
    write_mail_conf(tmp_path, 25, destemail="ops@example.org, sec@example.org")
    action = build_action(parse_spec("mail"), "sshd", mail_relay=load_mail_relay(tmp_path))
    assert isinstance(action, MailAction)
    assert action.recipients == ("ops@example.org", "sec@example.org")


def test_a_world_readable_password_file_is_refused(tmp_path: Path) -> None:
    secret = password_file(tmp_path, "s3cret", mode=0o644)
    conf = write_mail_conf(tmp_path, 587, user="gardien", password_file=str(secret))
    with pytest.raises(ConfigError) as raised:
        load_mail_relay(tmp_path)
    message = str(raised.value)
    assert message.startswith(f"{conf}:5: [mail] password_file: {secret} can be read")
    assert "s3cret" not in message


def test_a_password_in_gardien_conf_is_refused(tmp_path: Path) -> None:
    write_mail_conf(tmp_path, 587, user="gardien", password="s3cret")  # noqa: S106
    with pytest.raises(ConfigError, match=r"gardien.conf:5: \[mail\] password: .*password_file"):
        load_mail_relay(tmp_path)


def test_a_world_readable_token_file_is_refused(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc")
    token.chmod(0o604)
    with pytest.raises(ConfigError, match="token_file"):
        build_action(parse_spec(f"webhook[url=https://example.org/h, token_file={token}]"), "j")


def test_mail_section_defaults_and_port_465(tmp_path: Path) -> None:
    assert load_mail_relay(tmp_path) == MailRelay()
    write_mail_conf(tmp_path, 465)
    settings = load_mail_relay(tmp_path)
    assert (settings.port, settings.tls) == (465, "implicit")
    write_mail_conf(tmp_path, 25, tls="sometimes")
    with pytest.raises(ConfigError, match=r"\[mail\] tls: 'sometimes'"):
        load_mail_relay(tmp_path)


def test_config_check_reports_a_bad_mail_action(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("")
    (tmp_path / "jail.local").write_text(
        f"[sshd]\nenabled = true\nlogpath = {log}\nbackend = polling\n"
        "action = log\n         mail[dest=admin@example.org, every=1h, colour=red]\n"
    )
    result = gardien("-c", str(tmp_path), "config", "check")
    assert result.returncode == 1
    assert "gardien: error:" in result.stderr and "'colour'" in result.stderr
    assert "Traceback" not in result.stderr


# ---- end to end: the daemon mails a ban ----------------------------------------------------
def test_the_daemon_mails_a_ban(
    tmp_path: Path, smtp: SmtpRelay, relay: MailRelay, ca: trustme.CA
) -> None:
    running = Running(tmp_path / "daemon")
    running.etc.mkdir(parents=True)
    running.log.parent.mkdir()
    running.log.write_text("")
    (running.etc / "jail.local").write_text(
        "[sshd]\nenabled = false\n\n"
        "[asterisk-provya]\nenabled = true\nfilter = asterisk\n"
        f"logpath = {running.log}\nmaxretry = 3\nfindtime = 10m\nbantime = 1h\n"
        "action = log\n         mail[dest=admin@example.org, mode=each]\n"
    )
    # the [mail] section the relay fixture wrote, password file and CA included
    (running.etc / "gardien.conf").write_text((tmp_path / "gardien.conf").read_text())
    running.start()
    try:
        with running.log.open("a") as log:
            for _ in range(3):
                log.write(failure_line("203.0.113.9"))
        (received,) = smtp.wait_for(1, timeout=15)
    finally:
        output = running.stop()
    assert received.subject == "[gardien] asterisk-provya: banned 203.0.113.9 after 3 failures"
    assert received.recipients == ["admin@example.org"] and received.over_tls
    assert "mailed" in output
