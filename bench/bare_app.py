"""Baseline for bench/ingest.py: a Flask app that only parses the Alertmanager body."""

import json
import os

from flask import Flask, request

app = Flask(__name__)
# Each worker loads the app after it is forked: this says it serves (see bench/ingest.py).
print(f"bare worker ready pid={os.getpid()}", flush=True)


@app.post("/webhooks/alertmanager")
def alertmanager() -> tuple[dict, int]:
    json.loads(request.get_data())
    return {}, 202
