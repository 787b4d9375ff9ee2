"""The Discord request-body validator (`tests/fixtures/discord_spec.py`) against the real spec.

Limits asserted here are the ones `discord-openapi.json` encodes; `test_spec_encodes_the_limits`
pins them, so a spec update that drops one fails there with a clear reason instead of making
a negative test below pass for the wrong reason.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import discord
import pytest
from discord import app_commands, ui
from discord.http import handle_message_parameters
from discord.webhook.async_ import (
    interaction_message_response_params,
    interaction_response_params,
)

from tests.fixtures import discord_spec
from tests.fixtures.discord_spec import find_operation, validate_discord_payload

CALLBACK = "/interactions/123/tok/callback"
EPHEMERAL = 1 << 6
COMPONENTS_V2 = 1 << 15
MULTIPART = "multipart/form-data; boundary=xyz"
SCHEMAS = discord_spec.SPEC["components"]["schemas"]


def _fails(method: str, route: str, body: Any, *, content_type: str | None = None) -> str:
    with pytest.raises(AssertionError) as info:
        validate_discord_payload(method, route, body, content_type=content_type)
    return str(info.value)


def _v2_message() -> dict[str, Any]:
    return {
        "flags": COMPONENTS_V2,
        "components": [
            {
                "type": 17,
                "accent_color": 0x5865F2,
                "components": [
                    {"type": 10, "content": "## Scene 3\nThe Courier reaches the Nexus Gate."},
                    {
                        "type": 12,
                        "items": [
                            {
                                "media": {"url": "https://cdn.example.com/scenes/3.mp4"},
                                "description": "Scene 3",
                            }
                        ],
                    },
                    {
                        "type": 1,
                        "components": [
                            {"type": 2, "style": 1, "label": "Bold", "custom_id": "choice:3:1"},
                            {"type": 2, "style": 2, "label": "Clever", "custom_id": "choice:3:2"},
                            {"type": 2, "style": 4, "label": "Careful", "custom_id": "choice:3:3"},
                        ],
                    },
                ],
            }
        ],
    }


def _modal() -> dict[str, Any]:
    return {
        "type": 9,
        "data": {
            "custom_id": "suggest:3",
            "title": "Suggest what happens next",
            "components": [
                {
                    "type": 18,
                    "label": "Your idea",
                    "description": "One or two sentences",
                    "component": {
                        "type": 4,
                        "custom_id": "intent",
                        "style": 2,
                        "min_length": 10,
                        "max_length": 300,
                        "required": True,
                    },
                }
            ],
        },
    }


def _commands() -> list[dict[str, Any]]:
    return [
        {
            "name": "world",
            "description": "The shared world",
            "type": 1,
            "contexts": [0],
            "integration_types": [0],
            "options": [
                {
                    "type": 2,
                    "name": "scene",
                    "description": "Scenes",
                    "options": [
                        {
                            "type": 1,
                            "name": "jump",
                            "description": "Jump to a scene",
                            "options": [
                                {
                                    "type": 3,
                                    "name": "scene",
                                    "description": "Scene id",
                                    "required": True,
                                    "autocomplete": True,
                                },
                                {
                                    "type": 4,
                                    "name": "seconds",
                                    "description": "Clip length",
                                    "min_value": 4,
                                    "max_value": 12,
                                },
                            ],
                        }
                    ],
                },
                {"type": 1, "name": "status", "description": "Show the world's status"},
            ],
        },
        {"name": "Report scene", "type": 3},
    ]


# --------------------------------------------------------------------------- load and routes


def test_spec_loads_fast_and_is_openapi_31() -> None:
    assert discord_spec.SPEC["openapi"].startswith("3.1")
    assert discord_spec.SPEC_LOAD_SECONDS < 1.0, discord_spec.SPEC_LOAD_SECONDS


def test_missing_spec_fails_when_the_variable_is_set(tmp_path: Path) -> None:
    env = {**os.environ, "SHARED_WORLD_SPECS": str(tmp_path)}
    code = "import tests.fixtures.discord_spec"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=discord_spec.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "SHARED_WORLD_SPECS" in result.stderr and "does not exist" in result.stderr


@pytest.mark.parametrize(
    ("method", "route", "template"),
    [
        ("POST", CALLBACK, "/interactions/{interaction_id}/{interaction_token}/callback"),
        ("POST", "/api/v10/interactions/1/t/callback?with_response=true", None),
        ("POST", "/channels/1/messages", "/channels/{channel_id}/messages"),
        ("post", "https://discord.com/api/v10/channels/1/messages", None),
        ("PATCH", "/channels/1/messages/2", "/channels/{channel_id}/messages/{message_id}"),
        (
            "PATCH",
            "/webhooks/9/tok/messages/@original",
            "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
        ),
        (
            "PATCH",
            "/webhooks/9/tok/messages/55",
            "/webhooks/{webhook_id}/{webhook_token}/messages/{message_id}",
        ),
        ("POST", "/webhooks/9/tok?wait=true", "/webhooks/{webhook_id}/{webhook_token}"),
        ("PUT", "/applications/9/commands", "/applications/{application_id}/commands"),
        (
            "PUT",
            "/api/v10/applications/9/guilds/5/commands",
            "/applications/{application_id}/guilds/{guild_id}/commands",
        ),
        ("POST", "/channels/1/messages/bulk-delete", "/channels/{channel_id}/messages/bulk-delete"),
        ("GET", "/users/@me", "/users/@me"),
        ("POST", "/channels/1/typing", "/channels/{channel_id}/typing"),
    ],
)
def test_find_operation_matches_templates(method: str, route: str, template: str | None) -> None:
    found, operation = find_operation(method, route)
    if template is not None:
        assert found == template
    assert operation is not None and operation["operationId"]


def test_find_operation_on_the_example_routes() -> None:
    assert find_operation("POST", CALLBACK)[1]["operationId"] == "create_interaction_response"
    assert find_operation("POST", "/webhooks/9/tok")[1]["operationId"] == "execute_webhook"
    operation = find_operation("PUT", "/applications/9/commands")[1]
    assert operation["operationId"] == "bulk_set_application_commands"


@pytest.mark.parametrize(
    ("method", "route", "expected"),
    [
        ("POST", "/channels/1/nonsense", "POST /channels/1/nonsense is not a route"),
        ("GET", CALLBACK, "GET /interactions/123/tok/callback is not in Discord's OpenAPI spec"),
        ("POST", "/channels/None/messages", "channel_id='None' is not a snowflake"),
        ("POST", "/api/v9/channels/1/messages", "describes API v10"),
        ("DELETE", "/channels/1/messages/bulk-delete", "message_id='bulk-delete'"),
    ],
)
def test_unknown_routes_are_named(method: str, route: str, expected: str) -> None:
    with pytest.raises(AssertionError) as info:
        find_operation(method, route)
    assert expected in str(info.value)
    with pytest.raises(AssertionError):
        validate_discord_payload(method, route, {"content": "x"})


def test_allowlist_is_small_justified_and_really_missing_from_the_spec() -> None:
    assert len(discord_spec.ALLOWED_UNKNOWN_ROUTES) <= 3
    dpy_source = (Path(discord.__file__).parent / "http.py").read_text()
    for (method, path), why in discord_spec.ALLOWED_UNKNOWN_ROUTES.items():
        assert len(why) > 40
        assert path not in discord_spec.SPEC["paths"]
        assert f"'{path}'" in dpy_source, f"discord.py no longer uses {method} {path}"
        concrete = path.replace("{application_id}", "9")
        assert find_operation(method, concrete) == (path, None)
        validate_discord_payload(method, concrete, None)


def test_bodies_where_the_spec_has_none_or_requires_one() -> None:
    validate_discord_payload("POST", "/channels/1/typing", None)
    assert "takes no request body" in _fails("POST", "/channels/1/typing", {"x": 1})
    assert "requires a request body" in _fails("POST", "/channels/1/messages", None)


# --------------------------------------------------------------------------- what the spec says


def test_spec_encodes_the_limits() -> None:
    """The limits the negative tests rely on, read straight from the spec."""
    button = SCHEMAS["ButtonComponentForMessageRequest"]["properties"]
    assert button["label"]["maxLength"] == 80
    assert (button["custom_id"]["minLength"], button["custom_id"]["maxLength"]) == (1, 100)
    assert SCHEMAS["MessageCreateRequest"]["properties"]["flags"]["type"] == ["integer", "null"]
    row = SCHEMAS["ActionRowComponentForMessageRequest"]["properties"]["components"]
    assert (row["minItems"], row["maxItems"]) == (1, 5)
    modal = SCHEMAS["ModalInteractionCallbackRequestData"]["properties"]
    assert modal["title"]["maxLength"] == 45
    assert SCHEMAS["LabelComponentForModalRequest"]["properties"]["label"]["maxLength"] == 45
    assert SCHEMAS["UnfurledMediaRequest"]["properties"]["url"]["format"] == "uri"
    callback_types = [b["const"] for b in SCHEMAS["InteractionCallbackTypes"]["oneOf"]]
    assert callback_types == [1, 4, 5, 6, 7, 8, 9, 12, 13]
    component_types = [b["const"] for b in SCHEMAS["MessageComponentTypes"]["oneOf"]]
    assert 17 in component_types and 18 in component_types and 42 not in component_types
    # What it does not encode: names have no pattern, extra keys are allowed, flags bits are free.
    assert "pattern" not in SCHEMAS["ApplicationCommandStringOption"]["properties"]["name"]
    assert "additionalProperties" not in SCHEMAS["MessageCreateRequest"]


# --------------------------------------------------------------------------- valid payloads


def test_callback_type_4_ephemeral() -> None:
    body = {"type": 4, "data": {"content": "Your vote is in.", "flags": EPHEMERAL}}
    validate_discord_payload("POST", CALLBACK, body)


def test_callback_type_5_deferred_and_type_1_pong() -> None:
    validate_discord_payload("POST", CALLBACK, {"type": 5, "data": {"flags": EPHEMERAL}})
    validate_discord_payload("POST", CALLBACK, {"type": 5})
    validate_discord_payload("POST", CALLBACK, {"type": 1})


def test_callback_type_9_modal_with_label_wrapping_text_input() -> None:
    validate_discord_payload("POST", CALLBACK, _modal())


def test_callback_types_6_and_7() -> None:
    validate_discord_payload("POST", CALLBACK, {"type": 6})
    validate_discord_payload("POST", CALLBACK, {"type": 6, "data": None})
    validate_discord_payload("POST", CALLBACK, {"type": 7, "data": _v2_message()})
    validate_discord_payload("POST", CALLBACK, {"type": 7, "data": {"content": "Votes closed."}})


def test_callback_type_8_autocomplete() -> None:
    choices = [{"name": f"Scene {i}", "value": f"scene-{i}"} for i in range(25)]
    validate_discord_payload("POST", CALLBACK, {"type": 8, "data": {"choices": choices}})


def test_components_v2_message() -> None:
    validate_discord_payload("POST", "/channels/1/messages", _v2_message())
    validate_discord_payload("POST", "/webhooks/9/tok?wait=true", _v2_message())
    validate_discord_payload("POST", CALLBACK, {"type": 4, "data": _v2_message()})


def test_message_edits() -> None:
    edit = {"content": None, "components": [], "flags": 0, "allowed_mentions": {"parse": []}}
    validate_discord_payload("PATCH", "/channels/1/messages/2", edit)
    validate_discord_payload("PATCH", "/channels/1/messages/2", _v2_message())
    validate_discord_payload("PATCH", "/webhooks/9/tok/messages/@original", _v2_message())
    validate_discord_payload("PATCH", "/webhooks/9/tok/messages/77", {"content": "edited"})


def test_bulk_command_overwrite_with_group_and_autocomplete() -> None:
    validate_discord_payload("PUT", "/applications/9/commands", _commands())
    validate_discord_payload("PUT", "/applications/9/guilds/5/commands", _commands())
    validate_discord_payload("PUT", "/applications/9/commands", [])


def test_multipart_payload_json_forms() -> None:
    payload = {**_v2_message(), "attachments": [{"id": 0, "filename": "scene.mp4"}]}
    payload["components"][0]["components"][1]["items"][0]["media"]["url"] = "attachment://scene.mp4"
    as_dict = {"payload_json": json.dumps(payload), "files[0]": b"\x00\x00"}
    validate_discord_payload("POST", "/channels/1/messages", as_dict)
    validate_discord_payload("PATCH", "/webhooks/9/tok/messages/@original", as_dict)
    forced = {"payload_json": payload}
    validate_discord_payload("POST", "/channels/1/messages", forced, content_type=MULTIPART)


def test_snowflakes_as_discord_py_sends_them() -> None:
    """Integer snowflakes are accepted (the one documented deviation from the spec)."""
    body = {
        "content": "hi <@5>",
        "allowed_mentions": {"users": [5, "6"], "replied_user": False},
        "message_reference": {"message_id": 7, "channel_id": "1"},
        "sticker_ids": [123],
    }
    validate_discord_payload("POST", "/channels/1/messages", body)
    assert "pattern" in _fails("POST", "/channels/1/messages", {"sticker_ids": ["12a"]})
    assert "minimum 0" in _fails("POST", "/channels/1/messages", {"sticker_ids": [-1]})


# --------------------------------------------------------------------------- invalid payloads


def test_button_label_over_80_chars() -> None:
    body = _v2_message()
    body["components"][0]["components"][2]["components"][1]["label"] = "x" * 81
    message = _fails("POST", "/channels/1/messages", body)
    assert "POST /channels/{channel_id}/messages (operationId create_message)" in message
    assert "/components/0/components/2/components/1/label" in message
    assert "exceeds maxLength 80" in message
    assert "#/components/schemas/ButtonComponentForMessageRequest/properties/label" in message


def test_custom_id_over_100_chars() -> None:
    body = {"type": 7, "data": _v2_message()}
    body["data"]["components"][0]["components"][2]["components"][0]["custom_id"] = "c" * 101
    message = _fails("POST", CALLBACK, body)
    assert "/data/components/0/components/2/components/0/custom_id" in message
    assert "maxLength 100" in message


def test_wrong_type_for_flags() -> None:
    message = _fails("POST", CALLBACK, {"type": 4, "data": {"content": "x", "flags": "64"}})
    assert "/data/flags: expected integer or null, got str" in message
    assert "create_interaction_response" in message
    message = _fails("PATCH", "/channels/1/messages/2", {"flags": True})
    assert "/flags: expected integer or null, got bool" in message


def test_unknown_component_type() -> None:
    body = _v2_message()
    body["components"].append({"type": 42, "content": "?"})
    message = _fails("POST", "/channels/1/messages", body)
    assert "/components/1/type: 42 is not an accepted type here" in message
    assert "[1, 9, 10, 12, 13, 14, 17]" in message
    # A text input is a modal-only component; inside a message container it is unknown.
    body = _v2_message()
    body["components"][0]["components"].append({"type": 4, "custom_id": "t", "style": 1})
    message = _fails("POST", "/channels/1/messages", body)
    assert "/components/0/components/3/type: 4 is not an accepted type here" in message


def test_callback_type_not_in_enum() -> None:
    for bad in (3, 10, 99):
        message = _fails("POST", CALLBACK, {"type": bad, "data": {"content": "x"}})
        assert f"/type: {bad} is not an accepted type here" in message
        assert "[1, 4, 5, 6, 7, 8, 9, 12, 13]" in message


def test_modal_shapes_the_spec_rejects() -> None:
    bare_input = _modal()
    bare_input["data"]["components"] = [bare_input["data"]["components"][0]["component"]]
    message = _fails("POST", CALLBACK, bare_input)
    assert "/data/components/0/type: 4 is not an accepted type here" in message
    long_title = _modal()
    long_title["data"]["title"] = "t" * 46
    assert "/data/title: string of length 46 exceeds maxLength 45" in _fails(
        "POST", CALLBACK, long_title
    )
    bad_style = _modal()
    bad_style["data"]["components"][0]["component"]["style"] = 3
    message = _fails("POST", CALLBACK, bad_style)
    assert "/data/components/0/component/style: 3 is not one of 1 (SHORT), 2 (PARAGRAPH)" in message
    no_label = _modal()
    del no_label["data"]["components"][0]["label"]
    assert "'label' is a required property" in _fails("POST", CALLBACK, no_label)


def test_limits_on_counts_and_urls() -> None:
    body = _v2_message()
    row = body["components"][0]["components"][2]["components"]
    row.extend(dict(row[0], custom_id=f"more:{i}") for i in range(3))
    assert "6 items exceed maxItems 5" in _fails("POST", "/channels/1/messages", body)
    body = _v2_message()
    body["components"][0]["components"][1]["items"][0]["media"]["url"] = "cdn.example.com/a.mp4"
    assert "is not a valid uri" in _fails("POST", "/channels/1/messages", body)
    choices = [{"name": f"S{i}", "value": str(i)} for i in range(26)]
    message = _fails("POST", CALLBACK, {"type": 8, "data": {"choices": choices}})
    assert "/data/choices" in message and "maxItems 25" in message


def test_invalid_commands() -> None:
    commands = _commands()
    commands[0]["options"][0]["options"][0]["options"][0]["description"] = "d" * 101
    message = _fails("PUT", "/applications/9/guilds/5/commands", commands)
    assert "/0/options/0/options/0/options/0/description" in message
    assert "maxLength 100" in message
    commands = _commands()
    commands[0]["name"] = "n" * 33
    assert "/0/name: string of length 33 exceeds maxLength 32" in _fails(
        "PUT", "/applications/9/commands", commands
    )
    assert "expected array or null" in _fails("PUT", "/applications/9/commands", {"name": "x"})


def test_multipart_errors_point_into_payload_json() -> None:
    payload = _v2_message()
    payload["components"][0]["components"][2]["components"][0]["label"] = "L" * 81
    form = [
        {"name": "payload_json", "value": json.dumps(payload)},
        {"name": "files[0]", "value": io.BytesIO(b"x"), "filename": "a.mp4"},
    ]
    message = _fails("POST", "/channels/1/messages", form)
    assert "multipart/form-data" in message and "inside payload_json" in message
    assert "/components/0/components/2/components/0/label" in message
    assert "not JSON" in _fails("POST", "/channels/1/messages", {"payload_json": "{nope"})
    message = _fails("PUT", "/applications/9/commands", {"payload_json": "{}"})
    assert "does not accept multipart/form-data" in message


# --------------------------------------------------------------------------- real discord.py output


class _SceneLayout(ui.LayoutView):
    container = ui.Container(
        ui.TextDisplay("## Scene 3\nThe Courier reaches the Nexus Gate."),
        ui.MediaGallery(
            discord.MediaGalleryItem("https://cdn.example.com/scenes/3.mp4", description="Scene 3")
        ),
        ui.Separator(),
        ui.Section(
            ui.TextDisplay("Votes close in 10 minutes."),
            accessory=ui.Thumbnail("https://cdn.example.com/scenes/3.png"),
        ),
        ui.ActionRow(
            ui.Button(label="Bold", custom_id="choice:3:1", style=discord.ButtonStyle.primary),
            ui.Button(label="Clever", custom_id="choice:3:2"),
            ui.Button(label="Watch", url="https://example.com/watch/3"),
        ),
        accent_colour=discord.Colour(0x5865F2),
    )


class _SuggestModal(ui.Modal, title="Suggest what happens next"):
    idea = ui.Label(
        text="Your idea",
        description="One or two sentences",
        component=ui.TextInput(
            custom_id="intent", style=discord.TextStyle.paragraph, max_length=300
        ),
    )
    note = ui.TextDisplay("Suggestions are public.")


async def test_discord_py_layout_view_in_messages_and_callbacks() -> None:
    view = _SceneLayout()
    components = view.to_components()
    assert [c["type"] for c in components] == [17]
    flags = discord.MessageFlags(ephemeral=True)
    params = interaction_message_response_params(type=4, view=view, flags=flags)
    assert params.payload["data"]["flags"] == EPHEMERAL | COMPONENTS_V2
    validate_discord_payload("POST", CALLBACK, params.payload)
    params = interaction_message_response_params(type=7, view=view)
    validate_discord_payload("POST", CALLBACK, params.payload)
    params = handle_message_parameters(view=view)
    validate_discord_payload("POST", "/channels/1/messages", params.payload)
    validate_discord_payload("PATCH", "/channels/1/messages/2", params.payload)
    validate_discord_payload("PATCH", "/webhooks/9/tok/messages/@original", params.payload)


async def test_discord_py_message_with_file_reply_and_mentions() -> None:
    params = handle_message_parameters(
        content="Scene 3 is ready <@5>",
        view=ui.View().add_item(ui.Button(label="Vote", custom_id="vote:3")),
        files=[discord.File(io.BytesIO(b"\x00"), "scene.mp4", description="Scene 3")],
        allowed_mentions=discord.AllowedMentions(users=[discord.Object(5)]),
        message_reference=discord.MessageReference(
            message_id=7, channel_id=1
        ).to_message_reference_dict(),
        embed=discord.Embed(title="Scene 3", timestamp=discord.utils.utcnow()),
    )
    assert params.payload is None and params.multipart[0]["name"] == "payload_json"
    validate_discord_payload("POST", "/channels/1/messages", params.multipart)
    followup = handle_message_parameters(
        content="done", files=[discord.File(io.BytesIO(b"x"), "a.txt")]
    )
    validate_discord_payload("POST", "/webhooks/9/tok?wait=true", followup.multipart)


async def test_discord_py_modal() -> None:
    payload = interaction_response_params(9, _SuggestModal().to_dict()).payload
    assert payload["data"]["components"][0]["type"] == 18
    validate_discord_payload("POST", CALLBACK, payload)


async def test_discord_py_deferrals() -> None:
    validate_discord_payload("POST", CALLBACK, interaction_response_params(6).payload)
    payload = interaction_response_params(5, {"flags": EPHEMERAL}).payload
    validate_discord_payload("POST", CALLBACK, payload)


async def test_discord_py_command_tree_sync_payload() -> None:
    client = discord.Client(intents=discord.Intents.none())
    tree = app_commands.CommandTree(client)
    world = app_commands.Group(name="world", description="The shared world")
    scene = app_commands.Group(name="scene", description="Scenes", parent=world)

    @scene.command(name="jump", description="Jump to a scene")
    @app_commands.describe(target="Scene id", seconds="Clip length")
    async def jump(
        interaction: discord.Interaction,
        target: str,
        seconds: app_commands.Range[int, 4, 12] = 8,
    ) -> None:
        pass

    @jump.autocomplete("target")
    async def target_autocomplete(
        interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return []

    @app_commands.command(name="play", description="Start the world in a channel")
    @app_commands.default_permissions(manage_guild=True)
    @app_commands.choices(pace=[app_commands.Choice(name="Fast", value=1)])
    async def play(
        interaction: discord.Interaction,
        channel: discord.TextChannel | None = None,
        pace: int = 1,
    ) -> None:
        pass

    @app_commands.context_menu(name="Report scene")
    async def report(interaction: discord.Interaction, message: discord.Message) -> None:
        pass

    tree.add_command(world)
    tree.add_command(play)
    tree.add_command(report)
    payload = [command.to_dict(tree) for command in tree.get_commands()]
    jump_options = payload[0]["options"][0]["options"][0]["options"]
    assert jump_options[0]["autocomplete"] is True
    validate_discord_payload("PUT", "/applications/9/commands", payload)
    validate_discord_payload("PUT", "/applications/9/guilds/5/commands", payload)
    await client.close()


def test_content_type_selection() -> None:
    urlencoded = "application/x-www-form-urlencoded"
    validate_discord_payload(
        "POST", "/channels/1/messages", {"content": "x"}, content_type=urlencoded
    )
    message = _fails("PUT", "/applications/9/commands", [], content_type=urlencoded)
    assert "does not accept application/x-www-form-urlencoded" in message
    assert "['application/json']" in message
    message = _fails("POST", CALLBACK, {"type": 99}, content_type="multipart/form-data")
    assert "multipart/form-data" in message and "/type: 99 is not an accepted type" in message
