"""Aggregates through the cache: filled after commit, never served stale, and Redis down only
makes MedFlow slower."""

import os
import shutil
import socket
import subprocess
import time

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from medflow.context import system_context
from medflow.errors import RuleViolated
from medflow.eventstore import crypto, store
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


# A command on a stream the cache holds presumes the stream's head from the entry (PostgreSQL),
# and its append checks the presumption: every case below must end as if the head were read.


def _two_versions(clinic):
    """Return a patient at version 2 whose cache entry carries the stream's head."""
    patient_id = new_patient(clinic)
    update_patient(system_context("t"), patient_id, {"phone": "555 0001"}, expected_version=1)
    return patient_id, _cache_key(Patient, patient_id)


def _stored_phones(patient_id):
    return [e.event.payload().get("phone") for e in store.load(patient_id)]


def test_a_command_on_a_cached_stream_does_not_read_its_head(clinic):
    patient_id, key = _two_versions(clinic)
    assert cache.get(key)["head"][0] == str(clinic.id)
    with CaptureQueriesContext(connection) as queries:
        result = update_patient(system_context("t"), patient_id, {"phone": "555 0002"},
                                expected_version=2)
    assert result.version == 3 and _stored_phones(patient_id)[-1] == "555 0002"
    if connection.vendor == "postgresql":
        # No SELECT of the head (the rows may read the append's time back from its stream).
        assert not [q for q in queries if q["sql"].startswith("SELECT")]
        # BEGIN, the append, the read-model rows, COMMIT.
        assert [q["sql"][:4] for q in queries] == ["BEGI", "WITH", "WITH", "COMM"]


def test_a_stale_entry_makes_the_command_read_the_head(clinic):
    patient_id, key = _two_versions(clinic)
    stale = cache.get(key)
    update_patient(system_context("t"), patient_id, {"email": "ida@example.org"},
                   expected_version=2)
    cache.set(key, stale)  # another process's write, not yet in this cache
    result = update_patient(system_context("t"), patient_id, {"phone": "555 0003"},
                            expected_version=None)
    assert result.version == 4
    patient = load_current(Patient, patient_id)
    assert patient.demographics["email"] == "ida@example.org"
    assert patient.demographics["phone"] == "555 0003"
    assert [e.version for e in store.load(patient_id)] == [1, 2, 3, 4]


def test_no_change_on_a_stale_entry_is_checked_against_the_stored_state(clinic):
    patient_id, key = _two_versions(clinic)
    stale = cache.get(key)  # phone 555 0001
    update_patient(system_context("t"), patient_id, {"phone": "555 0009"}, expected_version=2)
    cache.set(key, stale)
    # Against the stale entry this changes nothing; against the stored state it does.
    result = update_patient(system_context("t"), patient_id, {"phone": "555 0001"},
                            expected_version=None)
    assert result.version == 4 and _stored_phones(patient_id)[-1] == "555 0001"


def test_a_refusal_on_an_entry_that_is_not_the_streams_is_decided_again(clinic):
    patient_id, key = _two_versions(clinic)
    entry = cache.get(key)
    # An entry from the future (another database, a rolled-back write) says "archived".
    cache.set(key, {**entry, "version": 9, "state": {**entry["state"], "archived": True}})
    result = update_patient(system_context("t"), patient_id, {"phone": "555 0004"},
                            expected_version=None)
    assert result.version == 3 and _stored_phones(patient_id)[-1] == "555 0004"


def test_a_presumed_key_that_was_destroyed_is_refused(clinic):
    patient_id, key = _two_versions(clinic)
    entry = cache.get(key)
    crypto.destroy(patient_id)  # forgotten by another process: this cache still holds the key
    cache.set(key, entry)
    with pytest.raises(RuleViolated) as refused:
        update_patient(system_context("t"), patient_id, {"phone": "555 0005"},
                       expected_version=2)
    assert refused.value.code == "subject_forgotten"
    assert store.current_version(patient_id) == 2
