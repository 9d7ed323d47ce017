"""MedFlow: an event-sourced patient record system."""
