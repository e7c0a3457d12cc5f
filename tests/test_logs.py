"""Secrets never reach logs."""
from common.logs import redact_headers, redact_url, target_for_log


def test_secret_headers_are_redacted():
    safe = redact_headers({"Authorization": "Bearer s3cret", "X-Api-Key": "k",
                           "X-Auth-Token": "t", "Accept": "text/plain"})
    assert safe == {"Authorization": "***", "X-Api-Key": "***", "X-Auth-Token": "***",
                    "Accept": "text/plain"}


def test_target_urls_are_logged_without_path_query_or_credentials():
    url = "https://user:pw@hooks.example.test:8443/services/T0/B0/SECRET?token=abc"
    logged = target_for_log(url)
    assert logged == "https://hooks.example.test:8443/…"
    assert "SECRET" not in logged and "pw" not in logged and "abc" not in logged


def test_database_password_is_redacted():
    assert redact_url("mysql+pymysql://app:hunter2@db:3306/jobsched") == \
        "mysql+pymysql://app:***@db:3306/jobsched"
