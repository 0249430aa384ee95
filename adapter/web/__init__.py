"""HTTP blueprints: webhooks, API, status pages, and ops endpoints."""
