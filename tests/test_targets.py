"""The target deny list (SSRF): pure checks, the allow list and presets, and
the guarded connection refusing a denied address after DNS resolution."""
import pytest
import requests

from common.targets import DEFAULT_DENY, DenyList
from tests.support import Target
from worker.guard import make_session


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


def test_private_denies_all_but_the_public_internet_and_allow_names_exceptions():
    from common.settings import Settings
    deny = Settings.from_env({"JOBSCHED_TARGET_DENY": "private",
                              "JOBSCHED_TARGET_ALLOW": "10.0.0.0/24, internal.example"}
                             ).deny_list()
    for address in ("127.0.0.1", "10.1.2.3", "172.20.0.1", "192.168.1.1", "100.64.0.1",
                    "169.254.169.254", "fc00::1", "::1", "64:ff9b::a00:1", "0.0.0.0"):
        assert deny.denies(address), address
    assert not deny.denies("93.184.216.34") and not deny.denies("2606:2800:220:1::1")
    assert not deny.denies("10.0.0.5") and deny.denies("10.0.1.5")   # an allowed network
    assert not deny.denies("10.9.9.9", "Internal.Example.")          # an allowed name
    assert deny.denies("10.9.9.9", "other.example")


@pytest.mark.parametrize("env", [{"JOBSCHED_TARGET_DENY": "privat"},
                                 {"JOBSCHED_TARGET_ALLOW": "not a host!"},
                                 {"JOBSCHED_AUTH": "maybe"}])
def test_bad_target_and_auth_settings_are_refused_at_start(env):
    from common.errors import ConfigError
    from common.settings import Settings
    with pytest.raises(ConfigError):
        Settings.from_env(env)


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
