"""Clinical bounded context: encounters, vital signs, diagnoses, prescriptions, clinical notes."""
