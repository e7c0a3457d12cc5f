"""Alembic environment: the URL comes from the Config built by migrations.upgrade
(or from JOBSCHED_DATABASE_URL when alembic is run by hand)."""
from __future__ import annotations

import os

from alembic import context

from common.db import make_engine
from common.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url") or os.environ.get(
    "JOBSCHED_DATABASE_URL", "sqlite:///data/jobsched.db")


def run_offline() -> None:
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata,
                          render_as_batch=url.startswith("sqlite"))
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
