"""`automl export --arch MANIFEST --recipe R`: the manifest's cost_metric stays its own (its epsilon and
search_cost are of that search) where the new cost holds it, whatever R searches on; R's search.cost is taken
for an architecture file that records none."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_profile import _recipe  # the quickstart on a given metric with a given table
from test_review_y import table_file  # noqa: F401 (a fixture: digits' latency table by a fake clock)

from automl.cli import main
from automl.compile import load_compiled

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
QUICK = ROOT / "recipes" / "quickstart.yaml"

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _metric(folder: Path) -> str:
    return json.loads((folder / "manifest.json").read_text())["cost_metric"]


def test_a_plain_recipe_keeps_the_manifests_latency_metric(table_file, tmp_path):
    cs = load_compiled(DIGITS)
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    first = tmp_path / "first"
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(first),
                 "--recipe", str(_recipe(tmp_path, str(table_file)))]) == 0
    assert _metric(first) == "latency"  # R's search.cost, for a file that records none
    again = tmp_path / "again"  # the quickstart: params, no table (given for its data)
    assert main(["export", DIGITS, "--arch", str(first / "manifest.json"), "--out", str(again),
                 "--recipe", str(QUICK)]) == 0
    assert _metric(again) == "latency"
