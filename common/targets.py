"""Which target addresses jobs may call (the SSRF deny list).

By default link-local and cloud-metadata addresses are refused; loopback stays
allowed so local use works, and can be refused by configuration.
``JOBSCHED_TARGET_DENY=private`` refuses everything that is not the public
internet (loopback, RFC 1918, CGNAT, unique-local, NAT64, link-local,
metadata): docker-compose.yml sets it. ``JOBSCHED_TARGET_ALLOW`` then names
the internal targets jobs may call anyway: networks, or host names. Workers
check every address a name resolves to before connecting (worker/client.py,
worker/guard.py); the API refuses a URL whose host is a denied literal IP.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

# Link-local (where cloud metadata services live) and the metadata addresses
# outside it (AWS IPv6, Alibaba).
DEFAULT_DENY = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
LOOPBACK = ("127.0.0.0/8", "::1/128")
# Everything that is not the public internet.
PRIVATE = DEFAULT_DENY + LOOPBACK + (
    "0.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",   # this host, RFC 1918
    "100.64.0.0/10",                                                 # CGNAT
    "192.0.0.0/24", "198.18.0.0/15",                                 # IETF, benchmarking
    "fc00::/7", "::/128", "64:ff9b::/96", "64:ff9b:1::/48")          # ULA, NAT64
PRESETS = {"private": PRIVATE}


@dataclass(frozen=True)
class DenyList:
    networks: tuple
    allowed_networks: tuple = ()
    allowed_names: frozenset = frozenset()   # host names that may resolve to anything

    @classmethod
    def build(cls, cidrs: tuple[str, ...], deny_loopback: bool,
              allow: tuple[str, ...] = ()) -> "DenyList":
        all_cidrs = tuple(cidrs) + (LOOPBACK if deny_loopback else ())
        networks, names = [], set()
        for entry in allow:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(entry.lower().rstrip("."))
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in all_cidrs),
                   tuple(networks), frozenset(names))

    def denies(self, address: str, host: str | None = None) -> bool:
        """Whether jobs may not call ``address`` (what ``host`` resolved to)."""
        if host is not None and host.lower().rstrip(".") in self.allowed_names:
            return False
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if any(ip.version == net.version and ip in net for net in self.allowed_networks):
            return False
        return any(ip.version == net.version and ip in net for net in self.networks)

    def denies_literal_host(self, url: str) -> bool:
        """True when the URL's host is an IP literal this list denies."""
        host = urlsplit(url).hostname or ""
        try:
            return self.denies(host)
        except ValueError:  # a name: checked at call time, after resolution
            return False
