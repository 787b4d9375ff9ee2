"""The OpenAPI 3.1 document of the world API, served at /openapi.json."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from world.types import Status

STATUSES = [s.value for s in Status]


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


WORLD_ID = {
    "name": "worldId",
    "in": "path",
    "required": True,
    "description": "A configured world's id.",
    "schema": {"type": "string"},
}
PATH_PATTERN = r"^$|^(0|[1-9][0-9]{0,2})(/(0|[1-9][0-9]{0,2}))*$"
BRANCH_PATH = {
    "type": "string",
    "pattern": PATH_PATTERN,
    "description": 'A branch: "" is the opening scene, children append "/<choice 0-2>".',
    "examples": ["", "0", "0/2/1"],
}

SCHEMAS: dict[str, Any] = {
    "Trail": {
        "type": "object",
        "required": ["worldId", "path", "steps"],
        "properties": {
            "worldId": {"type": "string"},
            "path": BRANCH_PATH,
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["path", "title"],
                    "properties": {"path": BRANCH_PATH, "title": _nullable("string")},
                    "additionalProperties": False,
                },
            },
        },
        "additionalProperties": False,
    },
    "Error": {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string", "description": "One plain sentence."}},
        "additionalProperties": False,
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "ok"}},
        "additionalProperties": False,
    },
    "World": {
        "type": "object",
        "required": ["worldId", "basePrompt", "plannerModel", "soraModel", "videoSize"],
        "properties": {
            "worldId": {"type": "string"},
            "basePrompt": {"type": "string"},
            "plannerModel": {"type": "string"},
            "soraModel": {"type": "string", "description": "The world's video model."},
            "videoSize": {"type": "string", "examples": ["1280x720"]},
        },
        "additionalProperties": False,
    },
    "Status": {"type": "string", "enum": STATUSES},
    "Scene": {
        "type": "object",
        "required": [
            "worldId",
            "path",
            "depth",
            "status",
            "scenarioDisplay",
            "soraPrompt",
            "triggerChoice",
            "choices",
            "choicesShort",
            "choicesStatus",
            "childrenPaths",
            "videoUrl",
            "posterUrl",
            "failureCode",
            "failureDetail",
            "queuedSince",
            "updatedAt",
            "progress",
            "progressUpdatedAt",
            "stateSummary",
        ],
        "properties": {
            "worldId": {"type": "string"},
            "path": BRANCH_PATH,
            "depth": {"type": "integer", "minimum": 0},
            "status": {"$ref": "#/components/schemas/Status"},
            "scenarioDisplay": _nullable("string", description="Narration shown to players."),
            "soraPrompt": _nullable("string", description="Always null: kept on the server."),
            "triggerChoice": _nullable("string", description="The choice that led here."),
            "choices": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "choicesShort": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
            "choicesStatus": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/Status"},
                "minItems": 3,
                "maxItems": 3,
            },
            "childrenPaths": {"type": "array", "items": BRANCH_PATH, "minItems": 3, "maxItems": 3},
            "videoUrl": _nullable("string", description="As the store gives it, or /assets/..."),
            "posterUrl": _nullable("string"),
            "failureCode": _nullable("string"),
            "failureDetail": _nullable("string", description="A public-safe sentence."),
            "queuedSince": _nullable("string", format="date-time"),
            "updatedAt": _nullable("string", format="date-time"),
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "progressUpdatedAt": _nullable("string", format="date-time"),
            "stateSummary": _nullable("string"),
        },
        "additionalProperties": False,
    },
    "ClaimRequest": {
        "type": "object",
        "required": ["path"],
        "properties": {
            "path": BRANCH_PATH,
            "apiKey": {
                "type": "string",
                "description": "Pays for this claim only; never stored, logged or echoed. "
                "Needed only by worlds whose provider takes players' keys.",
            },
        },
    },
    "RetryRequest": {
        "type": "object",
        "properties": {"apiKey": {"type": "string"}},
    },
    "Metrics": {
        "type": "object",
        "required": [
            "worldId",
            "sceneCount",
            "readyCount",
            "queuedCount",
            "failedCount",
            "storageBytes",
            "successRate",
        ],
        "properties": {
            "worldId": {"type": "string"},
            "sceneCount": {"type": "integer"},
            "readyCount": {"type": "integer"},
            "queuedCount": {"type": "integer"},
            "failedCount": {"type": "integer"},
            "storageBytes": {"type": "integer"},
            "successRate": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "additionalProperties": False,
    },
}

CLAIM_RESPONSES = {
    "200": _json("Scene", "The branch: queued if this call claimed it, else as it is."),
    "400": _error("The world needs an API key, or the key was refused."),
    "404": _error("No such world."),
    "409": _error("The branch cannot be claimed now (its scene comes first, or refused)."),
    "413": _error("The request body is too large."),
    "422": _error("A malformed path or body."),
    "429": {
        "description": "Too many claims from this address.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    },
    "503": _error("The server is restarting."),
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Shared World API",
        "version": "1.0.0",
        "description": "The original Shared World web app's world API: one story world per "
        "worldId, minted together. Reads never write; claims are rate-limited per address.",
    },
    "paths": {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness",
                "responses": {"200": _json("Health", "The server is up.")},
            }
        },
        "/worlds/{worldId}": {
            "get": {
                "operationId": "getWorld",
                "summary": "A world's settings",
                "parameters": [WORLD_ID],
                "responses": {"200": _json("World", "The world."), "404": _error("No such world.")},
            }
        },
        "/worlds/{worldId}/scenes": {
            "get": {
                "operationId": "getScene",
                "summary": "A scene and its choices' states (writes nothing)",
                "parameters": [
                    WORLD_ID,
                    {
                        "name": "path",
                        "in": "query",
                        "required": False,
                        "schema": BRANCH_PATH,
                    },
                ],
                "responses": {
                    "200": _json("Scene", "The branch."),
                    "404": _error("No such world, or the branch's scene is not there yet."),
                    "422": _error("A malformed path."),
                },
            },
            "post": {
                "operationId": "claimScene",
                "summary": "Claim a branch: the first explorer starts it, everyone reuses it",
                "parameters": [WORLD_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/ClaimRequest"}
                        }
                    },
                },
                "responses": CLAIM_RESPONSES,
            },
        },
        "/worlds/{worldId}/scenes/{path}/retry": {
            "post": {
                "operationId": "retryScene",
                "summary": "Claim a failed (or pending) branch again",
                "parameters": [
                    WORLD_ID,
                    {
                        "name": "path",
                        "in": "path",
                        "required": True,
                        "description": "The branch, slashes and all (e.g. 0/2/1).",
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/RetryRequest"}
                        }
                    },
                },
                "responses": CLAIM_RESPONSES,
            }
        },
        "/worlds/{worldId}/metrics": {
            "get": {
                "operationId": "worldMetrics",
                "summary": "Counts, storage and success rate of a world",
                "parameters": [WORLD_ID],
                "responses": {
                    "200": _json("Metrics", "The world's metrics."),
                    "404": _error("No such world."),
                },
            }
        },
        "/worlds/{worldId}/trail": {
            "get": {
                "operationId": "getTrail",
                "summary": "The titles of a branch and its ancestors, opening scene first "
                "(ours: the original's scenes have no title field; writes nothing)",
                "parameters": [
                    WORLD_ID,
                    {"name": "path", "in": "query", "required": False, "schema": BRANCH_PATH},
                ],
                "responses": {
                    "200": _json("Trail", "Each step's path and title (null until made)."),
                    "404": _error("No such world."),
                    "422": _error("A malformed path."),
                },
            }
        },
        "/worlds/{worldId}/map.png": {
            "get": {
                "operationId": "worldMap",
                "summary": "A PNG map of the explored tree around a branch (writes nothing)",
                "parameters": [
                    WORLD_ID,
                    {"name": "path", "in": "query", "required": False, "schema": BRANCH_PATH},
                    {
                        "name": "depth",
                        "in": "query",
                        "required": False,
                        "description": "Levels below the branch (default 3).",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 6, "default": 3},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The map: nodes coloured by status, a legend.",
                        "content": {"image/png": {"schema": {"type": "string"}}},
                    },
                    "404": _error("No such world."),
                    "422": _error("A malformed path or depth, or an unexplored branch."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": {"description": "The OpenAPI 3.1 document."}},
            }
        },
    },
    "components": {"schemas": SCHEMAS},
}


def document() -> dict[str, Any]:
    return DOCUMENT


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


def install(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi)
