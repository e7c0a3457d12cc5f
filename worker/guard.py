"""HTTP connections that refuse denied target addresses.

The check runs on the socket's peer address once connected, so it applies to
the address DNS actually gave for this call (no resolve-then-connect gap).
"""
from __future__ import annotations

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError

from common.targets import DenyList


def guarded_adapter(deny: DenyList, pool_size: int) -> HTTPAdapter:
    def check(connection, sock):
        address = sock.getpeername()[0]
        if deny.denies(address):
            sock.close()
            raise NewConnectionError(
                connection, f"target address {address} is denied (JOBSCHED_TARGET_DENY)")

    class GuardedHTTPConnection(HTTPConnection):
        def _new_conn(self):
            sock = super()._new_conn()
            check(self, sock)
            return sock

    class GuardedHTTPSConnection(HTTPSConnection):
        def _new_conn(self):
            sock = super()._new_conn()
            check(self, sock)
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
