"""The measured scenarios; import only after django.setup()."""
