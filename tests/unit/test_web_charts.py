"""Server-side SVG charts of the web UI: accessible, escaped, scaled to their data."""

import re
from datetime import UTC, datetime, timedelta

from medflow.web import charts

T0 = datetime(2024, 1, 1, 9, tzinfo=UTC)


def series(label, *values):
    return charts.Series(label, [(T0 + timedelta(days=i), v) for i, v in enumerate(values)])


def test_chart_has_title_desc_and_role():
    svg = charts.render(charts.Chart("Heart rate", "bpm", [series("HR", 60, 80, 70)]))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert 'role="img"' in svg
    title_id, desc_id = re.search(r'aria-labelledby="(\S+) (\S+)"', svg).groups()
    assert f'<title id="{title_id}">Heart rate</title>' in svg
    assert (f'<desc id="{desc_id}">HR: 3 values from 2024-01-01 to 2024-01-03, lowest 60, '
            "highest 80, latest 70 bpm.</desc>") in svg
    assert svg.count("<circle") == 3 + 1  # the points and the legend's marker


def test_each_chart_has_its_own_ids():
    a = charts.render(charts.Chart("A", "", [series("a", 1, 2)]))
    b = charts.render(charts.Chart("B", "", [series("b", 1, 2)]))
    ids = [re.search(r'id="(chart-title-\d+)"', svg).group(1) for svg in (a, b)]
    assert ids[0] != ids[1]


def test_text_is_escaped():
    svg = charts.render(charts.Chart("<script>x</script>", "a&b", [series("<b>", 1.0, 2.0)]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a&amp;b" in svg and "<b>" not in svg


def test_points_are_placed_by_value_and_time():
    svg = charts.render(charts.Chart("X", "", [series("x", 10, 20)]))
    (x1, y1), (x2, y2) = [tuple(map(float, p.split(","))) for p in
                          re.search(r'<polyline points="([^"]+)"', svg).group(1).split()]
    assert x1 == charts.LEFT and x2 == charts.WIDTH - charts.RIGHT
    assert y2 < y1  # higher values are drawn higher up


def test_reference_band_is_drawn_and_described():
    chart = charts.Chart("K", "mmol/L", [series("K", 4.0, 6.0)], band=(3.5, 5.1))
    svg = charts.render(chart)
    assert 'class="band"' in svg and "reference range 3.5 to 5.1 mmol/L" in svg
    assert svg.count('class="band-limit"') == 2


def test_single_point_and_empty_chart():
    one = charts.render(charts.Chart("One", "kg", [series("w", 70)]))
    assert "<circle" in one and "nan" not in one.lower()
    empty = charts.render(charts.Chart("None", "kg", [charts.Series("w", [])]))
    assert "No values" in empty and "<desc" in empty


def test_vital_charts_pick_the_measured_signs():
    rows = [(T0, {"systolic": 120, "diastolic": 80, "heart_rate": 70}),
            (T0 + timedelta(days=1), {"weight_kg": 72.5})]
    made = charts.vital_charts(rows)
    assert [c.title for c in made] == ["Blood pressure", "Heart rate", "Weight"]
    assert [s.label for s in made[0].series] == ["Systolic", "Diastolic"]


def test_lab_charts_one_per_test_with_its_latest_range():
    rows = [
        {"loinc_code": "2823-3", "display": "Potassium", "value": 4.0, "unit": "mmol/L",
         "reference_low": 3.5, "reference_high": 5.0, "effective_at": T0},
        {"loinc_code": "2823-3", "display": "Potassium", "value": 5.5, "unit": "mmol/L",
         "reference_low": 3.5, "reference_high": 5.1, "effective_at": T0 + timedelta(days=2)},
        {"loinc_code": "5778-6", "display": "Urine colour", "value": None, "unit": None,
         "reference_low": None, "reference_high": None, "effective_at": T0},
    ]
    (chart,) = charts.lab_charts(rows)
    assert chart.title == "Potassium (2823-3)" and chart.band == (3.5, 5.1)
    assert [v for _, v in chart.series[0].points] == [4.0, 5.5]


def test_ticks_are_round_numbers_inside_the_range():
    assert charts._ticks(76.5, 146.5) == [80, 100, 120, 140]
    assert charts._ticks(69.8, 71.9) == [70.0, 70.5, 71.0, 71.5]
    assert charts._ticks(5, 5) == [5]


def test_values_outside_the_reference_range_are_ringed_and_counted():
    chart = charts.Chart("K", "mmol/L", [series("K", 3.0, 4.0, 6.0)], band=(3.5, 5.1))
    svg = charts.render(chart)
    assert svg.count('class="outside"') == 2
    assert "K 6 mmol/L on 2024-01-03 09:00 (above the reference range)" in svg
    assert "K 3 mmol/L on 2024-01-01 09:00 (below the reference range)" in svg
    assert "2 values outside the reference range" in svg


def test_lab_charts_put_tests_with_abnormal_values_first():
    def row(code, value, day, low=None, high=None):
        return {"loinc_code": code, "display": code, "value": value, "unit": "u",
                "reference_low": low, "reference_high": high,
                "effective_at": T0 + timedelta(days=day)}
    rows = [row("no-range", 1, 9), row("normal", 4, 5, 3.5, 5.1), row("high", 7, 1, 3.5, 5.1)]
    assert [c.series[0].label for c in charts.lab_charts(rows)] == ["high", "normal", "no-range"]
