"""Form helpers of the web UI: errors land on the field they name."""

from medflow.errors import InvalidInput
from medflow.web.forms import GENERAL, Field, Form, field_for

FIELDS = [Field("mrn", "MRN", required=True), Field("family_name", "Family name", required=True),
          Field("phone", "Phone"), Field("version", "", "hidden")]


def test_error_fields_map_onto_form_fields():
    names = ["mrn", "city", "loinc_code"]
    assert field_for("mrn", names) == "mrn"
    assert field_for("address.city", names) == "city"
    assert field_for("tests.0.loinc_code", names) == "loinc_code"
    assert field_for("role", names) == GENERAL
    assert field_for(None, names) == GENERAL


def test_required_fields_are_all_checked_at_once():
    form = Form(FIELDS, {"phone": "1"})
    assert not form.check_required()
    assert form.errors == {"mrn": "MRN is required.", "family_name": "Family name is required."}
    assert form.first_error_field == "mrn"
    assert Form(FIELDS, {"mrn": "1", "family_name": "X"}).check_required()


def test_a_refusal_names_the_field_by_its_label():
    form = Form(FIELDS)
    form.fail(InvalidInput("family_name: String should have at least 1 character",
                           field="family_name"))
    form.fail(InvalidInput("the clinic is closed", field="role"))
    assert form.errors == {"family_name": "Family name: String should have at least 1 character",
                           GENERAL: "The clinic is closed"}
    assert form.field_errors == [("family_name", form.errors["family_name"])]


def test_parse_errors_name_the_label():
    form = Form([Field("weight_kg", "Weight (kg)", "number")], {"weight_kg": "heavy"})
    try:
        form.number("weight_kg")
    except InvalidInput as exc:
        assert exc.field == "weight_kg" and exc.message == "Weight (kg) must be a number"
    else:
        raise AssertionError("a word is not a number")
