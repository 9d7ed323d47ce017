"""Real HTTP through a live server: a program with a bearer token registers and reads a patient."""

import json
import urllib.error
import urllib.request

import pytest

from medflow.access.tokens import create_token

pytestmark = pytest.mark.django_db(transaction=True)


def call(url, token=None, method="GET", body=None, headers=None):
    request = urllib.request.Request(url, method=method, headers=headers or {})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def test_register_update_and_read_over_http(live_server, doctor):
    _, token = create_token(doctor)
    base = f"{live_server.url}/api/patients"
    status, _, body = call(base, token, "POST", {
        "mrn": "H-1", "given_names": "Alan", "family_name": "Turing", "birth_date": "1912-06-23"})
    assert status == 201 and body["version"] == 1
    url = f"{base}/{body['id']}"
    status, headers, body = call(url, token, "PATCH", {"phone": "+44 1234"},
                                 headers={"If-Match": '"1"'})
    assert (status, body["version"], headers["ETag"]) == (200, 2, '"2"')
    status, _, body = call(url, token)
    assert (status, body["phone"]) == (200, "+44 1234")
    status, _, body = call(url)
    assert status == 401 and body["error"]["code"] == "unauthenticated"
