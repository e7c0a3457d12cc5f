"""Which target addresses jobs may call (the SSRF deny list).

By default link-local and cloud-metadata addresses are refused; loopback stays
allowed so local use works, and can be refused by configuration. The worker
checks the address it actually connected to, after DNS resolution
(worker/guard.py); the API refuses a URL whose host is a denied literal IP.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

# Link-local (where cloud metadata services live) and the metadata addresses
# outside it (AWS IPv6, Alibaba).
DEFAULT_DENY = ("169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32")
LOOPBACK = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True)
class DenyList:
    networks: tuple

    @classmethod
    def build(cls, cidrs: tuple[str, ...], deny_loopback: bool) -> "DenyList":
        all_cidrs = tuple(cidrs) + (LOOPBACK if deny_loopback else ())
        return cls(tuple(ipaddress.ip_network(c, strict=False) for c in all_cidrs))

    def denies(self, address: str) -> bool:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip.version == net.version and ip in net for net in self.networks)

    def denies_literal_host(self, url: str) -> bool:
        """True when the URL's host is an IP literal this list denies."""
        host = urlsplit(url).hostname or ""
        try:
            return self.denies(host)
        except ValueError:  # a name: checked at call time, after resolution
            return False
