"""The medflow command line: clinics, staff, tokens, demo data."""

import io
import os
import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from medflow.access.models import ApiToken, ClinicReadModel, Membership
from medflow.access.tokens import authenticate
from medflow.eventstore.models import StoredEvent

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_clinic_staff_and_token_commands():
    run("clinic", "create", "North Clinic", "--code", "north")
    clinic = ClinicReadModel.objects.get(code="north")
    assert StoredEvent.objects.filter(aggregate_id=clinic.id, event_type="ClinicCreated").exists()
    run("staff", "create", "nurse_joy", "--clinic", "north", "--role", "nurse",
        "--password", "long-enough-pw")
    user = get_user_model().objects.get(username="nurse_joy")
    assert user.password.startswith("argon2")
    assert Membership.objects.get(user=user).role == "nurse"
    raw = run("token", "create", "nurse_joy", "--days", "2")
    assert raw.startswith("mf_") and authenticate(raw) == user
    assert not ApiToken.objects.filter(key_hash__contains=raw).exists()
    run("token", "revoke", raw[:12])
    assert authenticate(raw) is None
    run("staff", "revoke", "nurse_joy", "--clinic", "north")
    assert not Membership.objects.filter(user=user).exists()


def test_cli_mistakes_are_command_errors():
    run("clinic", "create", "North", "--code", "north")
    with pytest.raises(CommandError, match="code"):
        run("clinic", "create", "Again", "--code", "north")
    with pytest.raises(CommandError, match="no user"):
        run("token", "create", "ghost")
    with pytest.raises(CommandError, match="clinic"):
        run("staff", "create", "x", "--clinic", "nowhere", "--role", "nurse", "--password", "p" * 9)
    assert not get_user_model().objects.filter(username="x").exists()
    with pytest.raises(CommandError, match="8 characters"):
        run("staff", "create", "y", "--clinic", "north", "--role", "nurse", "--password", "short")


def test_demo_user_is_refused_outside_development(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="development"):
        run("demo", "load")
    assert not get_user_model().objects.filter(username="demo").exists()


def test_production_settings_refuse_to_start_without_secret_key(tmp_path):
    env = {**os.environ, "DEBUG": "false", "SECRET_KEY": "", "MEDFLOW_VAR_DIR": str(tmp_path),
           "DATABASE_URL": ""}
    result = subprocess.run(
        [sys.executable, "-m", "medflow", "check"], env=env, capture_output=True, text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_development_secret_key_is_generated_once_and_kept(tmp_path):
    env = {**os.environ, "DEBUG": "true", "SECRET_KEY": "", "MEDFLOW_VAR_DIR": str(tmp_path),
           "DATABASE_URL": ""}
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    keys = [
        subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"],
                       env={**env, "DJANGO_SETTINGS_MODULE": "medflow.settings"},
                       capture_output=True, text=True, timeout=60).stdout.strip()
        for _ in range(2)
    ]
    assert keys[0] and keys[0] == keys[1]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
