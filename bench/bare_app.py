"""Baseline for bench/ingest.py: a Flask app that only parses the Alertmanager body."""

import json

from flask import Flask, request

app = Flask(__name__)


@app.post("/webhooks/alertmanager")
def alertmanager() -> tuple[dict, int]:
    json.loads(request.get_data())
    return {}, 202
