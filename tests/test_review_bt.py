"""Review BT: `automl space profile` tables against the network they claim to describe.

Every table here is profiled with a fake clock (a latency computed from the module's parameters, never a timing),
so that what the whole networks take is known in advance and no assertion depends on this machine's load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from timm.models.efficientnet import EfficientNet

import automl.profile as profile
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.nn.membership import encode_timm_model
from automl.profile import profile_space, read_cost_table

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _blocks(net: EfficientNet) -> int:
    return sum(len(stage) for stage in net.blocks)


class _Clock:
    """A fake ``time_module``: a piece takes 1 ms (the per-call overhead) + 1 µs per parameter; a whole network
    (timm's EfficientNet) what ``whole(net)`` says, recorded with the network's choices."""

    def __init__(self, cs, whole):
        self.cs, self.whole, self.networks = cs, whole, []

    def __call__(self, module, shapes, threads, repeat, warmup, clock="wall"):
        if isinstance(module, EfficientNet):
            ms = self.whole(module)
            self.networks.append((encode_timm_model(self.cs, module), ms))
            return ms
        return 1.0 + 1e-3 * _params(module)


def _predict(table: dict, choices: dict[str, str]) -> float:
    return table["fixed"] + sum(d["choices"][choices[d["name"]]] for d in table["decisions"])


def _mape(table: dict, networks) -> float:
    return float(100 * np.mean([abs(_predict(table, ch) - ms) / ms for ch, ms in networks]))


# ---- a table of a space whose layers changed is refused ----------------------------------------------------------

def _digits_table(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(profile, "time_module", lambda m, *a, **k: 1.0 + 1e-3 * _params(m))
    path = tmp_path / "lat.json"
    path.write_text(json.dumps(profile_space(load_compiled(str(DIGITS)), repeat=1, calibrate=0, progress=False)))
    return path


def test_a_table_of_a_space_whose_stride_changed_is_refused(tmp_path, monkeypatch, capsys):
    """Same decisions, choices, input size and parameter counts (a stride changes none of them), but every layer
    after it sees a 4x larger map: the table's latencies are another network's."""
    table = _digits_table(tmp_path, monkeypatch)
    text = DIGITS.read_text()
    changed = tmp_path / "digits.space"
    changed.write_text(text.replace("stage s2 width 32 * width stride 2", "stage s2 width 32 * width stride 1"))
    assert changed.read_text() != text
    cs = load_compiled(str(changed))
    assert cs.cost_table.fixed["params"] == load_compiled(str(DIGITS)).cost_table.fixed["params"]
    with pytest.raises(UserError, match="layers differ from those profiled") as e:
        read_cost_table(table, cs)
    assert str(table) in str(e.value) and f"automl space profile {changed}" in str(e.value)
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    assert main(["space", "cost", str(changed), "--arch", str(arch), "--cost-table", str(table)]) == 2
    assert "layers differ from those profiled" in capsys.readouterr().err


def test_the_same_space_elsewhere_and_a_table_without_the_fingerprint_are_accepted(tmp_path, monkeypatch):
    table = _digits_table(tmp_path, monkeypatch)
    copy = tmp_path / "copy.space"
    copy.write_text(DIGITS.read_text() + "\n# a comment\n")
    read_cost_table(table, load_compiled(str(copy)))  # the same layers: no refusal
    old = json.loads(table.read_text())
    del old["space"]["pieces_fingerprint"]  # a table written before tables recorded it, or by hand
    table.write_text(json.dumps(old))
    changed = tmp_path / "digits.space"
    changed.write_text(DIGITS.read_text().replace("stride 2 repeat", "stride 1 repeat"))
    read_cost_table(table, load_compiled(str(changed)))


# ---- the calibration's error figures are those of the table as written -------------------------------------------

def test_the_error_after_the_fit_is_the_written_tables_error(monkeypatch):
    """Whole networks take 0.4 ms less per piece than the pieces timed alone: the fit finds c = 0.4 ms, which takes
    the smaller pieces (the stem) to 0 ms. The error reported after the fit is the table's as written, not the
    unclipped fit's (0 here)."""
    cs = load_compiled(str(DIGITS))
    clock = _Clock(cs, lambda net: 1.0 + 1e-3 * _params(net) - 0.4 * (2 + _blocks(net)))
    monkeypatch.setattr(profile, "time_module", clock)
    table = profile_space(cs, repeat=1, calibrate=6, progress=False)
    assert table["fixed_parts"]["stem"] == 0.0  # clipped
    cal = table["calibration"]
    assert cal["per_piece_ms"] == pytest.approx(0.4)
    actual = _mape(table, clock.networks)
    assert actual > 0.1  # the fit has the stem at 0.18 - 0.4 ms, the table at 0
    assert cal["mape_after_pct"] == pytest.approx(actual)


def test_the_held_out_error_predicts_each_network_from_the_others(monkeypatch):
    """With 2 networks, each is predicted by the fit on the other alone. Whole networks slower than their pieces
    are the scale's to explain (c stays >= 0): the fit on network j alone is scale_j = y_j / sum_j (c 0), worked
    out here from the uncalibrated table, and network i is predicted as overhead + scale_j * sum_i."""
    cs = load_compiled(str(DIGITS))
    # 10 % slower than its pieces, and 0.05 ms a layer more: the two networks' own scales differ
    clock = _Clock(cs, lambda net: 1.0 + 1.1e-3 * _params(net) + 0.05 * (2 + _blocks(net)))
    monkeypatch.setattr(profile, "time_module", clock)
    plain = profile_space(cs, repeat=1, calibrate=0, progress=False)
    table = profile_space(cs, repeat=1, calibrate=2, progress=False)
    (ch0, y0), (ch1, y1) = clock.networks
    assert ch0 != ch1
    sums = [_predict(plain, ch) - 1.0 for ch in (ch0, ch1)]
    ys = [y0 - 1.0, y1 - 1.0]
    scale = [y / s for s, y in zip(sums, ys)]
    expected = [abs(1.0 + scale[1 - i] * sums[i] - (ys[i] + 1.0)) / (ys[i] + 1.0) for i in (0, 1)]
    assert table["calibration"]["mape_heldout_pct"] == pytest.approx(100 * np.mean(expected))
    assert table["calibration"]["mape_heldout_pct"] > 0.1
    assert table["calibration"]["per_piece_ms"] == 0.0 and table["calibration"]["scale"] > 1.1


def test_one_network_has_no_held_out_error(monkeypatch):
    cs = load_compiled(str(DIGITS))
    monkeypatch.setattr(profile, "time_module", _Clock(cs, lambda net: 1.0 + 1.3e-3 * _params(net)))
    cal = profile_space(cs, repeat=1, calibrate=1, progress=False)["calibration"]
    assert cal["mape_after_pct"] == pytest.approx(0.0, abs=1e-9)  # one c fitted to one network: no measure of error
    assert cal["mape_heldout_pct"] is None


# ---- the command says how far the table is from whole networks ----------------------------------------------------

def test_profile_prints_the_tables_error_on_whole_networks(tmp_path, monkeypatch, capsys):
    cs = load_compiled(str(DIGITS))
    monkeypatch.setattr(profile, "time_module", _Clock(cs, lambda net: 1.0 + 1.5e-3 * _params(net) ** 0.95))
    out = tmp_path / "lat.json"
    assert main(["space", "profile", str(DIGITS), "--repeat", "1", "--calibrate", "4", "--out", str(out)]) == 0
    cal = json.loads(out.read_text())["calibration"]
    text = capsys.readouterr().out
    assert "checked on 4 whole network(s)" in text
    for key in ("mape_before_pct", "mape_after_pct", "mape_heldout_pct"):
        assert f"{cal[key]:.1f} %" in text


def test_profile_says_a_table_is_not_checked(tmp_path, monkeypatch, capsys):
    cs = load_compiled(str(DIGITS))
    monkeypatch.setattr(profile, "time_module", _Clock(cs, lambda net: 1.0))
    out = tmp_path / "lat.json"
    assert main(["space", "profile", str(DIGITS), "--repeat", "1", "--calibrate", "0", "--out", str(out)]) == 0
    assert "not checked against whole networks (--calibrate 0)" in capsys.readouterr().out
    assert main(["space", "profile", str(ROOT / "spaces" / "nasbench201.space"), "--set", "cells=1", "--repeat", "1",
                 "--out", str(out)]) == 0
    assert "not checked against whole networks (--calibrate 8 times whole networks of chain spaces only)" in \
        capsys.readouterr().out


# ---- a recipe's table from another machine is said -----------------------------------------------------------------

def test_a_recipes_table_of_another_machine_is_noted(tmp_path, monkeypatch, caplog):
    table = _digits_table(tmp_path, monkeypatch)
    cs = load_compiled(str(DIGITS))
    with caplog.at_level("INFO", logger="automl.profile"):
        read_cost_table(table, cs, source="r.yaml search.cost_table")  # measured here: nothing to say
    assert not caplog.records
    data = json.loads(table.read_text())
    data["machine"]["cpu"] = "Cortex-A72 (a Raspberry Pi 4)"
    table.write_text(json.dumps(data))
    with caplog.at_level("INFO", logger="automl.profile"):
        read_cost_table(table, cs)  # `space cost --cost-table`: the user asks for that machine's latencies
        assert not caplog.records
        read_cost_table(table, cs, source="r.yaml search.cost_table")
    text = caplog.records[0].getMessage()
    assert "r.yaml search.cost_table" in text and str(table) in text and "Cortex-A72" in text
    assert profile.machine_info(1)["cpu"] in text and "latency_ms" in text
