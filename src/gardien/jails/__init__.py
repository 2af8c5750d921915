"""Jails: which failures lead to bans, and for how long. Pure logic: no I/O, injected time.

- :class:`Jail` counts failures per address within ``findtime`` and decides bans and unbans;
- :class:`IgnoreList` holds ``ignoreip`` and ``ignoreself``;
- :class:`BanTimePolicy` computes ``bantime`` and ``bantime.increment``.
"""

from gardien.jails.ignore import IgnoreList, OwnAddresses, Resolver, normalize_address
from gardien.jails.jail import BanHistory, Jail, JailError, JailStatus
from gardien.jails.timing import BanTimePolicy, RandomSource

__all__ = [
    "BanHistory",
    "BanTimePolicy",
    "IgnoreList",
    "Jail",
    "JailError",
    "JailStatus",
    "OwnAddresses",
    "RandomSource",
    "Resolver",
    "normalize_address",
]
