"""Registration day (issue 14): the model, the benchmark scenario run tiny, and the Locust preset.

The scenario runs against live servers of its own: 100 students in a 10 s window
over 25 courses (one per time slot), with the pgbench replay, in about 20 s. The
Locust preset runs in a subprocess (importing Locust here would monkey-patch
this process with gevent).
"""

import importlib.util
import json
import subprocess
import sys
import uuid
from dataclasses import replace
from itertools import combinations

import pytest

from bench import opening, run_load
from bench.opening import OpeningOptions
from bench.opening_report import growth_table, opening_chart, opening_figures
from bench.suite import opening_runs
from scripts import migrate
from tests.support.environment import PROJECT_ROOT
from tests.support.opening import ISSUE_FIELDS, run_tiny_opening
from tests.support.servers import start_server

# What results.json's `opening` object holds at least (issue 14).


def load_model():
    """locustfiles/_opening_model.py is plain data, importable without Locust."""
    spec = importlib.util.spec_from_file_location("opening_model", PROJECT_ROOT / "locustfiles" / "_opening_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the model ------------------------------------------------------------------------------


def test_wish_lists_are_five_courses_in_five_slots_with_alternatives_in_the_same_slot():
    model = load_model()
    catalogue = model.Catalogue(200, zipf=1.1, seed=3)
    assert all(20 <= c.capacity <= 300 and c.reserve_limit == max(1, round(c.capacity / 10)) for c in catalogue.courses)
    assert len({c.code for c in catalogue.courses}) == 200
    for student in range(300):
        wishes = catalogue.wish_list(student)
        assert len(wishes) == 5
        slots = [catalogue.courses[w.course].slot for w in wishes]
        assert len(set(slots)) == 5
        asked = [w.course for w in wishes] + [c for w in wishes for c in w.alternatives]
        assert len(asked) == len(set(asked))  # nothing twice
        for wish in wishes:
            assert len(wish.alternatives) == 2
            assert {catalogue.courses[c].slot for c in wish.alternatives} == {catalogue.courses[wish.course].slot}
        assert sum(catalogue.courses[w.course].credits for w in wishes) <= 18
    # The same seed gives the same wishes, in the bench and in the Locust preset alike.
    assert model.Catalogue(200, zipf=1.1, seed=3).wish_list(7) == catalogue.wish_list(7)


def test_popularity_is_skewed_towards_the_top_ranked_courses():
    model = load_model()
    catalogue = model.Catalogue(200, zipf=1.1, seed=3)
    top = min(catalogue.courses, key=lambda c: c.popularity_rank).index
    first_wishes = [catalogue.wish_list(n)[0].course for n in range(500)]
    assert first_wishes.count(top) > 50  # about a fifth of all draws go to the most popular course


def test_half_the_students_arrive_in_the_first_five_seconds():
    model = load_model()
    arrivals = model.opening_arrivals(1000, duration=60, seed=1)
    assert sum(1 for t in arrivals if t < 5) >= 500
    assert max(arrivals) <= 60 and min(arrivals) >= 0


def test_inversions_count_later_arrivals_with_better_outcomes():
    model = load_model()
    rng = __import__("random").Random(5)
    for _ in range(50):
        ranks = [rng.choice([0, 1, 2, 3, model.FULL_RANK]) for _ in range(rng.randint(0, 40))]
        brute = sum(1 for i, j in combinations(range(len(ranks)), 2) if ranks[j] < ranks[i])
        assert model.count_inversions(ranks) == brute
    # Two courses: in one the second arrival was enrolled after the first was put on the reserve list.
    fair = model.fairness([(1, 0.0, 1), (1, 1.0, 0), (2, 0.0, 0), (2, 1.0, 1)])
    assert (fair.inversions, fair.pairs, fair.worst_course) == (1, 2, 1)


# ---- the benchmark scenario, tiny, against a live server ------------------------------------------


@pytest.mark.live_server
@pytest.mark.slow
def test_a_tiny_opening_runs_clean_and_reports_every_figure(embedded_postgres, settings, tmp_path):
    result = run_tiny_opening(embedded_postgres, settings, tmp_path)

    assert result.keys() >= ISSUE_FIELDS
    main = result["main"]
    assert (result["students"], result["courses"]) == (100, 25)
    assert main["errors_5xx"] == 0 and main["connection_errors"] == 0 and main["unexpected"] == {}
    assert main["violations"] == 0 and main["integrity"]["ok"]
    assert main["unfinished_students"] == 0
    assert main["wishes"] == 500
    assert main["registrations"] == main["enrolled"] + main["reserved"] + main["full"] >= 500
    assert 0 <= main["inversions_share"] <= 1 and main["pairs"] > 0
    for kind in ("status", "courses", "register", "my_courses"):
        waited = main["latency"][kind]["until_answered"]
        assert waited["count"] > 0
        assert 0 < waited["p50_ms"] <= waited["p99_ms"]
    assert main["cpu_per_registration"]["api_ms"] > 0 and main["cpu_per_registration"]["postgres_ms"] > 0
    assert main["load_generator"]["cpu_s"] > 0
    assert main["last_answer_s"] >= 5
    assert sum(main["timeline"]["arrivals_per_s"]) == 100
    # The ceiling replayed the same registrations, and stored what the service stored.
    ceiling = result["ceiling"]
    assert ceiling["failed"] == 0 and ceiling["tps"] > 0
    assert ceiling["transactions"] == main["registrations"] // ceiling["clients"] * ceiling["clients"]
    assert result["ratio"] == pytest.approx(main["saturation_per_s"] / ceiling["tps"], abs=0.001)
    assert [run["students"] for run in result["growth"]] == [100]
    assert result["bisection"]["beyond_largest_run"] == result["growth"][0]["within_target"]

    # The table rows, the growth table and the chart take the object as it is.
    results = {"opening": json.loads(json.dumps(result)), "started": "test"}
    rows = opening_figures(results)
    assert any("register p99" in row["figure"] for row in rows)
    # bench/report.py's chart shows every row with a margin by its ratio (or, for p99 rows, its value).
    assert all(row["ratio"] is not None or "p99" in row["figure"] for row in rows if row["margin"] is not None)
    assert any("100" in line for line in growth_table(results))
    pytest.importorskip("matplotlib")
    opening_chart(tmp_path / "opening.png", results)
    assert (tmp_path / "opening.png").stat().st_size > 10_000


# ---- the Locust preset ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def opening_semester(create_database, settings):
    """A database of its own with the opening's catalogue (25 courses) and 40 students."""
    url = create_database(f"course_reg_opening_locust_{uuid.uuid4().hex[:8]}")
    migrate.upgrade(url)
    catalogue = load_model().Catalogue(25)
    fixture = opening.seed(url, settings, catalogue, students=40)
    server = start_server(url, workers=2)
    yield url, server, fixture
    server.stop()


@pytest.mark.live_server
@pytest.mark.load
@pytest.mark.slow
def test_the_locust_opening_preset_runs_its_students_and_reports_fairness(opening_semester, tmp_path):
    url, server, fixture = opening_semester
    command = [
        sys.executable,
        "-m",
        "bench.run_load",
        "--preset",
        "opening",
        "--host",
        server.base_url,
        "--database-url",
        url,
        "--semester-id",
        str(fixture.semester_id),
        "--students",
        "40",
        "--users",
        "40",
        "--run-time",
        "15s",
        "--reports-dir",
        str(tmp_path),
        "--",
        "--student-prefix",
        opening.STUDENT_PREFIX,
        "--first-student",
        str(opening.FIRST_STUDENT),
        "--student-password",
        opening.PASSWORD,
    ]
    completed = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    output = completed.stdout[-6000:] + completed.stderr[-3000:]
    [folder] = tmp_path.glob("opening-*")
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["failures"] == [], output
    assert summary["invariants"]["status"] == "ok", output
    assert summary["passed"] and completed.returncode == 0, output
    assert summary["mix"] == "OpeningUser:1"
    assert summary["opening"]["students"] == 40, output
    assert summary["opening"]["wishes"] == 200
    assert summary["opening"]["registrations_observed"] >= 200
    assert 0 <= summary["opening"]["inversions_share"] <= 1
    assert summary["outcomes"]["ENROLLED"] > 0
    assert "VERDICT PASS" in completed.stdout


def test_the_opening_preset_is_known_to_run_load(tmp_path):
    args = run_load.parse_args(["--preset", "opening", "--mix", "OpeningUser:1"])
    command = run_load.locust_command(args, tmp_path)
    assert command[command.index("-f") + 1].endswith("locustfiles/opening.py")


def test_repeated_openings_alternate_which_checkout_runs_first(tmp_path):
    room_off = OpeningOptions(students=10)
    room_on = replace(room_off, label="opening-room", database="opening_room", room=True)
    runs = opening_runs(room_off, room_on, repeat=2, reference=tmp_path)
    first_pairs = "opening opening_reference opening_room opening_room_reference"
    second_pairs = "opening_reference_2 opening_2 opening_room_reference_2 opening_room_2"  # the reference first
    assert [key for _scenario, key, _options in runs] == f"{first_pairs} {second_pairs}".split()
    options = {key: options for _scenario, key, options in runs}
    assert options["opening_room_2"].database == "opening_room_2" and options["opening_room_2"].room
    assert options["opening_room_reference_2"].root == tmp_path.resolve()
    assert len({option.database for option in options.values()}) == len(runs)  # each its own database
    alone = opening_runs(room_off, room_on, repeat=3, reference=None)
    expected = ["opening", "opening_room", "opening_2", "opening_room_2", "opening_3", "opening_room_3"]
    assert [key for _scenario, key, _options in alone] == expected
