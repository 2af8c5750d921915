"""Small value languages: ``name[param=value]`` specifications, durations and booleans."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gardien.config.values import parse_bool, parse_duration, parse_spec, split_specs
from gardien.errors import ConfigError
from gardien.settings import Spec

# ---- parse_spec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "params"),
    [
        ("sshd", "sshd", {}),
        ("  sshd  ", "sshd", {}),
        ("postfix[mode=auth]", "postfix", {"mode": "auth"}),
        (
            "iptables-allports[name=asterisk, protocol=all]",
            "iptables-allports",
            {"name": "asterisk", "protocol": "all"},
        ),
        ('x[a="1, 2]", b=\'say "hi"\']', "x", {"a": "1, 2]", "b": 'say "hi"'}),
        (
            'sendmail[dest="root@localhost", sender=fail2ban]',
            "sendmail",
            {"dest": "root@localhost", "sender": "fail2ban"},
        ),
        ("a[x=1][y=2]", "a", {"x": "1", "y": "2"}),
        ("a[x=1][x=2]", "a", {"x": "2"}),
        ("sshd [mode=aggressive]", "sshd", {"mode": "aggressive"}),
        ("name[a=1,\n     b=2]", "name", {"a": "1", "b": "2"}),
        ("name[ a = spaced value , b=2 ]", "name", {"a": "spaced value", "b": "2"}),
        ("a[x=]", "a", {"x": ""}),
        ("a[]", "a", {}),
        ("filter.d/x.conf[p.q-r=1]", "filter.d/x.conf", {"p.q-r": "1"}),
    ],
)
def test_parse_spec(text: str, name: str, params: dict[str, str]) -> None:
    spec = parse_spec(text)
    assert spec.name == name
    assert spec.params == params


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a[x=1", "missing ']'"),
        ("a[x=1, y=2", "missing ']'"),
        ('a[x="1]', 'unclosed " quote'),
        ("a[x='1, y=2]", "unclosed ' quote"),
        ("a[x=1]b", "unexpected 'b'"),
        ("[x=1]", "expected a name"),
        ("", "expected a name"),
        ("a[=1]", "expected 'parameter=value'"),
        ("a[x 1]", "expected 'parameter=value'"),
        ('a[x="1" y]', "expected ',' or ']'"),
        # a list value must be quoted, as jail.conf does with port="%(port)s"
        ("a[port=http,https]", "expected 'parameter=value' at 'https]'"),
    ],
)
def test_parse_spec_errors_say_what_is_wrong(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_spec(text)
    assert fragment in str(caught.value)


def test_spec_str_round_trips() -> None:
    for text in ["sshd", "postfix[mode=auth]", 'x[a="1, 2", b=plain]', 'y[a="q]"]']:
        spec = parse_spec(text)
        assert parse_spec(str(spec)) == spec
    assert str(Spec("x", {"a": "1, 2"})) == 'x[a="1, 2"]'


@given(
    name=st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True),
    params=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
        st.text(st.characters(codec="ascii", exclude_characters="\"'\r\n"), max_size=12).map(
            str.strip
        ),
        max_size=4,
    ),
)
def test_spec_str_round_trips_for_any_values(name: str, params: dict[str, str]) -> None:
    spec = Spec(name, params)
    assert parse_spec(str(spec)) == spec


# ---- split_specs -----------------------------------------------------------------------------


def test_split_specs_names_and_brackets_over_lines() -> None:
    text = (
        "sshd\n"
        "postfix[mode=auth]\n"
        "  iptables[name=SSH,\n"
        "           port=ssh]  dovecot [mode=aggressive]\n"
        ' mail[dest="a b]c"]\n'
        "\n"
        "last"
    )
    assert split_specs(text) == [
        "sshd",
        "postfix[mode=auth]",
        "iptables[name=SSH,\n           port=ssh]",
        "dovecot[mode=aggressive]",
        'mail[dest="a b]c"]',
        "last",
    ]
    parsed = [parse_spec(item) for item in split_specs(text)]
    assert parsed[2] == Spec("iptables", {"name": "SSH", "port": "ssh"})
    assert parsed[4] == Spec("mail", {"dest": "a b]c"})


def test_split_specs_of_blank_text_is_empty() -> None:
    assert split_specs("") == []
    assert split_specs("  \n\t \n") == []


def test_split_specs_action_with_spaces_in_bracket() -> None:
    text = "%(action_)s\n   sendmail-whois[name=sshd, dest=root, sender=f2b@example.com]"
    assert split_specs(text) == [
        "%(action_)s",
        "sendmail-whois[name=sshd, dest=root, sender=f2b@example.com]",
    ]


# ---- parse_duration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("600", 600.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("10m", 600.0),
        ("360m", 21600.0),
        ("1h", 3600.0),
        ("1H", 3600.0),
        ("2.5h", 9000.0),
        ("1d", 86400.0),
        ("1w", 604800.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("1d2h3m4s", 93784.0),
        ("1 day 2 hours", 93600.0),
        ("10 minutes", 600.0),
        ("10 sec", 10.0),
        ("1 min", 60.0),
        ("1wk", 604800.0),
        ("1y", 31557600.0),
        ("  30s  ", 30.0),
        ("-1", -1.0),
        ("-5", -1.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"), [("1mo", 2629800.0), ("1month", 2629800.0), ("2months", 5259600.0)]
)
def test_parse_duration_months(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["abc", "1x", "h", "-", "1h-", "--1", "1.5.5", "1e3", "ten m"])
def test_parse_duration_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_duration(text)
    assert repr(text) in str(caught.value)
    assert "not a duration" in str(caught.value)


@pytest.mark.parametrize("text", ["", "   "])
def test_parse_duration_rejects_empty(text: str) -> None:
    with pytest.raises(ConfigError, match="empty duration"):
        parse_duration(text)


_SPELLINGS = {
    604800: ("w", "wk", "week", "weeks"),
    86400: ("d", "day", "days", "D"),
    3600: ("h", "hr", "hrs", "hour", "hours", "H"),
    60: ("m", "min", "mins", "minute", "minutes", "M"),
    1: ("s", "sec", "secs", "second", "seconds"),
}


@given(
    parts=st.lists(
        st.tuples(
            st.integers(0, 100_000),
            st.sampled_from(sorted(_SPELLINGS)),
            st.integers(0, 5),
            st.sampled_from(["", " "]),
        ),
        min_size=1,
        max_size=6,
    ),
    separator=st.sampled_from(["", " ", "  "]),
)
def test_parse_duration_sums_its_parts(
    parts: list[tuple[int, int, int, str]], separator: str
) -> None:
    texts = []
    for count, unit, spelling, space in parts:
        names = _SPELLINGS[unit]
        texts.append(f"{count}{space}{names[spelling % len(names)]}")
    text = separator.join(texts)
    assert parse_duration(text) == float(sum(count * unit for count, unit, _, _ in parts))


@given(st.integers(0, 10**9))
def test_parse_duration_of_a_bare_number_is_seconds(seconds: int) -> None:
    assert parse_duration(str(seconds)) == float(seconds)


# ---- parse_bool ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["yes", "Yes", "TRUE", "true", "on", "ON", "1", "y", " yes "])
def test_parse_bool_true(text: str) -> None:
    assert parse_bool(text) is True


@pytest.mark.parametrize("text", ["no", "No", "FALSE", "false", "off", "0", "n", "\tno\n"])
def test_parse_bool_false(text: str) -> None:
    assert parse_bool(text) is False


@pytest.mark.parametrize("text", ["maybe", "", "2", "yess", "enabled"])
def test_parse_bool_rejects_other_words(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a boolean"):
        parse_bool(text)
