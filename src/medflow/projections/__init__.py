"""Projections: read models fed by the event log, their checkpoints, catch-up runner and rebuild."""
