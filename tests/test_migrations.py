"""Migrations create exactly the schema the models describe, on both backends."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from common.models import Base


def test_migrated_schema_matches_the_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_history_queries_have_their_indexes(engine):
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("executions")}
    assert indexes["ix_executions_job_scheduled"] == ["job_id", "scheduled_at_ms"]
    assert indexes["ix_executions_status_id"] == ["status", "id"]
