"""The Data Quality Pipeline: its tools, its graph, and whole runs on the in-process driver."""

from __future__ import annotations

import copy
import json
from collections import Counter
from typing import Any

import pytest

import engine.tools.dq
from engine import FakeClock, InProcessDriver, Run, RunStatus, ToolContext, ToolRegistry
from engine.graphs import graph_names, load_graph_json
from engine.registry import REGISTRY
from engine.tools.dq.checks import CHECKS, quality_score, row_failures, row_key, run_checks
from engine.tools.dq.dataset import COLUMNS, DUPLICATE_RATES, PROBLEM_RATES, generate
from engine.tools.dq.normalise import (
    is_valid_email,
    is_valid_phone,
    normalise_country,
    normalise_email,
    normalise_phone,
    phone_country,
)
from engine.tools.dq.rules import apply_rules
from engine.tools.dq.stages import MAX_ITERATIONS_CAP, format_family

SIZES = (300, 600, 1000)
STAGES = ("profile", "detect", "generate_rules", "apply_rules", "evaluate")
REPORT_RESULT_KEYS = {
    "element_count",
    "missing_count",
    "unexpected_count",
    "unexpected_percent",
    "partial_unexpected_list",
}
State = dict[str, Any]


@pytest.fixture
def registry() -> ToolRegistry:
    """The conftest's driver with the default registry, where ``engine.tools.dq`` registered its tools."""
    return REGISTRY


def _new_driver() -> InProcessDriver:
    clock = FakeClock()
    return InProcessDriver(REGISTRY, clock=clock, sleep=clock.sleep)


def _run(driver: InProcessDriver, state: State) -> Run:
    graph_id = driver.service.create_graph(load_graph_json("data_quality")).graph_id
    return driver.run(graph_id, state)


@pytest.fixture(scope="module")
def runs() -> dict[int, Run]:
    """One pipeline run per size, seed 42, default target and cap."""
    driver = _new_driver()
    return {n: _run(driver, {"records": n}) for n in SIZES}


def _normalised(row: State) -> State:
    """``row`` with every normaliser applied: what the format repairs would make of it."""
    out = dict(row)
    if isinstance(out.get("email"), str):
        out["email"] = normalise_email(out["email"])
    if isinstance(out.get("phone"), str):
        out["phone"] = normalise_phone(out["phone"])
    if isinstance(out.get("country"), str):
        out["country"] = normalise_country(out["country"]) or out["country"]
    return out


def _call(name: str, state: State, step: int) -> State:
    ctx = ToolContext(run_id="r1", graph_id="g1", node=name, step=step, attempt=1)
    result = REGISTRY.get(f"dq.{name}").func(state, ctx)
    assert isinstance(result, dict)
    return result


def _stages(initial: State) -> list[tuple[str, State, State]]:
    """Run the stages by hand as the graph does: ``(stage, state before, update)`` for each step.

    Checks on the way that no stage changes the state it is given.
    """
    trace: list[tuple[str, State, State]] = []
    state = dict(initial)
    step = 0

    def call(name: str) -> None:
        nonlocal state, step
        before = copy.deepcopy(state)
        update = _call(name, state, step)
        assert state == before, f"dq.{name} changed the state it was given"
        trace.append((name, state, update))
        state = {**state, **update}
        step += 1

    call("initialize")
    while True:
        for name in STAGES:
            call(name)
        if not (state["anomaly_count"] > 0 and not state["target_met"] and state["can_iterate"]):
            break
    call("report")
    return trace


# the normalisers


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Alice.Smith@Example.COM ", "alice.smith@example.com"),
        ("bob@example.org", "bob@example.org"),
    ],
)
def test_normalise_email_trims_and_lower_cases(raw: str, expected: str) -> None:
    assert normalise_email(raw) == expected
    assert is_valid_email(normalise_email(raw))


@pytest.mark.parametrize(
    "email",
    ["alice@", "alice.example.com", "alice@@example.com", "alice at example.com", "@x.com", "a..b@x.com"],
)
def test_malformed_emails_stay_invalid_after_normalising(email: str) -> None:
    assert not is_valid_email(normalise_email(email))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("(555) 123-4567", "+15551234567"),
        ("555.123.4567", "+15551234567"),
        ("555-123-4567", "+15551234567"),
        ("1-555-123-4567", "+15551234567"),
        ("+1 555 123 4567", "+15551234567"),
        ("0044 2079460958", "+442079460958"),
        ("(+44) 20794-60958", "+442079460958"),
        ("+49-30-12345678", "+493012345678"),
        ("555-0199", "5550199"),
        ("call me", "call me"),
    ],
)
def test_normalise_phone_removes_punctuation_only(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    ("phone", "country"),
    [
        ("+15551234567", "US"),
        ("+442079460958", "GB"),
        ("+493012345678", "DE"),
        ("+33123456789", "FR"),
        ("+1555123456", None),
        ("+441234", None),
        ("5550199", None),
        ("+999123456789", None),
        ("+1 555 123 4567", None),
    ],
)
def test_phone_country_needs_a_valid_e164_number(phone: str, country: str | None) -> None:
    assert phone_country(phone) == country
    assert is_valid_phone(phone) is (country is not None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("USA", "US"),
        ("U.S.", "US"),
        ("United States", "US"),
        ("us", "US"),
        ("U.S.A.", "US"),
        ("United Kingdom", "GB"),
        ("uk", "GB"),
        ("Deutschland", "DE"),
        ("BRASIL", "BR"),
        ("JPN", "JP"),
        ("Atlantis", None),
    ],
)
def test_normalise_country_maps_spellings_to_iso_codes(raw: str, expected: str | None) -> None:
    assert normalise_country(raw) == expected


def test_format_family_collapses_runs_of_a_kind() -> None:
    assert format_family("(555) 123-4567") == "(9) 9-9"
    assert format_family("U.S.") == "A.A."
    assert format_family("United States") == "Aa Aa"
    assert format_family("+15551234567") == "+9"


# the dataset


@pytest.mark.parametrize("n", [1, 7, 50, 300, 1000])
def test_generate_makes_n_rows_with_the_injected_problems(n: int) -> None:
    rows, injected = generate(n, seed=7)
    assert len(rows) == n
    assert all(set(row) == set(COLUMNS) for row in rows)
    assert set(injected) == set(PROBLEM_RATES) | set(DUPLICATE_RATES)
    for kind, rate in {**PROBLEM_RATES, **DUPLICATE_RATES}.items():
        assert injected[kind] == round(rate * n)
    json.dumps(rows)


def test_generate_is_deterministic_per_seed() -> None:
    assert generate(300, 42) == generate(300, 42)
    assert generate(300, 42)[0] != generate(300, 43)[0]


def test_the_generated_problems_are_what_the_checks_find() -> None:
    rows, injected = generate(1000, 42)
    found = {r.check.name: r.unexpected_count for r in run_checks(rows)}
    assert found["email_not_null"] == injected["missing_email"]
    assert found["age_not_null"] == injected["missing_age"]
    assert found["age_range"] == injected["age_outlier"]
    assert found["income_range"] == injected["income_outlier"]
    assert found["country_not_null"] == injected["missing_country"]
    assert found["email_format"] == (
        injected["invalid_email"] + injected["email_case"] + injected["variant_duplicate"]
    )
    assert found["rows_unique"] == injected["exact_duplicate"]
    assert found["phone_valid"] == 0, "invalid numbers are all written with punctuation at first"
    assert found["phone_format"] > 0
    assert found["country_in_set"] > 0


# checks, score and rules


def test_quarantine_cannot_raise_the_score() -> None:
    assert quality_score(100, 10, 0) == 0.9
    assert quality_score(90, 0, 10) == 0.9, "quarantining the 10 failing rows leaves the score as it was"
    assert quality_score(89, 0, 11) < 0.9, "quarantining a good row lowers it"
    assert quality_score(0, 0, 0) == 1.0


def _row(**values: Any) -> State:
    base = {
        "customer_id": "C1",
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "age": 36,
        "income": 50_000,
        "country": "GB",
        "phone": "+442079460958",
    }
    return {**base, **values}


def _rules(rows: list[State]) -> list[State]:
    state = {"table": {"dataset": rows}, "iteration": 0}
    state |= _call("profile", state, 0)
    state |= _call("detect", state, 1)
    rules: list[State] = _call("generate_rules", state, 2)["rules"]["items"]
    return rules


def test_apply_rules_repairs_quarantines_and_drops_only_exact_copies() -> None:
    rows = [
        _row(),
        _row(customer_id="C2", email=" Bob@Example.COM", country="U.K.", phone="(+44) 20794-60958"),
        _row(customer_id="C3", email="carol@@example.com"),
        _row(customer_id="C4", age=450),
        _row(customer_id="C5", age=None, country=None, phone="0044 2079460958"),
        _row(),
        _row(customer_id="C2", email="bob@example.com", country="GB", phone="+442079460958"),
    ]
    frozen = copy.deepcopy(rows)
    outcome = apply_rules(rows, _rules(rows), iteration=1)
    assert rows == frozen
    by_id = {row["customer_id"]: row for row in outcome.rows}
    assert by_id["C2"] == _row(customer_id="C2", email="bob@example.com")
    assert by_id["C5"]["country"] == "GB", "the country comes from the phone once it is normalised"
    assert by_id["C5"]["phone"] == "+442079460958"
    assert by_id["C5"]["age"] == 36, "the profiled median of the ages present"
    assert {e["row"]["customer_id"] for e in outcome.quarantined} == {"C3", "C4"}
    assert [e["row"] for e in outcome.quarantined] == [rows[2], rows[3]], "kept as found"
    assert all(e["reasons"] for e in outcome.quarantined)
    assert [e["row"] for e in outcome.dropped] == [rows[5]], "only the exact copy of row 0"
    assert sorted(row["customer_id"] for row in outcome.rows) == ["C1", "C2", "C2", "C5"]
    again = apply_rules(outcome.rows, _rules(outcome.rows), iteration=2)
    assert [e["row"]["customer_id"] for e in again.dropped] == ["C2"], "identical once normalised"
    assert not again.quarantined


def test_a_country_the_phone_cannot_give_is_quarantined() -> None:
    rows = [_row(), _row(customer_id="C2", country=None, phone=None)]
    outcome = apply_rules(rows, _rules(rows), iteration=1)
    assert [e["row"]["customer_id"] for e in outcome.quarantined] == ["C2"]
    assert "infer_country_from_phone cannot repair it" in outcome.quarantined[0]["reasons"][0]


def test_a_missing_number_without_a_median_to_fill_from_is_quarantined() -> None:
    rows = [_row(income=None), _row(customer_id="C2", income=None)]
    rules = _rules(rows)
    assert [(r["check"], r["action"]) for r in rules] == [("income_not_null", "quarantine")]
    outcome = apply_rules(rows, rules, iteration=1)
    assert len(outcome.quarantined) == 2
    assert "no profiled median" in outcome.quarantined[0]["reasons"][0]


def test_apply_rules_refuses_rules_made_for_another_dataset() -> None:
    state: State = {"table": {"dataset": [_row()]}, "rules": {"dataset_rows": 2, "items": []}}
    with pytest.raises(ValueError, match="made for 2 rows"):
        _call("apply_rules", state, 0)


# the stages, step by step


def test_stages_never_change_their_input_and_phones_are_validated_after_normalising() -> None:
    trace = _stages({"records": 300})
    detects = [update["anomalies"] for name, _, update in trace if name == "detect"]
    assert len(detects) >= 2
    assert "phone_valid" not in detects[0]["checks"]
    assert detects[0]["checks"]["phone_format"]["count"] > 0
    assert detects[1]["checks"]["phone_valid"]["count"] == trace[0][2]["injected"]["invalid_phone"]
    assert detects[1]["checks"]["rows_unique"]["count"] == trace[0][2]["injected"]["variant_duplicate"]
    for anomalies in detects:
        for found in anomalies["checks"].values():
            assert 0 < len(found["examples"]) <= 5


def test_every_dropped_row_was_an_exact_copy_of_a_row_that_stayed() -> None:
    dropped_total = 0
    for name, before, update in _stages({"records": 1000}):
        if name != "apply_rules":
            continue
        old, new = before["table"], update["table"]
        new_dropped = new["dropped_duplicates"][len(old["dropped_duplicates"]) :]
        new_quarantined = new["quarantine"][len(old["quarantine"]) :]
        kept = [row for row in old["dataset"] if not any(row is e["row"] for e in new_dropped)]
        assert len(kept) == len(new["dataset"]) + len(new_quarantined)
        kept_keys = Counter(row_key(row) for row in kept)
        for entry in new_dropped:
            assert kept_keys[row_key(entry["row"])] >= 1, entry
        dropped_total += len(new_dropped)
    assert dropped_total == round(1000 * 0.02) * 2


def test_profile_counts_nulls_and_shows_outliers_and_formats() -> None:
    trace = _stages({"records": 600})
    injected = trace[0][2]["injected"]
    profile = trace[1][2]["profile"]["columns"]
    assert profile["age"]["null_count"] == injected["missing_age"]
    assert profile["email"]["null_count"] == injected["missing_email"]
    assert profile["age"]["max"] > 120 or profile["age"]["min"] < 0
    assert (
        profile["customer_id"]["distinct_count"]
        == 600 - injected["exact_duplicate"] - injected["variant_duplicate"]
    )
    assert len(profile["phone"]["formats"]) <= 5
    assert profile["phone"]["format_count"] > 1
    assert {"min", "max", "mean", "median"} <= set(profile["income"])


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("records", 0),
        ("records", "many"),
        ("records", True),
        ("target_score", 1.5),
        ("max_iterations", MAX_ITERATIONS_CAP + 1),
        ("seed", 4.2),
    ],
)
def test_initialize_rejects_bad_settings(setting: str, value: Any) -> None:
    with pytest.raises(ValueError, match=setting):
        _call("initialize", {setting: value}, 0)


def test_initialize_fills_the_defaults() -> None:
    update = _call("initialize", {}, 0)
    assert (update["records"], update["seed"], update["target_score"], update["max_iterations"]) == (
        300,
        42,
        0.95,
        5,
    )
    assert len(update["table"]["dataset"]) == 300
    assert update["table"]["quarantine"] == update["table"]["dropped_duplicates"] == []
    assert update["history"][0]["iteration"] == 0


# the graph


def test_the_packaged_graph_is_the_pipeline() -> None:
    assert "data_quality" in graph_names()
    definition = load_graph_json("data_quality")
    assert definition == load_graph_json("data_quality.json")
    assert definition["name"] == "data-quality"
    assert set(definition["nodes"]) == {
        "initialize",
        "profile",
        "detect",
        "generate_rules",
        "apply_rules",
        "evaluate",
        "report",
    }
    assert any(node.get("retry", {}).get("max_attempts", 1) > 1 for node in definition["nodes"].values())
    loop, default = definition["edges"]["evaluate"]
    assert loop["to"] == "profile"
    assert {"key": "anomaly_count", "op": ">", "value": 0} in loop["when"]["all"]
    assert default == {"to": "report"}
    assert definition["max_steps"] >= 2 + len(STAGES) * MAX_ITERATIONS_CAP
    REGISTRY.get("dq.report")


def test_load_graph_json_names_only_packaged_files() -> None:
    with pytest.raises(FileNotFoundError, match="data_quality"):
        load_graph_json("nope")
    with pytest.raises(ValueError):
        load_graph_json("../pyproject")


# whole runs


@pytest.mark.parametrize("n", SIZES)
def test_each_size_reaches_its_target(runs: dict[int, Run], n: int) -> None:
    run = runs[n]
    assert run.status is RunStatus.SUCCEEDED, run.error
    state = run.state
    assert state["quality_score"] >= state["target_score"] == 0.95
    quality = state["report"]["quality"]
    assert quality["target_met"] is True
    assert quality["score_after"] == state["quality_score"]
    assert quality["score_before"] < quality["score_after"]
    assert quality["anomalies_remaining"] == state["anomaly_count"] == 0


def test_the_loop_is_needed(runs: dict[int, Run]) -> None:
    iterations = {n: run.state["iteration"] for n, run in runs.items()}
    assert max(iterations.values()) >= 2, iterations
    for run in runs.values():
        history = run.state["history"]
        for entry in history[1:-1]:
            assert entry["quality_score"] < run.state["target_score"], "it looped only while below target"


@pytest.mark.parametrize("n", SIZES)
def test_the_score_never_drops(runs: dict[int, Run], n: int) -> None:
    history = runs[n].state["history"]
    assert [h["iteration"] for h in history] == list(range(len(history)))
    scores = [h["quality_score"] for h in history]
    assert scores == sorted(scores)
    assert all(0.0 <= s <= 1.0 for s in scores)


@pytest.mark.parametrize("n", SIZES)
def test_no_good_row_is_deleted(runs: dict[int, Run], n: int) -> None:
    state = runs[n].state
    table = state["table"]
    dataset, quarantine, dropped = table["dataset"], table["quarantine"], table["dropped_duplicates"]
    assert len(dataset) + len(quarantine) + len(dropped) == n
    original, _ = generate(n, 42)
    kept = [*dataset, *(entry["row"] for entry in quarantine)]
    kept_ids = Counter(row["customer_id"] for row in kept)
    assert set(kept_ids) == {row["customer_id"] for row in original}, "every customer is still there"
    assert set(kept_ids.values()) == {1}
    kept_by_id = {row["customer_id"]: row for row in kept}
    for entry in dropped:
        twin = kept_by_id[entry["row"]["customer_id"]]
        assert _normalised(entry["row"]) == _normalised(twin), "the kept row holds the same values"
    for entry in quarantine:
        failures = set(row_failures(_normalised(entry["row"])))
        assert failures - {"age_not_null", "income_not_null", "country_not_null"}, entry
        assert entry["reasons"]
    injected = state["injected"]
    unrepairable = ("missing_email", "invalid_email", "age_outlier", "income_outlier", "invalid_phone")
    assert len(quarantine) == sum(injected[k] for k in unrepairable)
    assert len(dropped) == injected["exact_duplicate"] + injected["variant_duplicate"]


@pytest.mark.parametrize("n", SIZES)
def test_the_report_has_the_great_expectations_shape(runs: dict[int, Run], n: int) -> None:
    state = runs[n].state
    report = state["report"]
    assert json.loads(json.dumps(state)) == state
    assert len(report["results"]) == len(CHECKS)
    for item in report["results"]:
        assert set(item) == {"check", "expectation_config", "success", "result"}
        assert item["expectation_config"]["expectation_type"].startswith("expect_")
        assert set(item["result"]) == REPORT_RESULT_KEYS
        assert item["success"] is (item["result"]["unexpected_count"] == 0)
        assert len(item["result"]["partial_unexpected_list"]) <= 5
        assert item["result"]["element_count"] == len(state["table"]["dataset"])
    stats = report["statistics"]
    assert stats["evaluated_expectations"] == len(CHECKS)
    assert stats["successful_expectations"] + stats["unsuccessful_expectations"] == len(CHECKS)
    quality = report["quality"]
    assert quality["history"] == state["history"]
    assert quality["iterations"] == len(state["history"]) - 1
    table = state["table"]
    assert quality["quarantined_count"] == len(table["quarantine"])
    assert quality["dropped_duplicate_count"] == len(table["dropped_duplicates"])
    assert (quality["rows_in"], quality["rows_out"]) == (n, len(table["dataset"]))
    assert quality["anomalies_found"] == quality["anomalies_fixed"] + quality["anomalies_quarantined"]
    assert quality["anomalies_found"] > 0
    assert sum(quality["quarantine_reasons"].values()) >= quality["quarantined_count"]


def test_the_first_report_lists_what_failed() -> None:
    state = _stages({"records": 300, "max_iterations": 1})[-1][2]
    failing = [r for r in state["report"]["results"] if not r["success"]]
    assert {r["check"] for r in failing} == {"rows_unique", "phone_valid"}
    for item in failing:
        assert 0 < len(item["result"]["partial_unexpected_list"]) <= 5
        assert 0 < item["result"]["unexpected_percent"] <= 100


def test_same_seed_same_report(runs: dict[int, Run]) -> None:
    again = _run(_new_driver(), {"records": 600, "seed": 42})
    assert again.state["report"] == runs[600].state["report"]
    assert again.state["table"] == runs[600].state["table"]
    other = _run(_new_driver(), {"records": 600, "seed": 7})
    assert other.status is RunStatus.SUCCEEDED
    assert other.state["table"]["dataset"] != runs[600].state["table"]["dataset"]


def test_the_iteration_cap_ends_the_loop() -> None:
    run = _run(_new_driver(), {"records": 300, "max_iterations": 1})
    assert run.status is RunStatus.SUCCEEDED
    state = run.state
    assert state["iteration"] == 1
    assert state["can_iterate"] is False
    assert state["anomaly_count"] > 0
    assert state["report"]["quality"]["target_met"] is False
    assert state["report"]["success"] is False


def test_a_met_target_ends_the_loop_early() -> None:
    state = _run(_new_driver(), {"records": 300, "target_score": 0.9}).state
    assert state["iteration"] == 1
    assert state["target_met"] is True
    assert state["report"]["quality"]["anomalies_remaining"] == state["anomaly_count"] > 0


def test_bad_settings_fail_the_run_with_the_reason() -> None:
    run = _run(_new_driver(), {"records": -5})
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.node == "initialize"
    assert "records" in run.error.message


def test_engine_tools_dq_registers_every_stage() -> None:
    assert engine.tools.dq.CHECKS is CHECKS
    names = {f"dq.{stage}" for stage in ("initialize", *STAGES, "report")}
    assert names <= set(REGISTRY.names())
