"""Loading filter definitions (``filter.d/NAME.conf``) into :class:`FilterSpec` values."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gardien.clock import FakeClock
from gardien.config.filters import load_filter, load_filter_file
from gardien.errors import ConfigError, FilterError
from gardien.matching.filter import Filter
from gardien.settings import FilterSpec

COMMON = r"""
[DEFAULT]
_daemon = \S*
__prefix_line = \s*\S+ %(_daemon)s(?:\[\d+\])?:\s+

[Definition]
"""

SVC = r"""
[INCLUDES]
before = common.conf

[Init]
mode = normal
port = 22

[Definition]
_daemon = svcd
prefregex = ^%(__prefix_line)s<F-CONTENT>.+</F-CONTENT>$
mdre-normal = ^bad password from <HOST> port <port>$
mdre-extra = ^bad user <F-USER>\S+</F-USER> from <HOST>$
mdre-aggressive = <mdre-normal>
                  <mdre-extra>
failregex = <mdre-<mode>>
            ^root login refused from <HOST>$
ignoreregex =
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    write(tmp_path, "filter.d/common.conf", COMMON)
    write(tmp_path, "filter.d/svc.conf", SVC)
    return tmp_path


def patterns(spec: FilterSpec) -> list[str]:
    return [r.pattern for r in spec.failregex]


def hosts(spec: FilterSpec, lines: list[str]) -> list[str | None]:
    """What the compiled filter reports for each line (host, or None)."""
    matcher = Filter(spec).matcher(clock=FakeClock(1_795_255_201))
    out: list[str | None] = []
    for line in lines:
        failures = matcher.process(line).failures
        out.append(failures[0].host if failures else None)
    return out


def test_init_defaults_are_used_without_parameters(config_dir: Path) -> None:
    spec = load_filter("svc", config_dir, fallback_to_bundled=False)
    assert spec.name == "svc"
    assert patterns(spec) == [
        "^bad password from <HOST> port 22$",
        "^root login refused from <HOST>$",
    ]
    assert spec.prefregex is not None
    assert spec.prefregex.pattern == r"^\s*\S+ svcd(?:\[\d+\])?:\s+<F-CONTENT>.+</F-CONTENT>$"
    assert spec.parameters == {"mode": "normal", "port": "22"}
    assert spec.ignoreregex == ()
    assert [Path(f).name for f in spec.files] == ["common.conf", "svc.conf"]


def test_bracket_parameters_override_init(config_dir: Path) -> None:
    spec = load_filter("svc[port=2222]", config_dir, fallback_to_bundled=False)
    assert patterns(spec)[0] == "^bad password from <HOST> port 2222$"
    assert spec.parameters["port"] == "2222"
    assert hosts(
        spec,
        [
            "Nov 21 10:00:00 host svcd[12]: bad password from 192.0.2.1 port 2222",
            "Nov 21 10:00:00 host svcd[12]: bad password from 192.0.2.1 port 22",
        ],
    ) == ["192.0.2.1", None]


def test_keyword_parameters_override_bracket_ones(config_dir: Path) -> None:
    spec = load_filter(
        "svc[port=2222]", config_dir, parameters={"port": "2200"}, fallback_to_bundled=False
    )
    assert patterns(spec)[0] == "^bad password from <HOST> port 2200$"


def test_mode_parameter_selects_regexes_through_nested_tags(config_dir: Path) -> None:
    spec = load_filter("svc[mode=aggressive]", config_dir, fallback_to_bundled=False)
    assert patterns(spec) == [
        "^bad password from <HOST> port 22$",
        r"^bad user <F-USER>\S+</F-USER> from <HOST>$",
        "^root login refused from <HOST>$",
    ]
    lines = [
        "Nov 21 10:00:00 host svcd[12]: bad user admin from 192.0.2.7",
        "Nov 21 10:00:00 host svcd[12]: root login refused from 2001:db8::7",
        "Nov 21 10:00:00 host other[12]: root login refused from 192.0.2.8",
    ]
    assert hosts(spec, lines) == ["192.0.2.7", "2001:db8::7", None]
    normal = load_filter("svc", config_dir, fallback_to_bundled=False)
    assert hosts(normal, lines) == [None, "2001:db8::7", None]


def test_extension_with_known_failregex_in_local(config_dir: Path) -> None:
    write(
        config_dir,
        "filter.d/svc.local",
        r"""
        [Definition]
        failregex = %(known/failregex)s
                    ^extra failure from <HOST>$
        """,
    )
    spec = load_filter("svc", config_dir, fallback_to_bundled=False)
    assert patterns(spec) == [
        "^bad password from <HOST> port 22$",
        "^root login refused from <HOST>$",
        "^extra failure from <HOST>$",
    ]
    assert spec.failregex[2].path == str(config_dir / "filter.d/svc.local")
    assert spec.failregex[2].line == 3
    assert [Path(f).name for f in spec.files] == ["common.conf", "svc.conf", "svc.local"]


def test_local_can_override_init_defaults(config_dir: Path) -> None:
    write(config_dir, "filter.d/svc.local", "[Init]\nport = 8022\n")
    spec = load_filter("svc", config_dir, fallback_to_bundled=False)
    assert patterns(spec)[0] == "^bad password from <HOST> port 8022$"


def test_before_include_provides_defaults_the_filter_overrides(config_dir: Path) -> None:
    write(
        config_dir,
        "filter.d/plain.conf",
        r"""
        [INCLUDES]
        before = common.conf
        [Definition]
        failregex = ^%(__prefix_line)sfailure from <HOST>$
        """,
    )
    spec = load_filter("plain", config_dir, fallback_to_bundled=False)
    # _daemon comes from common.conf's [DEFAULT] since the filter does not set it
    assert patterns(spec) == [r"^\s*\S+ \S*(?:\[\d+\])?:\s+failure from <HOST>$"]
    assert hosts(spec, ["Nov 21 10:00:00 host anyd[1]: failure from 192.0.2.9"]) == ["192.0.2.9"]


def test_load_filter_file_reads_its_local_and_includes(config_dir: Path) -> None:
    write(config_dir, "filter.d/svc.local", "[Init]\nmode = aggressive\n")
    spec = load_filter_file(config_dir / "filter.d/svc.conf", parameters={"port": "1"})
    assert patterns(spec)[:2] == [
        "^bad password from <HOST> port 1$",
        r"^bad user <F-USER>\S+</F-USER> from <HOST>$",
    ]
    assert [Path(f).name for f in spec.files] == ["common.conf", "svc.conf", "svc.local"]


def test_other_definition_options(tmp_path: Path) -> None:
    write(
        tmp_path,
        "filter.d/o.conf",
        r"""
        [Definition]
        failregex = ^x <HOST>$
        ignoreregex = ^x 192\.0\.2\.1$
                      ^x 10\.
        datepattern = {^LN-BEG}%%Y-%%m-%%d %%H:%%M:%%S
        maxlines = 3
        usedns = No
        journalmatch = _SYSTEMD_UNIT=o.service
                       _COMM=o
        """,
    )
    spec = load_filter("o", tmp_path, fallback_to_bundled=False)
    assert [r.pattern for r in spec.ignoreregex] == [r"^x 192\.0\.2\.1$", r"^x 10\."]
    assert spec.datepattern == "{^LN-BEG}%Y-%m-%d %H:%M:%S"
    assert spec.maxlines == 3
    assert spec.usedns == "no"
    assert spec.journalmatch == ("_SYSTEMD_UNIT=o.service", "_COMM=o")


def test_regex_line_numbers_in_a_multi_line_failregex(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "filter.d/lines.conf",
        r"""
        [Definition]
        # the regexes
        failregex = ^a <HOST>$
                    ^b <HOST>$
        # a comment inside the value
                    ^c <HOST>$

                    ^d <HOST>$
        ignoreregex = ^e$
        """,
    )
    spec = load_filter("lines", tmp_path, fallback_to_bundled=False)
    assert [(r.pattern, r.line) for r in spec.failregex] == [
        ("^a <HOST>$", 3),
        ("^b <HOST>$", 4),
        ("^c <HOST>$", 6),
        ("^d <HOST>$", 8),
    ]
    assert {r.path for r in spec.failregex} == {str(path)}
    assert [(r.pattern, r.line) for r in spec.ignoreregex] == [("^e$", 9)]


def test_regex_line_numbers_when_the_value_starts_on_the_next_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        "filter.d/lines.conf",
        "[Definition]\nfailregex =\n    ^a <HOST>$\n    ^b <HOST>$\n",
    )
    spec = load_filter("lines", tmp_path, fallback_to_bundled=False)
    assert [(r.pattern, r.line) for r in spec.failregex] == [
        ("^a <HOST>$", 3),
        ("^b <HOST>$", 4),
    ]


def test_regex_line_numbers_survive_interpolation(tmp_path: Path) -> None:
    write(
        tmp_path,
        "filter.d/lines.conf",
        r"""
        [Init]
        port = 22
        [Definition]
        _daemon = sshd
        failregex = ^a <HOST>$
                    ^b <HOST> %(_daemon)s$
                    ^c <HOST> port <port>$
        """,
    )
    spec = load_filter("lines", tmp_path, fallback_to_bundled=False)
    assert [(r.pattern, r.line) for r in spec.failregex] == [
        ("^a <HOST>$", 5),
        ("^b <HOST> sshd$", 6),
        ("^c <HOST> port 22$", 7),
    ]


# ---- errors ----------------------------------------------------------------------------------


def test_missing_filter_names_the_directories(tmp_path: Path) -> None:
    (tmp_path / "filter.d").mkdir()
    with pytest.raises(ConfigError) as caught:
        load_filter("nosuch", tmp_path, fallback_to_bundled=False)
    message = str(caught.value)
    assert "'nosuch'" in message
    assert str(tmp_path / "filter.d") in message
    with pytest.raises(ConfigError) as caught:
        load_filter("nosuch", tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "filter.d") in message
    assert str(Path("gardien") / "data" / "filter.d") in message


def test_missing_filter_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such filter file") as caught:
        load_filter_file(tmp_path / "absent.conf")
    assert str(tmp_path / "absent.conf") in str(caught.value)


def test_filter_without_definition(tmp_path: Path) -> None:
    path = write(tmp_path, "filter.d/nodef.conf", "[Init]\nmode = x\n")
    with pytest.raises(ConfigError, match=r"no \[Definition\] section") as caught:
        load_filter("nodef", tmp_path, fallback_to_bundled=False)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        ("maxlines = x", "maxlines must be a whole number, got 'x'"),
        ("maxlines = 0", "maxlines must be 1 or more"),
        ("usedns = maybe", "usedns must be one of yes, warn, no, raw, got 'maybe'"),
    ],
)
def test_bad_option_values_name_file_and_line(tmp_path: Path, option: str, fragment: str) -> None:
    path = write(
        tmp_path, "filter.d/bad.conf", f"[Definition]\nfailregex = ^x <HOST>$\n\n{option}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_filter("bad", tmp_path, fallback_to_bundled=False)
    message = str(caught.value)
    assert message.startswith(f"{path}:4: ")
    assert fragment in message


def test_missing_interpolation_names_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "filter.d/bad.conf",
        "[Definition]\n\nfailregex = ^x <HOST>$\n    ^y %(nowhere)s <HOST>$\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_filter("bad", tmp_path, fallback_to_bundled=False)
    # the option's line, or the very line of the reference
    assert str(caught.value).startswith((f"{path}:3: ", f"{path}:4: "))
    assert "%(nowhere)s" in str(caught.value)


def test_regex_that_does_not_compile_names_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "filter.d/badre.conf",
        r"""
        [Definition]
        failregex = ^ok <HOST>$

                    ^bad (<HOST>$
        """,
    )
    spec = load_filter("badre", tmp_path, fallback_to_bundled=False)
    with pytest.raises(FilterError) as caught:
        Filter(spec)
    message = str(caught.value)
    assert f"{path}:4:" in message
    assert "^bad (<HOST>$" in message


def test_regex_without_host_names_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "filter.d/nohost.conf",
        r"""
        [Definition]
        failregex = ^ok <HOST>$
                    ^user <F-USER>\S+</F-USER> failed$
        """,
    )
    spec = load_filter("nohost", tmp_path, fallback_to_bundled=False)
    with pytest.raises(FilterError) as caught:
        Filter(spec)
    message = str(caught.value)
    assert f"{path}:3:" in message
    assert "<HOST>" in message


def test_ignoreregex_that_does_not_compile_names_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "filter.d/badign.conf",
        r"""
        [Definition]
        failregex = ^ok <HOST>$
        ignoreregex = ^fine$
                      ^broken[$
        """,
    )
    with pytest.raises(FilterError) as caught:
        Filter(load_filter("badign", tmp_path, fallback_to_bundled=False))
    assert f"{path}:4:" in str(caught.value)


def test_filter_without_failregex(tmp_path: Path) -> None:
    write(tmp_path, "filter.d/empty.conf", "[Definition]\nfailregex =\n")
    spec = load_filter("empty", tmp_path, fallback_to_bundled=False)
    assert spec.failregex == ()
    with pytest.raises(FilterError, match="has no failregex"):
        Filter(spec)


def test_fail2ban_filters_load() -> None:
    """The installed fail2ban configuration (includes, modes, known/) loads and compiles."""
    if not Path("/etc/fail2ban/filter.d/sshd.conf").is_file():
        pytest.skip("fail2ban is not installed")
    for mode in ("normal", "ddos", "extra", "aggressive"):
        spec = load_filter(f"sshd[mode={mode}]", "/etc/fail2ban", fallback_to_bundled=False)
        compiled = Filter(spec)
        assert compiled.failregex
        assert all(r.path and r.path.startswith("/etc/fail2ban/filter.d/") for r in spec.failregex)
    normal = load_filter("sshd", "/etc/fail2ban", fallback_to_bundled=False)
    aggressive = load_filter("sshd[mode=aggressive]", "/etc/fail2ban", fallback_to_bundled=False)
    assert len(aggressive.failregex) > len(normal.failregex)


@pytest.mark.parametrize("name", ["postfix", "sshd"])
def test_a_mode_the_filter_lacks_is_named_with_the_modes_it_has(name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_filter(name, None, parameters={"mode": "bogus"})
    message = str(caught.value)
    assert f"filter {name!r} has no mode 'bogus' (its modes: " in message
    assert "aggressive" in message and "normal" in message
    assert f"filter.d/{name}.conf:" in message
    assert "<HOST>" not in message  # not the misleading complaint about the expansion
