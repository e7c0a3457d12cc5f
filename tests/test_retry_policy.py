"""Retry policy and fire counting: pure functions, no server."""
from email.utils import format_datetime
from datetime import datetime, timezone

from common import cron
from worker.retry import parse_retry_after, retry_delay_ms, will_retry

NOW = 1_795_000_000_000


def test_only_failed_atleast_once_attempts_within_the_budget_are_retried():
    assert will_retry("FAILED", "ATLEAST_ONCE", 1, 3)
    assert will_retry("FAILED", "ATLEAST_ONCE", 3, 3)
    assert not will_retry("FAILED", "ATLEAST_ONCE", 4, 3)  # 1 call + 3 retries done
    assert not will_retry("FAILED", "ATMOST_ONCE", 1, 3)
    assert not will_retry("SUCCESS", "ATLEAST_ONCE", 1, 3)
    assert not will_retry("FAILED", "ATLEAST_ONCE", 1, 0)


def test_backoff_doubles_is_jittered_and_capped():
    low = [retry_delay_ms(n, 1000, 60_000, None, 0, rand=lambda: 0.0) for n in (1, 2, 3, 4)]
    high = [retry_delay_ms(n, 1000, 60_000, None, 0, rand=lambda: 0.999) for n in (1, 2, 3, 4)]
    assert low == [500, 1000, 2000, 4000]
    assert [round(h, -1) for h in high] == [1000, 2000, 4000, 8000]
    assert retry_delay_ms(30, 1000, 60_000, None, 0, rand=lambda: 0.999) < 60_000
    assert retry_delay_ms(10_000, 1000, 60_000, None, 0, rand=lambda: 0.0) == 30_000


def test_retry_after_is_a_floor_within_its_cap():
    assert retry_delay_ms(1, 100, 60_000, 5_000, 3_600_000, rand=lambda: 0.0) == 5_000
    assert retry_delay_ms(1, 100, 60_000, 10_000_000, 3_600_000, rand=lambda: 0.0) == 3_600_000
    assert retry_delay_ms(5, 10_000, 600_000, 1_000, 3_600_000, rand=lambda: 0.0) == 80_000


def test_retry_after_parses_seconds_and_http_dates():
    assert parse_retry_after("120", NOW) == 120_000
    when = datetime.fromtimestamp((NOW + 30_000) / 1000, timezone.utc)
    assert parse_retry_after(format_datetime(when, usegmt=True), NOW) == 30_000
    assert parse_retry_after("yesterday", NOW) is None
    assert parse_retry_after("", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_fires_between_counts_and_caps_but_knows_the_true_last_fire():
    span = cron.fires_between("* * * * * *", "UTC", NOW, NOW + 10_000)
    assert (span.count, span.first, span.last, span.capped) == \
        (10, NOW + 1000, NOW + 10_000, False)
    capped = cron.fires_between("* * * * * *", "UTC", NOW, NOW + 2_000_000, cap=100)
    assert (capped.count, capped.last, capped.capped) == (100, NOW + 2_000_000, True)
    assert capped.describe() == "at least 100 fire(s)"
    assert cron.fires_between("0 0 0 1 1 *", "UTC", NOW, NOW + 10_000).count == 0
