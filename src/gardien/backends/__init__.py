"""Firewall backends behind one small protocol: nftables (default), ipset with iptables,
plain iptables, and an in-memory double."""

from gardien.backends.base import CHAINS, BlockSpec, Firewall
from gardien.backends.memory import MemoryFirewall

__all__ = ["CHAINS", "BlockSpec", "Firewall", "MemoryFirewall"]
