"""Patient timeline: every event about a patient, from every context, newest first."""
