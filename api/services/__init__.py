"""Use cases of the API. Each write follows one order: commit the database
first, then update Redis. If Redis fails after the commit, the job is safe in
the database and the dispatcher's reconciler brings Redis in line."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import sessionmaker

from common.errors import DependencyUnavailable
from common.redis_api import ApiShards
from common.settings import Settings


@dataclass
class Services:
    settings: Settings
    sessions: sessionmaker
    store: ApiShards

    @contextmanager
    def unit_of_work(self):
        """One database transaction; driver outages become a 503 error."""
        try:
            with self.sessions() as session, session.begin():
                yield session
        except (OperationalError, InterfaceError) as e:
            raise DependencyUnavailable("database unavailable") from e
