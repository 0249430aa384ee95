"""Segmenting tenants from CRM and helpdesk exports: `segment suggest` and `catalog import`."""
