"""dualtrack test suite."""
