"""Scheduling bounded context: appointments."""
