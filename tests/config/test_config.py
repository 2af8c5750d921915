"""The INI dialect of fail2ban configuration files and the reader that merges them."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from gardien.config.ini import parse_ini
from gardien.config.reader import ConfigSet, resource_files
from gardien.errors import ConfigError


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def section(text: str, name: str = "S") -> dict[str, str]:
    """The values of section ``name`` of an INI text."""
    ini = parse_ini(textwrap.dedent(text).lstrip("\n"), "test.conf")
    return {key: located.value for key, located in ini.sections[name].items()}


# ---- the INI dialect ------------------------------------------------------------------------


def test_continuation_lines_make_one_value_with_its_file_lines() -> None:
    ini = parse_ini(
        "[Definition]\n"
        "failregex = ^one <HOST>$\n"
        "            ^two <HOST>$\n"
        "  ^three <HOST>$\n"
        "ignoreregex = x\n",
        "f.conf",
    )
    located = ini.sections["Definition"]["failregex"]
    assert located.value == "^one <HOST>$\n^two <HOST>$\n^three <HOST>$"
    assert located.line == 2
    assert located.line_numbers == (2, 3, 4)
    assert located.where == "f.conf:2"
    assert ini.sections["Definition"]["ignoreregex"].value == "x"


def test_blank_lines_inside_a_value_are_kept_and_trailing_ones_dropped() -> None:
    values = section(
        """
        [S]
        a = first

            second


        b = after
        """
    )
    assert values == {"a": "first\n\nsecond", "b": "after"}


def test_comment_lines_are_skipped_even_inside_a_multi_line_value() -> None:
    ini = parse_ini(
        "# leading comment\n"
        "; another\n"
        "[S]\n"
        "a = one\n"
        "    # an indented comment inside the value\n"
        "    two\n"
        "      ; and another\n"
        "    three\n"
        "# a comment between options\n"
        "b = 2\n",
        "c.conf",
    )
    a = ini.sections["S"]["a"]
    assert a.value == "one\ntwo\nthree"
    assert a.line_numbers == (4, 6, 8)
    assert ini.sections["S"]["b"].value == "2"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("x = value ; a comment", "value"),
        ("x = value\t; a comment after a tab", "value"),
        ("x = a;b", "a;b"),  # ';' not preceded by white space is part of the value
        ("x = a # b", "a # b"),  # only ';' starts an inline comment
        ("x = http://example.com/#frag", "http://example.com/#frag"),
    ],
)
def test_inline_comments(line: str, expected: str) -> None:
    assert section(f"[S]\n{line}\n")["x"] == expected


def test_colon_separates_name_and_value_too() -> None:
    values = section(
        """
        [S]
        key: value
        other : a = b
        url = http://example.com:8080/
        """
    )
    assert values == {"key": "value", "other": "a = b", "url": "http://example.com:8080/"}


def test_option_names_are_case_folded_but_section_names_are_not(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.conf",
        """
        [Definition]
        FailRegex = ^x <HOST>$
        MaxLines: 2
        """,
    )
    config = ConfigSet.read_resource(tmp_path, "x")
    assert config.options("Definition") == ["failregex", "maxlines"]
    assert config.get("Definition", "FAILREGEX") == "^x <HOST>$"
    assert config.get("Definition", "maxlines") == "2"
    assert not config.has_section("definition")
    assert config.get("definition", "failregex") is None


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("[S]\na = 1\nthis is not an option\n", 3, "this is not an option"),
        ("# comment\n\nx = 1\n[S]\n", 3, "before any [section]"),
        ("[S]\nx = 1\ny = 2\nX = 3\n", 4, "given twice"),
        ("[A]\nx = 1\n[B]\ny = 2\n[A]\nz = 3\n", 5, "[A] is given twice"),
        ("[S]\n = value\n", 2, "cannot read"),
    ],
    ids=["not-an-option", "option-before-section", "option-twice", "section-twice", "no-name"],
)
def test_syntax_errors_name_file_and_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = tmp_path / "bad.conf"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        ConfigSet.read_resource(tmp_path, "bad")
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: ")
    assert fragment in message
    assert caught.value.line == line


def test_a_syntax_error_in_a_local_file_names_that_file(tmp_path: Path) -> None:
    write(tmp_path, "jail.conf", "[S]\nx = 1\n")
    local = write(tmp_path, "jail.local", "[S]\n\n\nbroken\n")
    with pytest.raises(ConfigError, match=rf"^{local}:4: "):
        ConfigSet.read_resource(tmp_path, "jail")


def test_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "x.conf"
    path.write_bytes(b"[S]\nx = caf\xe9\n")
    with pytest.raises(ConfigError, match="UTF-8") as caught:
        ConfigSet.read_resource(tmp_path, "x")
    assert str(path) in str(caught.value)


def test_missing_resource_reads_as_empty(tmp_path: Path) -> None:
    config = ConfigSet.read_resource(tmp_path, "jail")
    assert config.files == []
    assert not config.has_section("sshd")


# ---- [DEFAULT], includes, .local and .d/ -----------------------------------------------------


def test_default_section_is_seen_from_every_section(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.conf",
        """
        [DEFAULT]
        bantime = 10m
        port = ssh
        [a]
        enabled = true
        [b]
        port = 2222
        """,
    )
    config = ConfigSet.read_resource(tmp_path, "x")
    assert config.get("a", "bantime") == "10m"
    assert config.get("a", "port") == "ssh"
    assert config.get("b", "port") == "2222"
    assert config.get("b", "default/port") == "ssh"
    assert config.options("a") == ["enabled"]
    assert config.options("a", with_defaults=True) == ["enabled", "bantime", "port"]
    assert not config.has_section("DEFAULT")


def test_includes_before_are_overridden_and_after_override(tmp_path: Path) -> None:
    write(
        tmp_path,
        "common.conf",
        """
        [Definition]
        a = from-before
        b = from-before
        only_before = yes
        """,
    )
    write(
        tmp_path,
        "last.conf",
        """
        [Definition]
        b = from-after
        """,
    )
    write(
        tmp_path,
        "x.conf",
        """
        [INCLUDES]
        before = common.conf
        after = last.conf
        [Definition]
        a = from-file
        b = from-file
        """,
    )
    config = ConfigSet.read_resource(tmp_path, "x")
    assert [Path(f).name for f in config.files] == ["common.conf", "x.conf", "last.conf"]
    assert config.get("Definition", "a") == "from-file"
    assert config.get("Definition", "b") == "from-after"
    assert config.get("Definition", "only_before") == "yes"


def test_several_includes_in_order_and_an_include_loop_terminates(tmp_path: Path) -> None:
    write(tmp_path, "one.conf", "[S]\nv = one\nfirst = one\n")
    write(tmp_path, "two.conf", "[INCLUDES]\nbefore = x.conf\n[S]\nv = two\n")
    write(
        tmp_path,
        "x.conf",
        """
        [INCLUDES]
        before = one.conf
                 two.conf
        [S]
        mine = x
        """,
    )
    config = ConfigSet.read_resource(tmp_path, "x")
    assert [Path(f).name for f in config.files] == ["one.conf", "two.conf", "x.conf"]
    assert config.get("S", "v") == "two"
    assert config.get("S", "first") == "one"
    assert config.get("S", "mine") == "x"


def test_local_is_read_after_conf_and_overrides_it(tmp_path: Path) -> None:
    write(tmp_path, "x.conf", "[S]\na = conf\nb = conf\n")
    write(tmp_path, "x.local", "[S]\na = local\nc = local\n")
    config = ConfigSet.read_resource(tmp_path, "x")
    assert [Path(f).name for f in config.files] == ["x.conf", "x.local"]
    assert config.get("S", "a") == "local"
    assert config.get("S", "b") == "conf"
    assert config.get("S", "c") == "local"


def test_an_included_file_brings_its_own_local_right_after_itself(tmp_path: Path) -> None:
    write(tmp_path, "common.conf", "[S]\nx = common\ny = common\nz = common\n")
    write(tmp_path, "common.local", "[S]\nx = common-local\ny = common-local\n")
    write(tmp_path, "x.conf", "[INCLUDES]\nbefore = common.conf\n[S]\nx = x\n")
    config = ConfigSet.read_resource(tmp_path, "x")
    assert [Path(f).name for f in config.files] == ["common.conf", "common.local", "x.conf"]
    assert config.get("S", "x") == "x"
    assert config.get("S", "y") == "common-local"
    assert config.get("S", "z") == "common"


def test_drop_in_directory_order(tmp_path: Path) -> None:
    write(tmp_path, "jail.conf", "[sshd]\nv = jail.conf\nfrom_conf = yes\n")
    write(tmp_path, "jail.d/b.conf", "[sshd]\nv = b.conf\n")
    write(tmp_path, "jail.d/a.conf", "[sshd]\nv = a.conf\n[a-only]\nx = 1\n")
    write(tmp_path, "jail.local", "[sshd]\nv = jail.local\n")
    write(tmp_path, "jail.d/a.local", "[sshd]\nv = a.local\n")
    write(tmp_path, "jail.d/ignored.txt", "[sshd]\nv = never\n")
    expected = ["jail.conf", "jail.d/a.conf", "jail.d/b.conf", "jail.local", "jail.d/a.local"]
    assert [
        str(Path(f).relative_to(tmp_path)) for f in resource_files(tmp_path, "jail")
    ] == expected
    config = ConfigSet.read_resource(tmp_path, "jail")
    assert [str(Path(f).relative_to(tmp_path)) for f in config.files] == expected
    assert config.get("sshd", "v") == "a.local"
    assert config.get("sshd", "from_conf") == "yes"
    assert config.get("a-only", "x") == "1"


def test_drop_in_conf_is_overridden_by_main_local(tmp_path: Path) -> None:
    write(tmp_path, "jail.conf", "[sshd]\nv = jail.conf\n")
    write(tmp_path, "jail.d/z.conf", "[sshd]\nv = z.conf\n")
    write(tmp_path, "jail.local", "[sshd]\nv = jail.local\n")
    assert ConfigSet.read_resource(tmp_path, "jail").get("sshd", "v") == "jail.local"


# ---- interpolation ---------------------------------------------------------------------------


def test_interpolation_of_own_default_and_special_names(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.conf",
        """
        [DEFAULT]
        logdir = /var/log
        [sshd]
        port = 22
        logpath = %(logdir)s/auth.log
        ports = %(PORT)s,2222
        name = jail-%(__name__)s
        percent = 100%%
        nested = [%(logpath)s]
        """,
    )
    config = ConfigSet.read_resource(tmp_path, "x")
    assert config.get("sshd", "logpath") == "/var/log/auth.log"
    assert config.get("sshd", "ports") == "22,2222"
    assert config.get("sshd", "name") == "jail-sshd"
    assert config.get("sshd", "percent") == "100%"
    assert config.get("sshd", "nested") == "[/var/log/auth.log]"


def test_default_values_interpolate_in_the_context_of_the_section(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.conf",
        """
        [DEFAULT]
        action = ban[name=%(__name__)s, port="%(port)s"]
        port = 0
        [sshd]
        port = ssh
        [other]
        enabled = true
        """,
    )
    config = ConfigSet.read_resource(tmp_path, "x")
    assert config.get("sshd", "action") == 'ban[name=sshd, port="ssh"]'
    assert config.get("other", "action") == 'ban[name=other, port="0"]'


def test_variables_take_precedence(tmp_path: Path) -> None:
    write(tmp_path, "x.conf", "[S]\nport = 22\nline = port %(port)s\n")
    config = ConfigSet.read_resource(tmp_path, "x")
    assert config.get("S", "line", {"PORT": "2222"}) == "port 2222"
    assert config.get("S", "line") == "port 22"


def test_known_gives_the_value_before_a_local_override(tmp_path: Path) -> None:
    write(
        tmp_path,
        "filter.conf",
        """
        [Definition]
        failregex = ^one <HOST>$
                    ^two <HOST>$
        """,
    )
    write(
        tmp_path,
        "filter.local",
        """
        [Definition]
        failregex = %(known/failregex)s
                    ^three <HOST>$
        """,
    )
    config = ConfigSet.read_resource(tmp_path, "filter")
    assert config.get("Definition", "failregex") == "^one <HOST>$\n^two <HOST>$\n^three <HOST>$"
    assert config.get("Definition", "known/failregex") == "^one <HOST>$\n^two <HOST>$"


def test_section_slash_option_reads_another_section(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.conf",
        """
        [A]
        name = a
        port = 22
        label = %(name)s:%(port)s
        [B]
        name = b
        port = %(A/port)s
        label = %(A/label)s
        """,
    )
    config = ConfigSet.read_resource(tmp_path, "x")
    assert config.get("B", "port") == "22"
    # as in fail2ban, the raw value is taken and expanded where it is used...
    assert config.get("B", "label") == "b:22"
    # ...while asking for 'section/option' directly expands it in its own section
    assert config.get("B", "A/label") == "a:22"
    assert config.get("B", "A/name") == "a"


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("%(nope)s", "%(nope)s refers to an option that is not defined"),
        ("%(Other/x)s", "%(Other/x)s refers to an option that is not defined"),
        ("5% off", "'%' must be followed by '%' or '(name)s'"),
        ("%(name)d", "'%' must be followed by '%' or '(name)s'"),
        ("%()s", "'%' must be followed by '%' or '(name)s'"),
    ],
)
def test_bad_references_name_file_and_line(tmp_path: Path, value: str, fragment: str) -> None:
    write(tmp_path, "x.conf", "[S]\nname = x\nok = 1\n")
    local = write(tmp_path, "x.local", f"[S]\n# comment\n\nbad = {value}\n")
    config = ConfigSet.read_resource(tmp_path, "x")
    assert config.get("S", "ok") == "1"
    with pytest.raises(ConfigError) as caught:
        config.get("S", "bad")
    message = str(caught.value)
    assert message.startswith(f"{local}:4: ")
    assert fragment in message


@pytest.mark.parametrize(
    "options",
    [
        "a = %(b)s\nb = %(a)s\n",
        "a = x %(a)s\n",
        "a = %(b)s%(b)s%(b)s%(b)s%(b)s%(b)s\nb = %(a)s%(a)s%(a)s%(a)s%(a)s%(a)s\n",
    ],
    ids=["two-options", "self", "fan-out"],
)
def test_interpolation_loop_is_an_error_not_a_hang(tmp_path: Path, options: str) -> None:
    path = write(tmp_path, "x.conf", "[S]\n" + options)
    config = ConfigSet.read_resource(tmp_path, "x")
    started = time.perf_counter()
    with pytest.raises(ConfigError) as caught:
        config.get("S", "a")
    assert time.perf_counter() - started < 2
    assert str(caught.value).startswith(f"{path}:2: ")


def test_conditional_sections(tmp_path: Path) -> None:
    write(
        tmp_path,
        "x.conf",
        """
        [Init]
        chain = INPUT
        blocktype = REJECT
        [Init?family=inet6]
        blocktype = DROP
        extra = v6
        """,
    )
    ini = parse_ini((tmp_path / "x.conf").read_text(), "x.conf")
    assert list(ini.sections) == ["Init"]
    assert ini.sections["Init"]["blocktype?family=inet6"].value == "DROP"
    assert ini.sections["Init"]["blocktype?family=inet6"].line == 5
    config = ConfigSet.read_resource(tmp_path, "x")
    assert config.get("Init", "blocktype") == "REJECT"
    assert config.get("Init", "blocktype?family=inet6") == "DROP"
    assert config.get("Init", "extra?family=inet6") == "v6"
    assert config.get("Init", "extra") is None


def test_conditional_section_duplicate_option_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"^c\.conf:3: "):
        parse_ini("[Init?family=inet6]\nx = 1\nx = 2\n", "c.conf")
