"""Invariant 3: a contributor's key is found nowhere after a full mint."""

from __future__ import annotations

import logging

from tests.fixtures.world import make_settings, start_service
from tests.world.helpers import wait_for
from world.logsafe import install_redaction
from world.types import Credentials, Status

FAKE_KEY = "sk-test-RECOGNISABLE-0123456789abcdef"


def _files_containing(root, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_a_full_mint_leaves_the_key_in_no_file_row_or_log(tmp_path, caplog):
    install_redaction()
    settings = make_settings(tmp_path)
    with caplog.at_level(logging.DEBUG):
        service = await start_service(settings)
        try:
            credentials = Credentials(FAKE_KEY)
            logging.getLogger("test").debug("credentials in use: %r", credentials)
            await service.claim("default", "", credentials, "alice")
            await wait_for(service, "", lambda e: e.status is Status.READY)
            await service.claim("default", "1", credentials, "alice")
            await wait_for(service, "1", lambda e: e.status is Status.READY)
        finally:
            await service.close()

    assert FAKE_KEY not in caplog.text
    assert "RECOGNISABLE" not in caplog.text
    assert _files_containing(tmp_path, b"RECOGNISABLE") == []  # database, WAL, assets, spool
    assert len(caplog.records) > 10, "logging was captured"


def test_the_redaction_filter_removes_key_shapes_from_any_log_line(caplog):
    install_redaction()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("discord.gateway").debug(
            "For Shard ID None: WebSocket Event: %s",
            {"t": "INTERACTION_CREATE", "d": {"value": FAKE_KEY}},
        )
    assert FAKE_KEY not in caplog.text
    assert "[redacted]" in caplog.text


def test_a_typed_value_in_a_gateway_dump_is_redacted_whatever_its_shape(caplog):
    install_redaction()
    typed = "my-gateway-key-without-a-known-prefix"
    payload = {
        "t": "INTERACTION_CREATE",
        "d": {
            "type": 5,
            "data": {
                "custom_id": "sw:v1:key",
                "components": [{"type": 18, "component": {"type": 4, "value": typed}}],
            },
        },
    }
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("discord.gateway").debug("WebSocket Event: %s", payload)
        logging.getLogger("discord.gateway").debug('raw: {"custom_id": "k", "value": "%s"}', typed)
    assert typed not in caplog.text
    assert caplog.text.count("[redacted]") == 2
