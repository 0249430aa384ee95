"""End-to-end tests with real dualtrack, Alertmanager and HTTP sinks."""
