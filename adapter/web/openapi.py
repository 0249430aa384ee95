"""GET /api/v1/openapi.json: the API's OpenAPI 3.1 document, to anyone (it holds no secrets)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response, jsonify

from adapter.web.api import ApproveBody, DeclareBody, PatchBody, PostmortemBody, ResolveBody, UpdateBody

# Its own blueprint: the api blueprint asks every request for a token, and this needs none.
bp = Blueprint("openapi", __name__)
DOCUMENT = Path(__file__).with_name("openapi.yaml")


@functools.cache
def document() -> dict[str, Any]:
    """openapi.yaml, with the request bodies' schemas added from their models."""
    spec: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    # The models are what refuses a body, so their own schemas cannot drift from what the API
    # takes; responses are plain dicts (serialize.py), written out in the file and tested.
    schemas = spec["components"]["schemas"]
    for model in (DeclareBody, UpdateBody, PatchBody, ResolveBody, PostmortemBody, ApproveBody):
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return spec


@bp.get("/api/v1/openapi.json")
def openapi() -> Response:
    return jsonify(document())
