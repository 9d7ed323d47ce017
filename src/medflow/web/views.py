"""Pages of the clinician web UI. Thin like the API: parse, call a query or a service with the
request's context (context_for), render. Patient data is read only through the query layer, so
that every page that shows a patient is in the access log."""

from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from medflow.access.models import Membership
from medflow.access.permissions import allows
from medflow.access.request_context import context_for
from medflow.clinical import queries as clinical_queries
from medflow.clinical import services as clinical
from medflow.context import Context
from medflow.errors import Gone, InvalidInput, MedflowError, NotFound, PermissionDenied
from medflow.labs import queries as lab_queries
from medflow.labs import services as labs
from medflow.patients import queries as patient_queries
from medflow.patients import services as patients
from medflow.scheduling import queries as scheduling_queries
from medflow.scheduling import services as scheduling
from medflow.timeline.queries import patient_timeline
from medflow.web import charts
from medflow.web import queries as web_queries
from medflow.web.forms import Field, Form, conflict_message, parse_local_datetime
from medflow.web.middleware import SESSION_KEY
from medflow.work import queries as work_queries

# The chart's "latest" line, in reading order: measurement name -> label.
VITAL_LABELS = {"systolic": "Systolic BP", "diastolic": "Diastolic BP", "heart_rate": "Heart rate",
                "respiratory_rate": "Respiratory rate", "temperature_c": "Temperature",
                "spo2": "SpO2", "weight_kg": "Weight", "height_cm": "Height", "bmi": "BMI"}
TIMELINE_KINDS = ("patient", "vitals", "diagnosis", "allergy", "medication", "lab", "note",
                  "encounter", "appointment", "task", "alert")


# Plumbing ---------------------------------------------------------------------------------------

def _memberships(request: HttpRequest) -> list[Membership]:
    return list(Membership.objects.filter(user=request.user).select_related("clinic")
                .order_by("clinic__name"))


def page(request: HttpRequest, template: str, status: int = 200, **context: Any) -> HttpResponse:
    """Render a page with the navigation's context: the user's clinics and role."""
    memberships = _memberships(request) if request.user.is_authenticated else []
    active = request.session.get(SESSION_KEY) if hasattr(request, "session") else None
    ctx = getattr(request, "_medflow_context", None)
    context.update(
        memberships=memberships, active_clinic=active,
        active_clinic_name=next((m.clinic.name for m in memberships if str(m.clinic_id) == active),
                                memberships[0].clinic.name if len(memberships) == 1 else ""),
        role=ctx.role if ctx else "",
    )
    return render(request, f"web/{template}", context, status=status)


def ui(view: Callable) -> Callable:
    """Log in first; show refused reads as the matching error page."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except PermissionDenied as exc:
            if exc.field == "X-Clinic-ID":  # the chosen clinic is no longer theirs
                request.session.pop(SESSION_KEY, None)
                return HttpResponseRedirect(reverse("web:dashboard"))
            return page(request, "error.html", 403, title="Not allowed", message=exc.message)
        except NotFound as exc:
            return page(request, "error.html", 404, title="Not found", message=exc.message)
        except Gone as exc:
            return page(request, "error.html", 410, title="Record forgotten", message=exc.message)
        except InvalidInput as exc:
            return page(request, "error.html", 400, title="Invalid request", message=exc.message)

    return wrapper


def _as_of(request: HttpRequest) -> datetime | None:
    return parse_local_datetime(request.GET.get("as_of", ""), "as_of")


def _chart_url(patient_id: UUID, anchor: str = "") -> str:
    return reverse("web:chart", args=[patient_id]) + (f"#{anchor}" if anchor else "")


def _patient_header(ctx: Context, patient_id: UUID) -> dict[str, Any]:
    view = patient_queries.get_patient(ctx, patient_id)
    return {**view.data, "version": view.version}


def _form_page(request: HttpRequest, form: Form, *, title: str, patient: dict | None,
               submit: str, cancel: str, status: int | None = None) -> HttpResponse:
    code = status or (422 if form.errors else 200)
    return page(request, "form.html", code, form=form, title=title, patient=patient, submit=submit,
                cancel=cancel, reload=request.path)


def _run_form(request: HttpRequest, fields: list[Field], *, title: str, submit: str,
              patient: dict | None, cancel: str, initial: dict | None = None,
              action: Callable[[Form], Any], done: Callable[[Any], str], success: str,
              aggregate_id: UUID | None = None) -> HttpResponse:
    """GET shows the form; POST runs `action` and redirects, or shows the errors by field."""
    if request.method != "POST":
        return _form_page(request, Form(fields, initial), title=title, patient=patient,
                          submit=submit, cancel=cancel)
    form = Form.from_post(fields, request.POST)
    if not form.check_required():
        return _form_page(request, form, title=title, patient=patient, submit=submit,
                          cancel=cancel)
    try:
        result = action(form)
    except MedflowError as exc:
        if isinstance(exc, NotFound) and exc.field == "id":
            raise
        form.fail(exc, aggregate_id=aggregate_id)
        status = 409 if exc.code == "version_conflict" else None
        return _form_page(request, form, title=title, patient=patient, submit=submit,
                          cancel=cancel, status=status)
    messages.success(request, success)
    return HttpResponseRedirect(done(result))


def _post_action(request: HttpRequest, patient_id: UUID, action: Callable[[], Any], success: str,
                 aggregate_id: UUID, anchor: str) -> HttpResponse:
    """Run a one-button command (approve, sign, check in) and go back to the chart."""
    try:
        action()
    except MedflowError as exc:
        if exc.code == "version_conflict":
            messages.error(request, conflict_message(aggregate_id, exc))
        elif isinstance(exc, NotFound) and exc.field == "id":
            raise
        else:
            messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return HttpResponseRedirect(_chart_url(patient_id, anchor))


def _version(request: HttpRequest) -> int | None:
    raw = request.POST.get("version", "")
    try:
        return int(raw) if raw else None
    except ValueError:
        raise InvalidInput("version must be a whole number", field="version") from None


# Clinic switcher and dashboard ------------------------------------------------------------------

@require_POST
@login_required
def switch_clinic(request: HttpRequest) -> HttpResponse:
    """Act in one of the user's clinics from now on (or in all of them, when empty)."""
    chosen = request.POST.get("clinic_id", "")
    if not chosen:
        request.session.pop(SESSION_KEY, None)
    elif any(str(m.clinic_id) == chosen for m in _memberships(request)):
        request.session[SESSION_KEY] = chosen
    else:
        return page(request, "error.html", 400, title="Invalid request",
                    message="You do not work in that clinic.")
    target = request.POST.get("next", "")
    return HttpResponseRedirect(target if target.startswith("/") and not target.startswith("//")
                                else reverse("web:dashboard"))


@ui
def dashboard(request: HttpRequest) -> HttpResponse:
    ctx = context_for(request)
    today = timezone.localdate()
    day = []
    if ctx.role in ("doctor", "nurse"):
        # provider_day, task_queue and alert_list log the patients they show.
        day = scheduling_queries.provider_day(ctx, request.user.pk, today,
                                              timezone.get_current_timezone())
    task_total, tasks = work_queries.task_queue(ctx, limit=20)
    alert_total, alerts = work_queries.alert_list(ctx, limit=20)
    return page(request, "dashboard.html", today=today, day=day, tasks=tasks, task_total=task_total,
                alerts=alerts, alert_total=alert_total)


# Search -----------------------------------------------------------------------------------------

def _search(ctx: Context, q: str) -> list:
    q = q.strip()
    if not q:
        return []
    born = parse_date(q) if len(q) == 10 else None
    if born is not None:
        return web_queries.patients_born_on(ctx, born)
    return patient_queries.search_patients(ctx, q, limit=20)[1]


@ui
def search(request: HttpRequest) -> HttpResponse:
    q = request.GET.get("q", "")
    return page(request, "search.html", q=q, results=_search(context_for(request), q), searched=bool(q))


@ui
def search_results(request: HttpRequest) -> HttpResponse:
    """The results fragment the search box fetches as the user types."""
    q = request.GET.get("q", "")
    return render(request, "web/_results.html",
                  {"results": _search(context_for(request), q), "q": q, "searched": bool(q.strip())})


# Patient chart ----------------------------------------------------------------------------------

def _svg(chart: charts.Chart) -> dict[str, Any]:
    return {"chart": chart, "svg": mark_safe(charts.render(chart))}  # escaped by render()


@ui
def chart(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    as_of = _as_of(request)
    if as_of is not None and as_of > timezone.now():
        raise InvalidInput("as_of must not be in the future", field="as_of")
    appointments = scheduling_queries.patient_appointments(ctx, patient_id, as_of=as_of)
    if not allows(ctx.role, "clinical.read"):
        # Receptionists see demographics and appointments, no clinical detail.
        view = (patient_queries.get_patient(ctx, patient_id) if as_of is None
                else patient_queries.get_patient_at(ctx, patient_id, as_of=as_of))
        return page(request, "chart.html", patient={**view.data, "version": view.version},
                    as_of=as_of, clinical=False, appointments=appointments)
    record = clinical_queries.patient_chart(ctx, patient_id, as_of=as_of)
    series = clinical_queries.vital_signs_series(ctx, patient_id, as_of=as_of, limit=200)
    vitals_rows = [(row.effective_at, row.data) for row in series]
    results = lab_queries.patient_lab_results(ctx, patient_id, as_of=as_of)
    orders = lab_queries.patient_lab_orders(ctx, patient_id, as_of=as_of)
    return page(
        request, "chart.html", patient=record["patient"], as_of=as_of, clinical=True,
        record=record, appointments=appointments,
        vitals=list(reversed(vitals_rows))[:10],
        vital_charts=[_svg(c) for c in charts.vital_charts(vitals_rows)],
        recent_labs=list(reversed(results))[:15],
        lab_charts=[_svg(c) for c in charts.lab_charts(results)[:6]],
        open_orders=[o for o in orders if o["status"] == "placed"
                     or (o["status"] == "resulted" and o["result_count"] < len(o["tests"]))][:10],
        latest_vitals=_latest_vitals(record["latest_vitals"]),
    )


def _latest_vitals(latest: dict[str, dict]) -> list[dict[str, Any]]:
    """Return the latest value of each vital sign, labelled, in the usual reading order."""
    order = list(VITAL_LABELS)
    names = sorted(latest, key=lambda n: (order.index(n) if n in order else len(order), n))
    return [{"label": VITAL_LABELS.get(name, name.replace("_", " ")), **latest[name]}
            for name in names]


@ui
def timeline(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    as_of = _as_of(request)
    kind = request.GET.get("kind", "")
    if kind and kind not in TIMELINE_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(TIMELINE_KINDS)}", field="kind")
    total, entries = patient_timeline(ctx, patient_id, kinds=[kind] if kind else None, as_of=as_of,
                                      limit=200)
    return page(request, "timeline.html", patient=_patient_header(ctx, patient_id), entries=entries,
                total=total, kind=kind, kinds=TIMELINE_KINDS, as_of=as_of)


DIFF_FIELDS = ("mrn", "given_names", "family_name", "birth_date", "sex", "phone", "email",
               "address", "archived")


@ui
def history(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    """The patient's demographics at two points in time, side by side, changes marked."""
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)
    events = patient_queries.patient_history(ctx, patient_id)
    before = parse_local_datetime(request.GET.get("before", ""), "before")
    after = parse_local_datetime(request.GET.get("after", ""), "after")
    rows, not_yet = [], False
    if before or after:
        a_data = _patient_at(ctx, patient_id, before) if before else {}
        not_yet = before is not None and not a_data
        b_data = _patient_at(ctx, patient_id, after) if after else patient
        for name in DIFF_FIELDS:
            old, new = a_data.get(name), b_data.get(name)
            rows.append({"name": name, "before": _show(old), "after": _show(new),
                         "changed": old != new})
    return page(request, "history.html", patient=patient, events=events, rows=rows,
                before=request.GET.get("before", ""), after=request.GET.get("after", ""),
                not_yet=not_yet)


def _patient_at(ctx: Context, patient_id: UUID, when: datetime) -> dict[str, Any]:
    """Return the demographics as they stood at a time (empty before the registration)."""
    try:
        return patient_queries.get_patient_at(ctx, patient_id, as_of=when).data
    except NotFound as exc:
        if exc.field != "as_of":
            raise
        return {}


def _show(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        lines = [*value.get("lines", []), value.get("city", ""), value.get("state", ""),
                 value.get("postal_code", ""), value.get("country", "")]
        return ", ".join(str(part) for part in lines if part)
    return str(value)


@ui
def audit(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    only = request.GET.get("break_glass") == "1"
    total, entries = web_queries.access_log(ctx, patient_id, break_glass_only=only)
    return page(request, "audit.html", patient=_patient_header(ctx, patient_id), entries=entries,
                total=total, break_glass_only=only,
                grants=web_queries.break_glass_grants(ctx, patient_id))


# Patient forms ----------------------------------------------------------------------------------

SEX = (("unknown", "Unknown"), ("female", "Female"), ("male", "Male"), ("other", "Other"))
PATIENT_FIELDS = [
    Field("mrn", "MRN", required=True),
    Field("given_names", "Given names", required=True),
    Field("family_name", "Family name", required=True),
    Field("birth_date", "Birth date", "date", required=True),
    Field("sex", "Sex", "select", choices=SEX),
    Field("phone", "Phone", "tel"),
    Field("email", "Email", "email"),
    Field("address_line", "Address"),
    Field("city", "City"),
    Field("postal_code", "Postal code"),
    Field("country", "Country"),
]
ADDRESS_PARTS = ("city", "postal_code", "country")


def _patient_values(form: Form) -> dict[str, Any]:
    values: dict[str, Any] = {name: form.text(name) for name in
                              ("mrn", "given_names", "family_name", "sex", "phone", "email")}
    values["birth_date"] = form.date("birth_date")
    address = {name: form.values.get(name, "") for name in ADDRESS_PARTS}
    line = form.values.get("address_line", "")
    if line or any(address.values()):
        values["address"] = {"lines": [line] if line else [], **address}
    else:
        values["address"] = None
    return values


@ui
def patient_new(request: HttpRequest) -> HttpResponse:
    ctx = context_for(request)

    def action(form: Form):
        if len(ctx.clinic_ids) != 1:
            raise InvalidInput("choose the clinic you work in first (top of the page)",
                               field="clinic_id")
        values = {k: v for k, v in _patient_values(form).items() if v is not None}
        return patients.register_patient(ctx, clinic_id=next(iter(ctx.clinic_ids)), **values)

    return _run_form(request, PATIENT_FIELDS, title="Register a patient", submit="Register",
                     patient=None, cancel=reverse("web:search"), action=action,
                     done=lambda r: _chart_url(r.aggregate_id), success="Patient registered.")


@ui
def patient_edit(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)
    address = patient.get("address") or {}
    initial = {name: patient.get(name) or "" for name in
               ("mrn", "given_names", "family_name", "birth_date", "sex", "phone", "email")}
    initial |= {"address_line": (address.get("lines") or [""])[0],
                **{name: address.get(name, "") for name in ADDRESS_PARTS},
                "version": patient["version"]}
    fields = [*PATIENT_FIELDS, Field("version", "Version", "hidden")]

    def action(form: Form):
        values = _patient_values(form)
        changes = {k: v for k, v in values.items()
                   if _show(v) != _show(patient.get(k)) and not (v is None and not patient.get(k))}
        return patients.update_patient(ctx, patient_id, changes,
                                       expected_version=form.number("version", int))

    return _run_form(request, fields, title="Update demographics", submit="Save",
                     patient=patient, cancel=_chart_url(patient_id), initial=initial, action=action,
                     done=lambda r: _chart_url(patient_id), success="Demographics saved.",
                     aggregate_id=patient_id)


# Clinical forms ---------------------------------------------------------------------------------

VITAL_FIELDS = [
    Field("measured_at", "Measured at", "datetime-local", help="Leave empty for now."),
    Field("systolic", "Systolic BP (mmHg)", "number"),
    Field("diastolic", "Diastolic BP (mmHg)", "number"),
    Field("heart_rate", "Heart rate (bpm)", "number"),
    Field("respiratory_rate", "Respiratory rate (breaths/min)", "number"),
    Field("temperature_c", "Temperature (°C)", "number", step="0.1"),
    Field("spo2", "SpO2 (%)", "number"),
    Field("weight_kg", "Weight (kg)", "number", step="0.1"),
    Field("height_cm", "Height (cm)", "number", step="0.1"),
]
INTEGER_VITALS = {"systolic", "diastolic", "heart_rate", "respiratory_rate", "spo2"}


@ui
def vitals_new(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)

    def action(form: Form):
        values = {}
        for f in VITAL_FIELDS[1:]:
            value = form.number(f.name, int if f.name in INTEGER_VITALS else float)
            if value is not None:
                values[f.name] = value
        return clinical.record_vital_signs(ctx, patient_id=patient_id,
                                           measured_at=form.datetime("measured_at"), **values)

    return _run_form(request, [*VITAL_FIELDS, Field("vital_signs", "", "hidden")],
                     title="Record vital signs", submit="Record", patient=patient,
                     cancel=_chart_url(patient_id), action=action,
                     done=lambda r: _chart_url(patient_id, "vitals"), success="Vital signs recorded.")


CODE_SYSTEMS = (("SNOMED CT", "SNOMED CT"), ("ICD-10", "ICD-10"))
STATUSES = tuple((s, s.title()) for s in ("active", "recurrence", "relapse", "inactive",
                                          "remission", "resolved"))


@ui
def diagnosis_new(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)
    fields = [
        Field("code_system", "Code system", "select", required=True, choices=CODE_SYSTEMS),
        Field("code", "Code", required=True),
        Field("display", "Description", required=True),
        Field("clinical_status", "Status", "select", choices=STATUSES),
        Field("onset_date", "Onset date", "date"),
    ]

    def action(form: Form):
        return clinical.add_diagnosis(
            ctx, patient_id=patient_id, code_system=form.values["code_system"],
            code=form.values["code"], display=form.values["display"],
            clinical_status=form.values["clinical_status"] or "active",
            onset_date=form.date("onset_date"))

    return _run_form(request, fields, title="Add a diagnosis", submit="Add", patient=patient,
                     cancel=_chart_url(patient_id), action=action,
                     done=lambda r: _chart_url(patient_id, "problems"), success="Diagnosis added.")


ALLERGY_SYSTEMS = (("SNOMED CT", "SNOMED CT"), ("RxNorm", "RxNorm"))
ALLERGY_CATEGORIES = tuple((c, c.title()) for c in ("medication", "food", "environment", "biologic"))
ALLERGY_TYPES = (("allergy", "Allergy"), ("intolerance", "Intolerance (not immune)"))
CRITICALITIES = (("high", "High"), ("low", "Low"), ("unable-to-assess", "Unable to assess"))
SEVERITIES = tuple((s, s.title()) for s in ("mild", "moderate", "severe"))
ALLERGY_FIELDS = [
    Field("display", "Substance", required=True, help="for example Penicillin G, peanut, latex"),
    Field("code_system", "Code system", "select", required=True, choices=ALLERGY_SYSTEMS),
    Field("code", "Code", required=True,
          help="SNOMED CT substance, or the RxNorm code of a medication"),
    Field("category", "Category", "select", required=True, choices=ALLERGY_CATEGORIES),
    Field("type", "Type", "select", choices=ALLERGY_TYPES),
    Field("criticality", "Criticality", "select", choices=CRITICALITIES,
          help="The risk of a life-threatening reaction next time."),
    Field("manifestation", "Reaction", help="What happened, for example hives"),
    Field("severity", "Reaction severity", "select", choices=SEVERITIES),
    Field("onset_date", "Onset date", "date"),
    Field("note", "Note", "textarea"),
]


@ui
def allergy_new(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)

    def action(form: Form):
        reaction = {"manifestation": form.text("manifestation"), "severity": form.text("severity")}
        if reaction["severity"] and not reaction["manifestation"]:
            raise InvalidInput("describe the reaction whose severity is given",
                               field="manifestation")
        return clinical.record_allergy(
            ctx, patient_id=patient_id, code_system=form.values["code_system"],
            code=form.values["code"], display=form.values["display"],
            category=form.values["category"], type=form.values["type"] or "allergy",
            criticality=form.text("criticality"),
            reactions=[reaction] if reaction["manifestation"] else [],
            onset_date=form.date("onset_date"), note=form.text("note"))

    return _run_form(request, ALLERGY_FIELDS, title="Record an allergy", submit="Record",
                     patient=patient, cancel=_chart_url(patient_id), action=action,
                     done=lambda r: _chart_url(patient_id, "allergies"), success="Allergy recorded.")


ALLERGY_OUTCOMES = (("resolved", "Resolved: the patient no longer reacts"),
                    ("refuted", "Refuted: the patient was never allergic"),
                    ("entered-in-error", "Entered in error"))


@ui
def allergy_close(request: HttpRequest, patient_id: UUID, allergy_id: UUID) -> HttpResponse:
    """Take an allergy off the active list: resolved, refuted or entered in error."""
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)
    item = clinical_queries.get_item(ctx, "Allergy", allergy_id)
    if item.state["patient_id"] != str(patient_id):
        raise NotFound(f"no Allergy {allergy_id}", field="id")
    fields = [
        Field("outcome", "Outcome", "select", required=True, choices=ALLERGY_OUTCOMES),
        Field("resolved_on", "Resolved on", "date", help="For a resolved allergy; empty for today."),
        Field("reason", "Reason", required=True),
        Field("version", "", "hidden"),
    ]

    def action(form: Form):
        outcome, version = form.values["outcome"], form.number("version", int)
        if outcome == "resolved":
            return clinical.resolve_allergy(ctx, allergy_id, reason=form.text("reason"),
                                            resolved_on=form.date("resolved_on"),
                                            expected_version=version)
        if outcome not in ("refuted", "entered-in-error"):
            raise InvalidInput("choose one of the outcomes", field="outcome")
        return clinical.refute_allergy(ctx, allergy_id, reason=form.text("reason"),
                                       entered_in_error=outcome == "entered-in-error",
                                       expected_version=version)

    return _run_form(request, fields, title=f"Resolve or refute: {item.state['display']}",
                     submit="Save", patient=patient, cancel=_chart_url(patient_id, "allergies"),
                     initial={"version": item.version}, action=action, aggregate_id=allergy_id,
                     done=lambda r: _chart_url(patient_id, "allergies"),
                     success="Allergy taken off the active list.")


ROUTES = tuple((r, r) for r in ("oral", "iv", "im", "sc", "inhaled", "topical", "nasal",
                                "transdermal", "ophthalmic", "rectal", "sublingual"))


@ui
def prescription_new(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)
    fields = [
        Field("drug_code", "Drug code", required=True, help="RxNorm or local code"),
        Field("drug_name", "Drug name", required=True),
        Field("dose", "Dose", required=True),
        Field("route", "Route", "select", required=True, choices=ROUTES),
        Field("frequency", "Frequency", required=True),
        Field("reason", "Reason"),
        Field("needs_approval", "Needs approval by a second doctor", "checkbox"),
    ]

    def action(form: Form):
        return clinical.prescribe_medication(
            ctx, patient_id=patient_id, **{k: form.values[k] for k in
                                           ("drug_code", "drug_name", "dose", "route", "frequency")},
            reason=form.text("reason"), needs_approval=form.checked("needs_approval"))

    return _run_form(request, fields, title="Prescribe a medication", submit="Prescribe",
                     patient=patient, cancel=_chart_url(patient_id), action=action,
                     done=lambda r: _chart_url(patient_id, "medications"),
                     success="Medication prescribed.")


@require_POST
@ui
def prescription_approve(request: HttpRequest, patient_id: UUID, prescription_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    version = _version(request)
    return _post_action(request, patient_id, lambda: clinical.approve_prescription(
        ctx, prescription_id, expected_version=version), "Prescription approved.",
        prescription_id, "medications")


@ui
def prescription_discontinue(request: HttpRequest, patient_id: UUID,
                             prescription_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)
    item = clinical_queries.get_item(ctx, "Prescription", prescription_id)
    fields = [Field("reason", "Reason", required=True), Field("version", "", "hidden")]

    def action(form: Form):
        return clinical.discontinue_medication(ctx, prescription_id, reason=form.text("reason"),
                                               expected_version=form.number("version", int))

    return _run_form(request, fields, title=f"Discontinue {item.state['drug_name']}",
                     submit="Discontinue", patient=patient, cancel=_chart_url(patient_id),
                     initial={"version": item.version}, action=action,
                     done=lambda r: _chart_url(patient_id, "medications"),
                     success="Medication discontinued.", aggregate_id=prescription_id)


@ui
def lab_order_new(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)
    fields = [
        Field("loinc_code", "LOINC code", required=True, help="for example 2345-7"),
        Field("display", "Test name", required=True),
        Field("priority", "Priority", "select", choices=(("routine", "Routine"), ("urgent", "Urgent"),
                                                         ("stat", "STAT"))),
        Field("reason", "Reason"),
    ]

    def action(form: Form):
        return labs.place_lab_order(
            ctx, patient_id, tests=[{"loinc_code": form.values["loinc_code"],
                                     "display": form.values["display"]}],
            priority=form.values["priority"] or "routine", reason=form.text("reason"))

    return _run_form(request, fields, title="Order a lab test", submit="Place order",
                     patient=patient, cancel=_chart_url(patient_id), action=action,
                     done=lambda r: _chart_url(patient_id, "labs"), success="Lab order placed.")


@ui
def lab_result_new(request: HttpRequest, patient_id: UUID, order_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)
    order, _ = lab_queries.get_lab_order(ctx, order_id)
    if str(order["patient_id"]) != str(patient_id):
        raise NotFound(f"no LabOrder {order_id}", field="id")
    tests = tuple((t["loinc_code"], f"{t['display']} ({t['loinc_code']})") for t in order["tests"])
    fields = [
        Field("loinc_code", "Test", "select", required=True, choices=tests),
        Field("value", "Value", "number", step="any"),
        Field("value_text", "Text value"),
        Field("unit", "Unit"),
        Field("reference_low", "Reference low", "number", step="any"),
        Field("reference_high", "Reference high", "number", step="any"),
        Field("effective_at", "Specimen taken at", "datetime-local", help="Leave empty for now."),
        Field("version", "", "hidden"),
    ]
    names = dict((t["loinc_code"], t["display"]) for t in order["tests"])

    def action(form: Form):
        code = form.values["loinc_code"]
        values = {"value": form.number("value"), "value_text": form.text("value_text"),
                  "unit": form.text("unit"), "reference_low": form.number("reference_low"),
                  "reference_high": form.number("reference_high")}
        return labs.record_lab_result(
            ctx, order_id, loinc_code=code, display=names.get(code, code),
            effective_at=form.datetime("effective_at") or timezone.now(),
            expected_version=form.number("version", int),
            **{k: v for k, v in values.items() if v is not None})

    return _run_form(request, fields, title="Record a lab result", submit="Record",
                     patient=patient, cancel=_chart_url(patient_id), action=action,
                     initial={"version": order["version"]}, aggregate_id=order_id,
                     done=lambda r: _chart_url(patient_id, "labs"), success="Lab result recorded.")


NOTE_FIELDS = [Field(s, s.title(), "textarea") for s in ("subjective", "objective", "assessment",
                                                          "plan")]


@ui
def note_new(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)

    def action(form: Form):
        return clinical.draft_note(ctx, patient_id=patient_id,
                                   **{f.name: form.values[f.name] for f in NOTE_FIELDS})

    return _run_form(request, NOTE_FIELDS, title="Write a note", submit="Save draft",
                     patient=patient, cancel=_chart_url(patient_id), action=action,
                     done=lambda r: _chart_url(patient_id, "notes"), success="Note saved as draft.")


@require_POST
@ui
def note_sign(request: HttpRequest, patient_id: UUID, note_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    version = _version(request)
    return _post_action(request, patient_id, lambda: clinical.sign_note(
        ctx, note_id, expected_version=version), "Note signed.", note_id, "notes")


@ui
def note_amend(request: HttpRequest, patient_id: UUID, note_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)
    item = clinical_queries.get_item(ctx, "ClinicalNote", note_id)
    fields = [Field("amendment", "Amendment", "textarea", required=True),
              Field("reason", "Reason", required=True), Field("version", "", "hidden")]

    def action(form: Form):
        return clinical.amend_note(ctx, note_id, amendment=form.text("amendment"),
                                   reason=form.text("reason"),
                                   expected_version=form.number("version", int))

    return _run_form(request, fields, title="Amend a signed note", submit="Amend",
                     patient=patient, cancel=_chart_url(patient_id),
                     initial={"version": item.version}, action=action, aggregate_id=note_id,
                     done=lambda r: _chart_url(patient_id, "notes"), success="Note amended.")


# Appointments -----------------------------------------------------------------------------------

KINDS = tuple((k, k.replace("_", " ").title()) for k in
              ("consultation", "follow_up", "check_up", "procedure", "vaccination", "other"))


@ui
def appointment_new(request: HttpRequest, patient_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    patient = _patient_header(ctx, patient_id)
    providers = (Membership.objects.filter(clinic_id=patient["clinic_id"], role__in=("doctor", "nurse"))
                 .select_related("user").order_by("user__username"))
    fields = [
        Field("provider_id", "With", "select", required=True,
              choices=tuple((str(m.user_id), f"{m.user.get_full_name() or m.user.username} ({m.role})")
                            for m in providers)),
        Field("starts_at", "Starts at", "datetime-local", required=True),
        Field("duration_minutes", "Duration (minutes)", "number"),
        Field("kind", "Kind", "select", choices=KINDS),
        Field("reason", "Reason"),
    ]

    def action(form: Form):
        provider = form.number("provider_id", int)
        if provider is None:
            raise InvalidInput("choose who the appointment is with", field="provider_id")
        starts = form.datetime("starts_at")
        if starts is None:
            raise InvalidInput("starts_at is required", field="starts_at")
        return scheduling.schedule_appointment(
            ctx, patient_id=patient_id, provider_id=provider, starts_at=starts,
            duration_minutes=form.number("duration_minutes", int) or 30,
            kind=form.values["kind"] or None, reason=form.text("reason"))

    initial = {"provider_id": str(request.user.pk), "duration_minutes": "30"}
    return _run_form(request, fields, title="Schedule an appointment", submit="Schedule",
                     patient=patient, cancel=_chart_url(patient_id), action=action, initial=initial,
                     done=lambda r: _chart_url(patient_id, "appointments"),
                     success="Appointment scheduled.")


@require_POST
@ui
def appointment_check_in(request: HttpRequest, patient_id: UUID, appointment_id: UUID) -> HttpResponse:
    ctx = context_for(request)
    version = _version(request)
    return _post_action(request, patient_id, lambda: scheduling.check_in_appointment(
        ctx, appointment_id, expected_version=version), "Patient checked in.", appointment_id,
        "appointments")


