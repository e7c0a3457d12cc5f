"""The target deny list (SSRF): pure checks, and the guarded connection
refusing a denied peer address after DNS resolution."""
import pytest
import requests

from common.targets import DEFAULT_DENY, DenyList
from tests.support import Target
from worker.http import make_session


def test_default_list_denies_link_local_and_metadata_but_not_loopback():
    deny = DenyList.build(DEFAULT_DENY, deny_loopback=False)
    assert deny.denies("169.254.169.254")
    assert deny.denies("fd00:ec2::254")
    assert deny.denies("::ffff:169.254.169.254")  # IPv4-mapped
    assert not deny.denies("127.0.0.1") and not deny.denies("::1")
    assert not deny.denies("10.1.2.3")


def test_loopback_can_be_refused():
    deny = DenyList.build(DEFAULT_DENY, deny_loopback=True)
    assert deny.denies("127.0.0.1") and deny.denies("127.9.9.9") and deny.denies("::1")


def test_literal_hosts_are_checked_names_are_left_to_call_time():
    deny = DenyList.build(DEFAULT_DENY, deny_loopback=True)
    assert deny.denies_literal_host("http://169.254.169.254/latest")
    assert deny.denies_literal_host("http://[::1]:8080/")
    assert not deny.denies_literal_host("http://localhost:8080/")


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


def test_guarded_session_refuses_a_name_that_resolves_to_a_denied_address(target):
    denying = make_session(2, DenyList.build(DEFAULT_DENY, deny_loopback=True))
    with pytest.raises(requests.ConnectionError, match="target address not allowed"):
        denying.get(f"http://localhost:{target.port}/ok", timeout=5)
    assert target.received() == []
    allowing = make_session(2, DenyList.build(DEFAULT_DENY, deny_loopback=False))
    assert allowing.get(f"http://localhost:{target.port}/ok", timeout=5).status_code == 200
