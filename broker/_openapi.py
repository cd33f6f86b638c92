"""The ingress API's OpenAPI 3.1 description (served at ``/openapi.json``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from broker._problems import PROBLEM_BASE, PROBLEM_TYPES


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


@cache
def openapi_document() -> dict[str, Any]:
    sid = {"name": "submission_id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "nsw-broker ingress",
            "version": "1",
            "description": "Lodge a WCO Data Model declaration once; get one release response.",
        },
        "paths": {
            "/v1/submissions": {
                "post": {
                    "summary": "Lodge a declaration",
                    "requestBody": {"required": True, "content": {
                        "application/xml": {"schema": {"type": "string"}},
                    }},
                    "responses": {
                        "202": {"description": "Accepted: durably on nsw.submissions",
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
                        "400": _problem_response("Not well-formed, wrong encoding or forbidden construct"),
                        "408": _problem_response("Request head or body not received in time"),
                        "413": _problem_response("Too large, or its messages could not fit the Kafka record budget"),
                        "415": _problem_response("Unsupported media type"),
                        "422": _problem_response("Schema or business-rule violation, or a limit exceeded"),
                        "429": _problem_response("Over the trader's rate or concurrency limit (Retry-After)"),
                        "431": _problem_response("Request head too large"),
                        "503": _problem_response("Overloaded or Kafka unavailable (Retry-After)"),
                    },
                }
            },
            "/v1/submissions/{submission_id}": {
                "get": {
                    "summary": "Current status, routing, per-agency decisions and, once final, the release response",
                    "parameters": [sid],
                    "responses": {"200": {"description": "Status",
                                          "content": {"application/json": {"schema": {"type": "object"}}}},
                                  "404": _problem_response("Unknown submission")},
                }
            },
            "/v1/submissions/{submission_id}/response": {
                "get": {
                    "summary": "The release response; wait=N long-polls up to N seconds (max 60)",
                    "parameters": [sid, {"name": "wait", "in": "query", "schema": {"type": "number"}}],
                    "responses": {"200": {"description": "Release response"},
                                  "202": {"description": "No final answer yet"},
                                  "404": _problem_response("Unknown submission")},
                }
            },
            "/healthz": {"get": {"summary": "Liveness", "responses": {"200": {"description": "alive"}}}},
        },
        "components": {"schemas": {
            "Accepted": {"type": "object", "required": ["submission_id", "status", "links"], "properties": {
                "submission_id": {"type": "string"}, "status": {"type": "string"},
                "version": {"type": "integer"}, "trader_reference": {"type": "string"},
                "links": {"type": "object"}}},
            "Problem": {"type": "object", "required": ["type", "title", "status"], "properties": {
                "type": {"type": "string", "enum": [PROBLEM_BASE + slug for slug in PROBLEM_TYPES]},
                "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object", "properties": {
                    "message": {"type": "string"}, "line": {"type": ["integer", "null"]},
                    "path": {"type": ["string", "null"]}}}}}},
        }},
    }
