"""report.md of a latency search names the members whose measured latency exceeds their budget, and why that
can be (a budget bounds the table's prediction; a measurement is one median on a loaded machine)."""

from automl.report import render_markdown


def _results(*members, metric="latency") -> dict:
    return {"recipe": "r", "method": "importance_sampling", "search_seconds": 1.0, "phase_seconds": {"weights": 1.0},
            "cost_metric": metric, "latency_protocol": {"batch": 1, "threads": 1, "clock": "wall"},
            "architectures": [{"epsilon": 0.0, "choices": ["a"], "params": 10, "test_accuracy": 0.5, **m}
                              for m in members]}


def test_a_member_measured_above_its_budget_is_named_with_its_measurement():
    report = render_markdown(_results({"budget": None, "cost": 0.05, "latency_ms": 0.0418},
                                      {"budget": 0.06, "cost": 0.055, "latency_ms": 0.0643},
                                      {"budget": 0.04, "cost": 0.039, "latency_ms": 0.0391}))
    line = next(x for x in report.splitlines() if x.startswith("Latency:"))
    assert "Measured above its budget: ≤ 0.06 ms (0.0643 ms)." in line, line
    assert "0.0391" not in line and "0.0418" not in line  # under its budget; no budget
    assert "the cost table's prediction" in line


def test_no_member_above_its_budget_adds_nothing():
    report = render_markdown(_results({"budget": 0.06, "cost": 0.055, "latency_ms": 0.05}))
    assert "Measured above" not in report


def test_a_params_search_compares_no_latency_with_its_budget():
    report = render_markdown(_results({"budget": 1.0, "cost": 1, "latency_ms": 5.0}, metric="params")
                             | {"latency_protocol": {"batch": 1, "threads": 1}})
    assert "Latency:" in report and "Measured above" not in report
