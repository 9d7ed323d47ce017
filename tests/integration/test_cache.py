"""Aggregates through the cache: filled after commit, never served stale, and Redis down only
makes MedFlow slower."""

import os
import shutil
import socket
import subprocess
import time

import pytest
from django.test import override_settings

from medflow.context import system_context
from medflow.eventstore.cache import cache
from medflow.eventstore.commands import _cache_key, load_current
from medflow.patients.domain import Patient
from medflow.patients.services import register_patient, update_patient

pytestmark = pytest.mark.django_db(transaction=True)


def new_patient(clinic):
    return register_patient(system_context("t"), clinic_id=clinic.id, mrn="C-1", given_names="Ida",
                            family_name="Noddack", birth_date="1896-02-25").aggregate_id


def test_command_caches_the_committed_state(clinic):
    patient_id = new_patient(clinic)
    entry = cache.get(_cache_key(Patient, patient_id))
    assert entry["version"] == 1 and entry["state"]["family_name"] == "Noddack"
    update_patient(system_context("t"), patient_id, {"family_name": "Tacke"}, expected_version=1)
    assert cache.get(_cache_key(Patient, patient_id))["state"]["family_name"] == "Tacke"


def test_a_rejected_command_leaves_the_cache_alone(clinic):
    patient_id = new_patient(clinic)
    with pytest.raises(Exception):  # noqa: B017
        update_patient(system_context("t"), patient_id, {"birth_date": "2999-01-01"},
                       expected_version=1)
    assert cache.get(_cache_key(Patient, patient_id))["version"] == 1


def test_loads_use_the_cache_but_never_a_stale_version(clinic):
    patient_id = new_patient(clinic)
    key = _cache_key(Patient, patient_id)
    entry = cache.get(key)
    # An entry at the current version is used as it is (proof that the cache is read) ...
    cache.set(key, {**entry, "state": {**entry["state"], "family_name": "FromCache"}})
    assert load_current(Patient, patient_id).demographics["family_name"] == "FromCache"
    # ... an older one is brought up to date from the log ...
    update_patient(system_context("t"), patient_id, {"phone": "555 0100"}, expected_version=1)
    cache.set(key, {**entry, "state": {**entry["state"], "family_name": "Old"}})
    patient = load_current(Patient, patient_id)
    assert (patient.version, patient.demographics["phone"]) == (2, "555 0100")
    # ... and one from the future (another database, a rolled-back write) is ignored.
    cache.set(key, {**entry, "version": 9, "state": {"bogus": True}})
    assert load_current(Patient, patient_id).demographics["family_name"] == "Noddack"
    assert cache.stats()["hits"] >= 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def private_redis(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server is not installed")
    port = _free_port()
    server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield server, f"redis://127.0.0.1:{port}/0"
    server.kill()
    server.wait()


def test_with_redis_stopped_commands_still_work(clinic, private_redis):
    server, url = private_redis
    config = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                          "LOCATION": url, "KEY_PREFIX": "t",
                          "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
    with override_settings(CACHES=config):
        patient_id = new_patient(clinic)
        assert cache.get(_cache_key(Patient, patient_id))["version"] == 1
        server.kill()
        server.wait()
        result = update_patient(system_context("t"), patient_id, {"phone": "555 0199"},
                                expected_version=1)
        assert result.version == 2
        assert load_current(Patient, patient_id).demographics["phone"] == "555 0199"
        stats = cache.stats()
        assert stats["errors"] >= 1 and stats["backing_off"]
