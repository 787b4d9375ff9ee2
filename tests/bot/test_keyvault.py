"""The key vault: memory only, per member, idle timeout, registered for log redaction."""

from __future__ import annotations

from bot.keyvault import KeyVault
from world import logsafe
from world.types import Credentials

KEY = "sk-test-vault-1234567890"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_keys_are_per_member_and_expire_when_idle():
    clock = Clock()
    vault = KeyVault(idle_seconds=60, clock=clock)
    vault.put(1, "openai", Credentials(KEY))
    assert vault.get(1, "openai") == Credentials(KEY)
    assert vault.get(2, "openai") is None
    assert vault.get(1, "gemini") is None

    clock.now += 59
    assert vault.has(1, "openai")  # using it restarts the idle timer
    vault.get(1, "openai")
    clock.now += 59
    assert vault.status(1)[0].expires_in_seconds == 1
    clock.now += 1
    assert vault.get(1, "openai") is None
    assert vault.status(1) == []


def test_held_keys_are_redacted_and_released_when_dropped():
    clock = Clock()
    vault = KeyVault(idle_seconds=60, clock=clock)
    vault.put(1, "openai", Credentials(KEY))
    assert KEY in logsafe._secrets
    assert vault.forget(1) == 1
    assert KEY not in logsafe._secrets
    assert vault.forget(1) == 0

    vault.put(1, "openai", Credentials(KEY))
    clock.now += 60
    assert vault.sweep() == 1
    assert KEY not in logsafe._secrets


def test_a_key_shared_by_two_members_stays_redacted_until_both_let_go():
    vault = KeyVault(idle_seconds=60, clock=Clock())
    vault.put(1, "openai", Credentials(KEY))
    vault.put(2, "openai", Credentials(KEY))
    vault.forget(1)
    assert KEY in logsafe._secrets
    vault.clear()
    assert KEY not in logsafe._secrets


def test_replacing_a_key_releases_the_old_one():
    vault = KeyVault(idle_seconds=60, clock=Clock())
    vault.put(1, "openai", Credentials(KEY))
    vault.put(1, "openai", Credentials(KEY + "-new"))
    assert KEY not in logsafe._secrets and KEY + "-new" in logsafe._secrets
    assert repr(vault) == "KeyVault(members=1)"
    vault.clear()
