"""Expand the tags of filter regexes into Python regular expressions.

Address tags (each becomes named groups the matcher reads back):

=========== =================================================================================
``<HOST>``  an IPv4 or IPv6 address (optionally in brackets, IPv4 optionally ``::ffff:``-mapped)
            or, unless ``usedns = no``, a host name
``<ADDR>``  an IPv4 or IPv6 address only
``<IP4>``   an IPv4 address;  ``<IP6>`` an IPv6 address;  ``<DNS>`` a host name
``<CIDR>``  a prefix length;  ``<SUBNET>`` an address with an optional ``/prefix``
=========== =================================================================================

Capture tags: ``<F-NAME>...</F-NAME>`` becomes the group ``name`` (lower case), with ``F-ID``
giving ``fid`` and ``F-PORT`` giving ``fport``; ``<F-ID/>`` and ``<F-PORT/>`` are shorthands for a
non-blank word. ``<F-ALT_NAME>`` (optionally numbered ``<F-ALT_NAME_2>``) fills ``name`` when the
main group did not match; ``<F-TUPLE_NAME>`` collects values into a tuple. ``<SKIPLINES>`` skips
lines in multi-line filters. Marker captures used by the matcher: ``F-MLFID``, ``F-NOFAIL``,
``F-MLFFORGET``, ``F-MLFGAINED``, ``F-CONTENT``.

The address patterns are deliberately loose (``\\d{1,3}`` per octet): they find the address in the
text, and :mod:`gardien.matching.addresses` then validates what was found.
"""

from __future__ import annotations

import re

__all__ = ["HOST_GROUPS", "expand_tags", "localise_flags"]

IP4 = r"(?:\d{1,3}\.){3}\d{1,3}"
IP6 = r"(?:[0-9a-fA-F]{1,4}:{1,2}|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)"
_G_IP4 = rf"(?:::f{{4,6}}:)?(?P<ip4>{IP4})"
_G_IP6 = rf"(?P<ip6>{IP6})"
_G_DNS = r"(?P<dns>[\w.^-]*\w)"
_G_CIDR = r"(?P<cidr>\d+)"
_G_ADDR = rf"\[?(?:{_G_IP4}|{_G_IP6})\]?"
_G_HOST = rf"(?:{_G_ADDR}|{_G_DNS})"
_G_SUBNET = rf"\[?(?:{_G_IP4}|{_G_IP6})(?:/{_G_CIDR})?\]?"

#: groups through which an address (or host name) is reported
HOST_GROUPS = ("ip4", "ip6", "dns")

_FIXED = {
    "ADDR": _G_ADDR,
    "IP4": _G_IP4,
    "IP6": _G_IP6,
    "DNS": _G_DNS,
    "CIDR": _G_CIDR,
    "SUBNET": _G_SUBNET,
    "F-ADDR/": _G_ADDR,
    "F-IP4/": _G_IP4,
    "F-IP6/": _G_IP6,
    "F-DNS/": _G_DNS,
    "F-CIDR/": _G_CIDR,
    "F-SUBNET/": _G_SUBNET,
    "F-ID/": r"(?P<fid>\S+)",
    "F-PORT/": r"(?P<fport>\w+)",
}
_RENAMED = {"id": "fid", "port": "fport"}
_TAG_RE = re.compile(r"</?[\w\-]+/?>")
_CAPTURE_RE = re.compile(r"^(/?)F-([A-Z0-9_\-]+)$")
# '((?i)' or '(?:(?i)' in the middle of a regex: Python needs the scoped form '(?i:'
_LOCAL_FLAGS_RE = re.compile(r"(?<!\\)\((?:\?:)?(\(\?[a-z]+)\)")


def group_name(tag: str) -> str:
    """The regex group name of capture tag ``F-TAG`` (without the ``F-``)."""
    lowered = tag.lower()
    return _RENAMED.get(lowered, lowered)


def expand_tags(pattern: str, *, usedns: str = "warn") -> str:
    """Return ``pattern`` with gardien/fail2ban tags replaced by regular-expression syntax."""
    opened: set[str] = set()
    skiplines = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal skiplines
        tag = match.group()
        name = tag[1:-1]
        if name == "HOST":
            return _G_ADDR if usedns == "no" else _G_HOST
        if name == "SKIPLINES":
            group = f"skiplines{skiplines}"
            skiplines += 1
            return rf"\n(?P<{group}>(?:(?:.*\n)*?))"
        fixed = _FIXED.get(name)
        if fixed is not None:
            return fixed
        capture = _CAPTURE_RE.match(name)
        if capture is None:
            return tag
        closing, label = capture.groups()
        if closing:
            return ")" if label in opened else tag
        opened.add(label)
        return f"(?P<{group_name(label)}>"

    return _TAG_RE.sub(replace, pattern)


def localise_flags(pattern: str) -> str:
    """Turn inline global flags placed inside a group into scoped flags (``(?i:``)."""
    return _LOCAL_FLAGS_RE.sub(r"\1:", pattern)
