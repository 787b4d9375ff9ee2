"""A recognisable fake key never leaves the key vault: no log line, row, file or message."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tests.fixtures.discord import Server, button, latest, mint_finished, text_of

CANARY = "sk-test-good-CANARY-5f1e0c7d"
WRONG_CANARY = "sk-wrong-CANARY-b2a9d4e1"
MINT = "Mint this branch"


async def test_a_key_appears_in_no_log_row_file_or_message(
    world_env, world_service, keyed_provider, discord_settings, tmp_path: Path, caplog
):
    caplog.set_level(logging.DEBUG)
    for name in ("discord", "bot", "world", "storage", "sqlalchemy.engine"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    server = Server(world_env, "alpha")
    await server.admin.slash(server.channel, "adventure start")
    member = server.member()

    # A wrong key, a key that runs out of quota mid-mint, then the saved key again.
    mint = latest(server.channel)
    form = await member.click(mint, custom_id=button(mint, MINT)["custom_id"])
    await member.submit_modal(form, {"api_key": WRONG_CANARY})
    keyed_provider.fail_with_quota = True
    form = await member.click(mint, custom_id=button(mint, MINT)["custom_id"])
    await member.submit_modal(form, {"api_key": CANARY})
    await mint_finished(world_env, world_service, "default", "")
    again = latest(server.channel)
    offer = await member.click(again, custom_id=button(again, MINT)["custom_id"])
    await member.click(
        offer.response, custom_id=button(offer.response, "Use my saved key")["custom_id"]
    )
    await mint_finished(world_env, world_service, "default", "")
    assert "The Nexus Gate" in text_of(latest(server.channel))
    # What discord.py's DEBUG gateway log would print for the modal submit:
    logging.getLogger("discord.gateway").debug(
        "For Shard ID %s: WebSocket Event: %s", 0, {"t": "INTERACTION_CREATE", "value": CANARY}
    )

    secrets = (CANARY, WRONG_CANARY)
    for record in caplog.records:
        line = record.getMessage() + (record.exc_text or "")
        assert not any(s in line for s in secrets), f"key in a log line: {record.name}"
    assert any(record.name == "discord.gateway" for record in caplog.records)
    assert any(record.name.startswith("bot.") for record in caplog.records)

    await world_service.db.engine.dispose()  # flush SQLite's WAL into the file
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), f"key stored in {path}"

    sent = json.dumps([(r.method, r.path, r.json) for r in world_env.http_requests], default=str)
    assert not any(s in sent for s in secrets), "key in a request the bot sent"
    for message in server.channel.history():
        assert not any(s in text_of(message) for s in secrets)
