"""Issue 7 finding 8: a key of any shape, from any caller of WorldService, stays out of logs.

The bot's vault registers the keys it holds with world.logsafe; callers without a vault (the
HTTP front door) pass keys straight to `claim`, `retry` and `validate_key`. The service holds
every credential it receives for as long as it uses it, and a provider exception that is not
a ProviderError is logged as its type and a redacted message, never as a raw traceback.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.fixtures.world import make_settings, offline_jobs_dir, start_service
from tests.world.helpers import row, wait_for
from world.logsafe import REDACTED, forget_secret, install_redaction, redact, register_secret
from world.pipeline import INTERNAL_FAILURE
from world.providers.base import ProviderError
from world.providers.offline import OfflineProvider
from world.types import Credentials, Status

log = logging.getLogger("tests.raising_provider")


class RaisingProvider(OfflineProvider):
    """An offline provider whose upstream echoes the caller's key in its exceptions."""

    needs_key = True

    def __init__(self, settings, jobs_dir, *, fails_in: str, chained: bool = False) -> None:
        super().__init__(settings.providers, jobs_dir)
        self.fails_in = fails_in
        self.chained = chained
        self.entered = asyncio.Event()
        self.proceed = asyncio.Event()
        self.proceed.set()

    async def _fail(self, credentials: Credentials) -> None:
        self.entered.set()
        await self.proceed.wait()
        key = credentials.api_key
        # Code that knows nothing of redaction logs the key while the service holds it.
        log.debug("calling upstream with key %s", key)
        if self.chained:
            raise RuntimeError(f"upstream said no for {key}") from ValueError(f"header {key}")
        raise RuntimeError(f"upstream said no for {key}")

    async def plan(self, request, credentials):
        if self.fails_in == "plan":
            await self._fail(credentials)
        return await super().plan(request, credentials)

    async def start_render(self, request, credentials):
        if self.fails_in == "start_render":
            await self._fail(credentials)
        return await super().start_render(request, credentials)

    async def validate_key(self, credentials):
        if self.fails_in == "validate_key":
            await self._fail(credentials)
        return await super().validate_key(credentials)


async def _settled(service) -> None:
    """The job's task has ended (its last event is published just before)."""
    async with asyncio.timeout(30):
        while service.running_jobs():
            await asyncio.sleep(0.01)


async def _service(tmp_path, **kwargs):
    settings = make_settings(tmp_path)
    provider = RaisingProvider(settings, offline_jobs_dir(settings), **kwargs)
    return await start_service(settings, providers={"default": provider}), provider


@pytest.mark.parametrize(
    ("fails_in", "chained"),
    [("plan", False), ("start_render", False), ("start_render", True)],
)
async def test_a_non_sk_key_in_a_provider_exception_is_absent_from_debug_logs(
    tmp_path, caplog, fails_in, chained
):
    key = f"my-gateway-key-without-prefix-{fails_in}-{chained}-123"
    install_redaction()
    with caplog.at_level(logging.DEBUG):
        service, _ = await _service(tmp_path, fails_in=fails_in, chained=chained)
        try:
            result = await service.claim("default", "", Credentials(key), "http-caller")
            assert result.claimed_by_caller
            failed = await wait_for(service, "", lambda e: e.status is Status.FAILED)
            scene = await row(service, "")
        finally:
            await service.close()

    assert key not in caplog.text
    assert "without-prefix" not in caplog.text
    assert failed.failure_code == "internal"
    assert failed.failure_detail == INTERNAL_FAILURE
    assert scene.status == Status.FAILED.value
    assert scene.failure_detail == INTERNAL_FAILURE
    crash = [r for r in caplog.records if "job crashed" in r.getMessage()]
    assert len(crash) == 1, "the crash is still logged once, for debugging"
    line = crash[0].getMessage() + (crash[0].exc_text or "")
    assert "RuntimeError" in line and f"upstream said no for {REDACTED}" in line
    assert fails_in in line, "the log names where it was raised"
    if chained:
        assert "ValueError" in line
    assert "Traceback (most recent call last)" not in caplog.text
    assert redact(key) == key, "released once the job that held it ended"


async def test_the_service_holds_a_key_while_its_job_runs_even_if_the_vault_forgets_it(
    tmp_path, caplog
):
    key = "gateway-key-held-by-a-running-job-42"
    install_redaction()
    with caplog.at_level(logging.DEBUG):
        service, provider = await _service(tmp_path, fails_in="start_render")
        provider.proceed.clear()
        try:
            register_secret(key)  # the bot's vault holds it ...
            await service.claim("default", "", Credentials(key), "member")
            await asyncio.wait_for(provider.entered.wait(), 30)
            forget_secret(key)  # ... and lets it go (/key forget) while the job still runs
            assert redact(key) == REDACTED
            logging.getLogger("anything").debug("late line with %s", key)
            provider.proceed.set()
            await wait_for(service, "", lambda e: e.status is Status.FAILED)
        finally:
            provider.proceed.set()  # a paid create runs to its end, also at shutdown
            await service.close()
    assert key not in caplog.text
    assert redact(key) == key


async def test_a_key_the_vault_still_holds_stays_redacted_after_the_job_ends(tmp_path):
    key = "vault-owned-gateway-key-777"
    service, _ = await _service(tmp_path, fails_in="plan")
    try:
        register_secret(key)
        await service.claim("default", "", Credentials(key), "member")
        await wait_for(service, "", lambda e: e.status is Status.FAILED)
        assert redact(key) == REDACTED, "the service must not forget a key the vault holds"
    finally:
        forget_secret(key)
        await service.close()
    assert redact(key) == key


async def test_a_second_claim_with_the_same_key_releases_only_its_own_hold(tmp_path):
    key = "shared-gateway-key-two-claims-9"
    service, provider = await _service(tmp_path, fails_in="plan")
    provider.proceed.clear()
    try:
        await service.claim("default", "", Credentials(key), "a")
        await asyncio.wait_for(provider.entered.wait(), 30)
        assert redact(key) == REDACTED
        # a refused or already-queued claim with the same key releases only its own hold
        again = await service.claim("default", "", Credentials(key), "b")
        assert not again.claimed_by_caller
        assert redact(key) == REDACTED
        provider.proceed.set()
        await wait_for(service, "", lambda e: e.status is Status.FAILED)
        await _settled(service)
        assert redact(key) == key, "released when the job ended"
        provider.entered.clear()
        provider.proceed.clear()
        retried = await service.retry("default", "", Credentials(key), "admin")
        assert retried.claimed_by_caller
        await asyncio.wait_for(provider.entered.wait(), 30)
        assert redact(key) == REDACTED, "a retry's job holds the key too"
        provider.proceed.set()
        await wait_for(service, "", lambda e: e.status is Status.FAILED)
        await _settled(service)
        assert redact(key) == key
    finally:
        provider.proceed.set()
        await service.close()


async def test_validate_key_maps_a_raw_provider_exception_and_logs_no_key(tmp_path, caplog):
    key = "gateway-key-checked-by-the-http-door-5"
    install_redaction()
    with caplog.at_level(logging.DEBUG):
        service, _ = await _service(tmp_path, fails_in="validate_key")
        try:
            with pytest.raises(ProviderError) as raised:
                await service.validate_key("default", Credentials(key))
        finally:
            await service.close()
        logging.getLogger("front.door").exception("key check failed", exc_info=raised.value)
    assert key not in str(raised.value)
    assert key not in caplog.text
    assert "RuntimeError" in caplog.text, "the real cause is logged for debugging"
    assert redact(key) == key
