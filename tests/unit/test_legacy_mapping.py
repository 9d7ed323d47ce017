"""Legacy migration, no database: ids, value conversions, and the CSV reader's error messages."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from medflow.legacy import mapping as mp
from medflow.legacy.synthea import LoadError, load_synthea, open_table


def test_aggregate_ids_are_deterministic_per_table_and_row():
    assert mp.aggregate_id("legacy_patients", "1") == mp.aggregate_id("legacy_patients", "1")
    assert mp.aggregate_id("legacy_patients", "1") != mp.aggregate_id("legacy_providers", "1")
    assert mp.aggregate_id("legacy_patients", "1") != mp.aggregate_id("legacy_patients", "2")


def test_fractional_rates_are_rounded_and_others_kept():
    row = SimpleNamespace(systolic=120.0, diastolic=79.6, heart_rate=71.5, respiratory_rate=13.2,
                          temperature_c=37.25, spo2=97.6, weight_kg=70.35, height_cm=None)
    assert mp.vital_values(row) == {"systolic": 120, "diastolic": 80, "heart_rate": 72,
                                    "respiratory_rate": 13, "temperature_c": 37.25, "spo2": 98,
                                    "weight_kg": 70.35}


def test_medication_dose_and_route_from_the_name():
    row = SimpleNamespace(code="895994", description="120 ACTUAT Fluticasone 0.044 MG/ACTUAT "
                          "Metered Dose Inhaler", reason_description="")
    fields = mp.medication_fields(row)
    assert fields["route"] == "inhaled" and fields["dose"] == "0.044 MG/ACTUAT"
    assert fields["reason"] is None


def test_patient_fields_map_gender_and_address():
    row = SimpleNamespace(mrn="m1", first_name="Ann", last_name="Lee", birth_date="2000-01-02",
                          gender="F", address="1 Main St", city="X", state="CA", zip="9", phone="")
    fields = mp.patient_fields(row)
    assert fields["sex"] == "female" and fields["address"]["lines"] == ["1 Main St"]
    assert "phone" not in fields
    assert mp.sex("x") == "unknown"


def test_lab_text_value_and_lab_order_per_encounter():
    when = datetime(2020, 1, 1, tzinfo=UTC)
    row = SimpleNamespace(loinc_code="5767-9", display="Urine appearance", value=None,
                          value_text="Cloudy", unit="", effective_at=when)
    assert mp.lab_fields(row) == {"loinc_code": "5767-9", "display": "Urine appearance",
                                  "effective_at": when, "value_text": "Cloudy"}
    assert mp.lab_order_id("p", "e1", when) == mp.lab_order_id("q", "e1", when)
    assert mp.lab_order_id("p", None, when) != mp.lab_order_id("q", None, when)


def test_missing_patients_file_is_named(tmp_path):
    with pytest.raises(LoadError, match=r"patients\.csv is missing"):
        load_synthea(tmp_path)


def test_required_column_missing_is_named(tmp_path):
    (tmp_path / "patients.csv").write_text("Id,BIRTHDATE,LAST\n1,2000-01-01,Lee\n")
    with pytest.raises(LoadError, match=r"patients\.csv: required column FIRST is missing"):
        load_synthea(tmp_path)


def test_bad_date_is_named_with_line_and_column(tmp_path):
    (tmp_path / "patients.csv").write_text(
        "id,birthdate,first,last\n1,2000-01-01,Ann,Lee\n2,01/02/2000,Bo,Ng\n")
    with pytest.raises(LoadError, match=r"patients.csv line 3, column birthdate: '01/02/2000'"):
        load_synthea(tmp_path)


def test_headers_are_case_insensitive(tmp_path):
    (tmp_path / "Encounters.CSV").write_text("iD,Start\n")
    table = open_table(tmp_path, "encounters")
    assert table.column("ID") == "ID" and table.column("DATE") == "START"
