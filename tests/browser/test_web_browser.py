"""End to end in a real browser: a doctor finds a demo patient, records vital signs, sees them on
the chart and the timeline, travels back to before the change; an admin opens the access log."""

import re

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
    expect(page.get_by_text("Vital signs recorded.")).to_be_visible()
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
