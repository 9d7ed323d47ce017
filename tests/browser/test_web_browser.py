"""End to end in a real browser: a doctor finds a demo patient, records vital signs, sees them on
the chart and the timeline, travels back to before the change; an admin opens the access log."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from medflow.demo import loader

pytestmark = pytest.mark.django_db(transaction=True)

# A few of the demo patients are enough, and keep the test fast.
DEMO_PATIENTS = 3


@pytest.fixture
def demo(settings, monkeypatch):
    settings.DEBUG = True  # the demo users exist only in development
    sample = loader.demo_patients()[:DEMO_PATIENTS]
    monkeypatch.setattr(loader, "demo_patients", lambda: sample)
    loader.load_demo()
    return sample


def log_in(page, base: str, username: str) -> None:
    page.goto(f"{base}/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


# `demo` comes before `chromium`: the database work is done before Playwright's event loop runs
# in this thread (on PostgreSQL a connection opened under it outlives the test).
def test_doctor_records_vitals_and_travels_back_in_time(live_server, demo, chromium, shots):
    from playwright.sync_api import expect

    base = live_server.url
    family = demo[0]["family_name"]
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)

    page.goto(f"{base}/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/$"))
    shots(page, "01-login")
    log_in(page, base, "demo")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_text("Pending tasks")).to_be_visible()
    page.keyboard.press("Tab")  # keyboard users first reach the skip link
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    shots(page, "02-dashboard")

    # Results as you type, without pressing Search.
    page.get_by_role("link", name="Patients", exact=True).click()
    page.get_by_label("Name, MRN or birth date (YYYY-MM-DD)").press_sequentially(family[:4].lower())
    result = page.locator("#results a", has_text=family)
    expect(result).to_be_visible()
    shots(page, "03-search")
    result.click()
    expect(page.get_by_role("heading", name=re.compile(family))).to_be_visible()
    expect(page.locator("svg.chart").first).to_be_visible()
    shots(page, "04-chart")
    chart_url = page.url
    before = timezone.localtime().strftime("%Y-%m-%dT%H:%M:%S")

    page.get_by_role("link", name="Record vitals").click()
    page.get_by_label("Systolic BP (mmHg)").fill("177")
    page.get_by_label("Diastolic BP (mmHg)").fill("201")
    page.get_by_role("button", name="Record").click()
    expect(page.locator("#f-diastolic-error")).to_contain_text("between")  # refused, next to it
    shots(page, "05-vitals-error")
    page.get_by_label("Diastolic BP (mmHg)").fill("99")
    page.get_by_label("Heart rate (bpm)").fill("66")
    page.get_by_role("button", name="Record").click()
    # The confirmation is shown in the section the page opens at, not out of sight at the top.
    expect(page.locator("#vitals .messages")).to_contain_text("Vital signs recorded.")
    expect(page.locator("#vitals")).to_contain_text("177/99")
    shots(page, "06-chart-after-vitals")

    page.get_by_role("link", name="Timeline").click()
    expect(page.locator("table")).to_contain_text("BP 177/99 mmHg")
    expect(page.locator("tbody tr").first).to_contain_text("demo")
    shots(page, "07-timeline")

    page.goto(chart_url)
    page.get_by_label("Show as of").fill(before)
    page.get_by_role("button", name="Show", exact=True).click()
    expect(page.get_by_text("Historical view:")).to_be_visible()
    expect(page.locator("#vitals")).not_to_contain_text("177/99")
    expect(page.get_by_role("link", name="Record vitals")).to_have_count(0)
    shots(page, "08-chart-as-of")

    page.set_viewport_size({"width": 768, "height": 1024})  # a tablet
    page.goto(chart_url)
    shots(page, "09-chart-tablet")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile("/login/$"))
    log_in(page, base, "demo-admin")
    page.goto(chart_url + "audit/")
    expect(page.get_by_role("heading", name=re.compile("Who accessed"))).to_be_visible()
    expect(page.locator("tbody")).to_contain_text("doctor")
    shots(page, "10-audit")
    context.close()


@pytest.fixture
def colleague(demo):
    """A second doctor of the demo clinic, who may approve the demo doctor's prescriptions."""
    from django.contrib.auth import get_user_model

    from medflow.access.services import grant_role
    from medflow.context import system_context

    user = get_user_model().objects.create_user("dr-wilson", password="demo",
                                                first_name="James", last_name="Wilson")
    grant_role(system_context(), loader.DEMO_CLINIC_ID, user.username, "doctor")
    return user


def test_doctor_walks_every_form(live_server, colleague, chromium, shots):
    """Register and update a patient, add a diagnosis, prescribe (a colleague approves), order a
    lab and record its result, write, sign and amend a note, schedule and check in; refusals and
    a version conflict are shown on the page."""
    from playwright.sync_api import expect

    base = live_server.url
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    log_in(page, base, "demo")

    # Register: every missing field is named at once, next to the field, and takes the focus.
    page.get_by_role("link", name="Register patient").click()
    page.get_by_label("Given names").fill("Ada")
    page.get_by_role("button", name="Register").click()
    for field in ("mrn", "family_name", "birth_date"):
        expect(page.locator(f"#f-{field}-error")).to_contain_text("is required")
    expect(page.locator("#f-mrn")).to_be_focused()
    shots(page, "11-register-errors")
    page.locator("#f-mrn").fill("BR-1")
    page.get_by_label("Family name").fill("Lovelace")
    page.get_by_label("Birth date").fill("1980-12-10")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_text("Patient registered.")).to_be_visible()
    chart_url = page.url.split("#")[0]

    # Update, while a second tab holds the old version: that tab is told who changed it, when.
    stale = context.new_page()
    stale.goto(chart_url + "edit/")
    page.get_by_role("link", name="Edit demographics").click()
    page.get_by_label("Phone").fill("+44 20 7946 0000")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Demographics saved.")).to_be_visible()
    stale.get_by_label("Email").fill("ada@example.org")
    stale.get_by_role("button", name="Save").click()
    expect(stale.locator("#form-error")).to_contain_text("changed by Demo Demo (demo) at")
    shots(stale, "12-version-conflict")
    stale.get_by_role("link", name="Reload the form").click()
    expect(stale.get_by_label("Phone")).to_have_value("+44 20 7946 0000")
    stale.close()

    page.goto(chart_url)
    page.get_by_role("link", name="Add diagnosis").click()
    page.get_by_role("textbox", name="Code", exact=True).fill("38341003")
    page.get_by_label("Description").fill("Hypertension")
    page.get_by_role("button", name="Add").click()
    expect(page.locator("#problems")).to_contain_text("Hypertension")

    page.get_by_role("link", name="Prescribe").click()
    for label, value in (("Drug code", "314076"), ("Drug name", "Lisinopril 10 MG"),
                         ("Dose", "10 mg"), ("Frequency", "daily")):
        page.get_by_label(label).fill(value)
    page.get_by_label("Needs approval by a second doctor").check()
    page.get_by_role("button", name="Prescribe").click()
    expect(page.locator("#medications")).to_contain_text("awaiting approval by another doctor")
    expect(page.locator("#medications").get_by_role("button", name="Approve")).to_have_count(0)

    other = chromium.new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(other, base, colleague.username)
    other.goto(chart_url)
    other.locator("#medications").get_by_role("button", name="Approve").click()
    expect(other.get_by_text("Prescription approved.")).to_be_visible()
    other.context.close()

    page.goto(chart_url)
    expect(page.locator("#medications")).not_to_contain_text("awaiting approval")
    page.locator("#medications").get_by_role("link", name="Discontinue").click()
    page.get_by_role("button", name="Discontinue").click()
    expect(page.locator("#f-reason-error")).to_be_visible()
    page.get_by_label("Reason").fill("dry cough")
    page.get_by_role("button", name="Discontinue").click()
    expect(page.get_by_text("Medication discontinued.")).to_be_visible()

    page.get_by_role("link", name="Order lab").click()
    page.get_by_label("LOINC code").fill("2823-3")
    page.get_by_label("Test name").fill("Potassium")
    page.get_by_role("button", name="Place order").click()
    page.locator("#labs").get_by_role("link", name="Record result").click()
    page.get_by_label("Value", exact=True).fill("6.2")
    page.get_by_label("Unit").fill("mmol/L")
    page.get_by_label("Reference low").fill("3.5")
    page.get_by_label("Reference high").fill("5.1")
    page.get_by_role("button", name="Record").click()
    expect(page.locator("#labs .flag")).to_contain_text("H")
    expect(page.locator("#labs svg.chart .outside")).to_have_count(1)

    page.get_by_role("link", name="Write note").click()
    page.get_by_label("Subjective").fill("Dry cough since starting lisinopril.")
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("button", name="Sign note").click()
    expect(page.get_by_text("Note signed.")).to_be_visible()
    page.locator("#notes").get_by_role("link", name="Amend").click()
    page.get_by_label("Amendment").fill("Cough resolved after stopping.")
    page.get_by_label("Reason").fill("follow-up call")
    page.get_by_role("button", name="Amend").click()
    expect(page.locator("#notes")).to_contain_text("Cough resolved after stopping.")

    page.get_by_role("link", name="Schedule").click()
    page.get_by_role("button", name="Schedule").click()
    expect(page.locator("#f-starts_at-error")).to_contain_text("is required")
    page.get_by_label("Starts at").fill(
        (timezone.localtime() + timedelta(days=1)).strftime("%Y-%m-%dT09:00"))
    page.get_by_label("Reason", exact=True).fill("BP check")
    page.get_by_role("button", name="Schedule").click()
    page.locator("#appointments").get_by_role("button", name="Check in").click()
    expect(page.locator("#appointments")).to_contain_text("checked in")
    shots(page, "13-chart-after-forms")
    context.close()
