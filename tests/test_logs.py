"""Secrets never reach logs."""
from common.logs import redact_url, target_for_log


def test_target_urls_are_logged_without_path_query_or_credentials():
    url = "https://user:pw@hooks.example.test:8443/services/T0/B0/SECRET?token=abc"
    logged = target_for_log(url)
    assert logged == "https://hooks.example.test:8443/…"
    assert "SECRET" not in logged and "pw" not in logged and "abc" not in logged


def test_database_password_is_redacted():
    assert redact_url("mysql+pymysql://app:hunter2@db:3306/jobsched") == \
        "mysql+pymysql://app:***@db:3306/jobsched"


def test_json_format_writes_one_object_per_line_with_the_attempt_fields(capsys):
    import json
    import logging

    from common.logs import configure
    configure("INFO", "worker", "json")
    try:
        logging.getLogger("worker.report").info(
            "job=%s status=%s", "j1", "FAILED",
            extra={"fields": {"job": "j1", "execution": "j1:1000", "attempt": 2,
                              "status": "FAILED", "latenessMs": 3, "durationMs": 40}})
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        configure("WARNING", "tests")
    entry = json.loads(line)
    assert entry["message"] == "job=j1 status=FAILED"
    assert (entry["process"], entry["level"], entry["execution"], entry["latenessMs"]) == \
        ("worker", "INFO", "j1:1000", 3)
    assert entry["ts"].endswith("Z")


def test_settings_refuse_an_unknown_log_format():
    import pytest

    from common.errors import ConfigError
    from common.settings import Settings
    with pytest.raises(ConfigError):
        Settings.from_env({"JOBSCHED_LOG_FORMAT": "xml"})
