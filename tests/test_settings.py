"""Settings are declared once (common/settings.py): the environment is read
from the declaration, and docs/operations.md's table and .env.example are
printed from it (common/settings_docs.py)."""
import re
from pathlib import Path

import pytest

from common.errors import ConfigError
from common.settings import Settings
from common.settings_docs import env_example, settings_table

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
TABLE = re.compile(r"<!-- settings: [^\n]*-->\n(.*?)<!-- end of settings -->", re.S)


def test_the_docs_table_is_the_declaration():
    (shown,) = TABLE.findall(OPERATIONS.read_text())
    assert shown == settings_table(), \
        "run: python -m common.settings_docs table, paste into docs/operations.md"


def test_env_example_is_the_declaration():
    assert (ROOT / ".env.example").read_text() == env_example(), \
        "run: python -m common.settings_docs env-example > .env.example"


def test_every_setting_is_read_from_its_variable():
    from dataclasses import fields
    names = [f.metadata["env"] for f in fields(Settings)]
    assert len(names) == len(set(names)) and all(n.startswith("JOBSCHED_") for n in names)
    env = {"JOBSCHED_API_PORT": "9000", "JOBSCHED_AUTH": "NONE", "JOBSCHED_LOG_LEVEL": "debug",
           "JOBSCHED_TARGET_DENY_LOOPBACK": "yes", "JOBSCHED_TARGET_ALLOW": "demo-target",
           "JOBSCHED_WORKER_ID": "w-7", "JOBSCHED_API_TOKEN": "s3cret-token", "JOBSCHED_RETENTION_DAYS": "0"}
    s = Settings.from_env(env)
    assert (s.api_port, s.auth, s.log_level, s.target_deny_loopback, s.target_allow,
            s.worker_id, s.api_token, s.retention_days) == (
        9000, "none", "DEBUG", True, ("demo-target",), "w-7", "s3cret-token", 0)
    assert Settings.from_env({}).api_token is None
    assert "s3cret-token" not in repr(s)   # secrets never reach logs


@pytest.mark.parametrize("name, value", [("JOBSCHED_API_PORT", "0"),
                                         ("JOBSCHED_LEADER_LEASE_MS", "499"),
                                         ("JOBSCHED_WORKER_CONCURRENCY", "many"),
                                         ("JOBSCHED_TARGET_DENY_LOOPBACK", "perhaps"),
                                         ("JOBSCHED_TARGET_DENY", "not-a-network"),
                                         ("JOBSCHED_WORKER_ID", "host#1"),
                                         ("JOBSCHED_SHARDS", "0"),
                                         ("JOBSCHED_SHARDS", "1025")])
def test_a_bad_value_names_its_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
