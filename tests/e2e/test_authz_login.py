"""Session login over the API: throttled (django-axes), TOTP second factor (django-otp), idle timeout."""

import io

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-1"  # make_staff's


def login(client, username, password, **extra):
    return client.post("/api/auth/login", {"username": username, "password": password, **extra},
                       content_type="application/json")


def current_code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def test_login_starts_a_session_and_logout_ends_it(doctor, settings):
    client = Client()
    assert client.get("/api/patients").status_code == 401
    response = login(client, doctor.username, PASSWORD)
    assert response.status_code == 200, response.content
    assert response.json() == {"user_id": doctor.pk, "username": doctor.username}
    # The session ends after MEDFLOW_SESSION_IDLE_MINUTES without a request.
    assert response.cookies["sessionid"]["max-age"] == settings.MEDFLOW_SESSION_IDLE_MINUTES * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST
    assert client.get("/api/patients").status_code == 200
    assert client.post("/api/auth/logout").status_code == 204
    assert client.get("/api/patients").status_code == 401


def test_login_wants_json(doctor):
    # What a cross-site form can send: JSON text as text/plain.
    body = f'{{"username": "{doctor.username}", "password": "{PASSWORD}"}}'
    form = Client().post("/api/auth/login", body, content_type="text/plain")
    assert form.status_code == 415
    assert form.json()["error"]["code"] == "unsupported_media_type"


def test_wrong_password_is_refused(doctor):
    response = login(Client(), doctor.username, "not-the-password")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "login_failed"
    unknown = login(Client(), "nobody", "whatever")
    assert unknown.status_code == 401 and unknown.json()["error"]["code"] == "login_failed"


def test_bad_body_names_the_field():
    response = Client().post("/api/auth/login", {"username": "x"}, content_type="application/json")
    assert response.status_code == 422 and response.json()["error"]["field"] == "password"


def test_lockout_after_the_failure_limit(doctor, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        assert login(client, doctor.username, "wrong").status_code == 401
    third = login(client, doctor.username, "wrong")
    assert third.status_code == 429 and third.json()["error"]["code"] == "locked_out"
    # Locked out: even the right password is refused now, and no session starts.
    right = login(client, doctor.username, PASSWORD)
    assert right.status_code == 429 and right.json()["error"]["code"] == "locked_out"
    assert client.get("/api/patients").status_code == 401
    assert AccessAttempt.objects.get(username=doctor.username).failures_since_start >= 3


def test_success_resets_the_failure_count(doctor, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client()
    for _ in range(2):
        login(client, doctor.username, "wrong")
    assert login(client, doctor.username, PASSWORD).status_code == 200
    for _ in range(2):
        assert login(Client(), doctor.username, "wrong").status_code == 401


def test_django_login_view_is_throttled_too(doctor, settings):
    settings.AXES_FAILURE_LIMIT = 2
    client = Client()
    for _ in range(2):
        client.post("/login/", {"username": doctor.username, "password": "wrong"})
    response = client.post("/login/", {"username": doctor.username, "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_totp_user_must_give_a_current_code(doctor, settings):
    # django-otp also slows a device down after a wrong code (1 s, doubling); not under test here.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = TOTPDevice.objects.create(user=doctor, name="default", confirmed=True)
    client = Client()
    without = login(client, doctor.username, PASSWORD)
    assert without.status_code == 401
    assert without.json()["error"] == {
        "code": "otp_required", "field": "otp",
        "message": "a valid one-time code (otp) is required for this user"}
    wrong = login(client, doctor.username, PASSWORD, otp="000000" if current_code(device) != "000000"
                  else "111111")
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "login_failed"
    assert client.get("/api/patients").status_code == 401
    right = login(client, doctor.username, PASSWORD, otp=current_code(device))
    assert right.status_code == 200, right.content
    assert client.get("/api/patients").status_code == 200


def test_unconfirmed_device_asks_for_no_code(doctor):
    TOTPDevice.objects.create(user=doctor, name="default", confirmed=False)
    assert login(Client(), doctor.username, PASSWORD).status_code == 200


def test_staff_totp_prints_a_provisioning_uri_and_confirms(doctor):
    out = io.StringIO()
    call_command("staff", "totp", doctor.username, stdout=out)
    uri = out.getvalue().strip()
    assert uri.startswith("otpauth://totp/MedFlow%3A" + doctor.username + "?secret=")
    device = TOTPDevice.objects.get(user=doctor)
    assert not device.confirmed
    call_command("staff", "totp", doctor.username, "--confirm", current_code(device),
                 stdout=io.StringIO())
    device.refresh_from_db()
    assert device.confirmed
    assert login(Client(), doctor.username, PASSWORD).status_code == 401  # now needs otp
    call_command("staff", "totp", doctor.username, "--remove", stdout=io.StringIO())
    assert not TOTPDevice.objects.filter(user=doctor).exists()
