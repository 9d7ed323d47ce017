"""Demo data for `make run`: a clinic, a demo user and sample patients, entered through services."""
