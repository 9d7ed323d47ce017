"""Form helpers of the web UI: errors land on the field they name."""

from medflow.web.forms import GENERAL, field_for


def test_error_fields_map_onto_form_fields():
    names = ["mrn", "city", "loinc_code"]
    assert field_for("mrn", names) == "mrn"
    assert field_for("address.city", names) == "city"
    assert field_for("tests.0.loinc_code", names) == "loinc_code"
    assert field_for("role", names) == GENERAL
    assert field_for(None, names) == GENERAL
