"""What the browser checks count as a chart without data (tests/superset/browser.py), on
reports shaped like screenshots.mjs's."""

from __future__ import annotations

from tests.superset.browser import charts_without_rows, problems


def test_a_chart_whose_queries_return_no_rows_fail_or_never_ran_is_reported() -> None:
    entry = {"dashboard": "m-water", "ok": True, "status": 200, "charts": [], "outside": [],
             "queries": [{"chart": 1, "status": 200, "rows": 12},
                         {"chart": 2, "status": 200, "rows": 0},
                         {"chart": 3, "status": 400, "rows": None, "error": "bad column"},
                         {"chart": 5, "status": 200, "rows": 0},
                         {"chart": 5, "status": 200, "rows": 3}]}
    found = charts_without_rows(entry, {1: "a", 2: "b", 3: "c", 4: "d", 5: "e"})
    assert found == {"b": "HTTP 200, 0 rows", "c": "HTTP 400, None rows, bad column",
                     "d": "no chart data request"}


def test_a_dashboard_that_did_not_render_fully_is_a_problem() -> None:
    good = {"dashboard": "m-air", "ok": True, "status": 200, "charts": [], "outside": []}
    bad = {"dashboard": "m-waste", "ok": False, "status": 200, "outside": [],
           "charts": [{"title": "Remplissage", "state": "empty"}]}
    assert problems([good, bad]) == {"m-waste": {"status": 200, "outside": [],
                                                 "charts": bad["charts"]}}
