"""Clinician web UI: server-rendered templates over the same queries and services as the API."""
