"""The `medflow` command: Django's command line with MedFlow's settings."""

import os
import sys


def main() -> None:
    """Run a Django management command with MedFlow's settings."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medflow.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
