"""dualtrack: monitoring alerts in, dual-track (technical and business) incident notices out."""

__version__ = "0.1.0"
