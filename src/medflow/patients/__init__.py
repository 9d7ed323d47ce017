"""Patients bounded context: registration, demographics, contact, address, archive."""
