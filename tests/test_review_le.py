"""A chained supernet reuse (C reuses B, which reused A's supernet) records and reports the run that trained the
weights (results.json's ``supernet.trained_by``), not only the run given; a record without the field (an older
automl's, or a run that reused the supernet of the run that trained it) reads and reports as before."""

import json
from pathlib import Path

import pytest

from automl.cli import main
from automl.pipeline.reuse import fingerprint_digest, load_supernet, weights_fingerprint
from automl.recipe import load_recipe
from automl.report import render_markdown
from helpers import fake_supernet_run
from test_reuse_fixes import DIGITS, FAST, QUICK


def _fingerprint():
    recipe = load_recipe(QUICK, FAST)
    return weights_fingerprint(recipe, DIGITS, {k: str(v) for k, v in recipe.space_args.items()})


def _reused(run: Path, fp: dict, origin: dict) -> dict:
    return {"from": str(run.absolute()), "fingerprint": fingerprint_digest(fp), "forced": False, "differs": [],
            **origin}


def test_a_chained_reuse_records_the_run_that_trained_the_supernet(tmp_path):
    fp = _fingerprint()
    a = fake_supernet_run(tmp_path / "A", fp)  # trained there: its origin's `from` is null
    b = fake_supernet_run(tmp_path / "B", fp, origin=_reused(a, fp, {}))
    c = fake_supernet_run(tmp_path / "C", fp, origin=_reused(b, fp, {"trained_by": str(a.absolute())}))
    # the run that trained it: no trained_by, `from` says it all (as before)
    direct = load_supernet(a, fp, False, DIGITS).origin
    assert direct["from"] == str(a.absolute()) and "trained_by" not in direct
    # one step: B reused A's, so A trained what B gives
    once = load_supernet(b, fp, False, DIGITS).origin
    assert once["from"] == str(b.absolute()) and once["trained_by"] == str(a.absolute())
    # two steps: C records A as the trainer, through B; the chain is followed, not just one link
    twice = load_supernet(c, fp, False, DIGITS).origin
    assert twice["from"] == str(c.absolute()) and twice["trained_by"] == str(a.absolute())
    assert {"fingerprint", "forced", "differs"} <= set(twice)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    a, b, c = root / "A", root / "B", root / "C"
    assert main(["run", QUICK, *FAST, "--out", str(a)]) == 0
    assert main(["run", QUICK, *FAST, "--out", str(b), "--supernet", str(a)]) == 0
    assert main(["run", QUICK, *FAST, "--out", str(c), "--supernet", str(b)]) == 0
    return a, b, c


def _supernet_line(report: str) -> str:
    return next(line for line in report.splitlines() if line.startswith("Supernet:"))


def test_a_run_reusing_a_reused_supernet_reports_the_run_that_trained_it(chain, capsys):
    a, b, c = chain
    b_res = json.loads((b / "results.json").read_text())
    c_res = json.loads((c / "results.json").read_text())
    # B took A's supernet from the run that trained it: recorded as before, without the new field
    assert b_res["supernet"]["from"] == str(a.absolute()) and "trained_by" not in b_res["supernet"]
    # C took it through B, whose weight phase was skipped: A trained it
    assert c_res["supernet"]["from"] == str(b.absolute())
    assert c_res["supernet"]["trained_by"] == str(a.absolute())
    assert c_res["supernet"]["fingerprint"] == b_res["supernet"]["fingerprint"]
    line = _supernet_line((c / "report.md").read_text(encoding="utf-8"))
    assert line.index(f"`{a.absolute()}`") < line.index(f"`{b.absolute()}`"), line  # the trainer named first
    assert "weight phase skipped" in line and "settings this recipe asks for" in line
    # C skipped its weight phase: no weight phase time, as for a plain reuse
    assert "weights" not in c_res["phase_seconds"] and "the weight phase was skipped" in (c / "report.md").read_text()


def test_a_record_without_trained_by_reports_as_before(chain):
    _, b, c = chain
    c_res = json.loads((c / "results.json").read_text())
    older = {**c_res, "supernet": {k: v for k, v in c_res["supernet"].items() if k != "trained_by"}}
    line = _supernet_line(render_markdown(older))
    assert line.startswith(f"Supernet: the trained supernet of `{b.absolute()}` (weight phase skipped")
    assert "taken through" not in line
    # a forced chained reuse still says it was forced, with what differs
    forced = {**c_res, "supernet": {**c_res["supernet"], "forced": True, "differs": ["seed: 0 there, 1 here"]}}
    line = _supernet_line(render_markdown(forced))
    assert "**forced**" in line and "seed: 0 there, 1 here" in line and str(c_res["supernet"]["trained_by"]) in line
