"""HTTP connections (of the alert webhooks) that refuse denied target
addresses, and the requests session built on them.

The name is resolved and each address checked before connecting, so a denied
address is never connected to (whether its port is open or not, the error is
the same); the socket's peer address is checked again once connected, so a
name whose answer changed in between is caught too.
"""
from __future__ import annotations

import socket
from http.cookiejar import DefaultCookiePolicy

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from common.targets import DenyList


NOT_ALLOWED = "target address not allowed"


def guarded_adapter(deny: DenyList, pool_size: int) -> HTTPAdapter:
    def check_before(connection):
        try:
            infos = socket.getaddrinfo(connection._dns_host, connection.port,
                                       type=socket.SOCK_STREAM)
        except OSError:
            return   # the connect itself reports it
        if infos and all(deny.denies(info[4][0], connection.host) for info in infos):
            raise NewConnectionError(connection, NOT_ALLOWED)

    def check_after(connection, sock):
        if deny.denies(sock.getpeername()[0], connection.host):
            sock.close()
            raise NewConnectionError(connection, NOT_ALLOWED)

    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self):
            check_before(self)
            sock = super()._new_conn()
            check_after(self, sock)
            return sock

    class GuardedHTTPSConnection(HTTPSConnection):
        def _new_conn(self):
            check_before(self)
            sock = super()._new_conn()
            check_after(self, sock)
            return sock

    class GuardedHTTPPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": GuardedHTTPPool,
                                                       "https": GuardedHTTPSPool}

    return GuardedAdapter(pool_connections=64, pool_maxsize=pool_size, max_retries=0)


def make_session(pool_size: int, deny: DenyList) -> requests.Session:
    session = requests.Session()
    adapter = guarded_adapter(deny, pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # Cookies from one job's target must never reach another job's target.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    session.trust_env = False
    return session
