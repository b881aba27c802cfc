"""Review QI: `space show|check|cost` say when a cell space's table is an estimate of its built networks' params
(exact spaces' output unchanged), and `export` prints the ONNX parity's relative difference too."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.compile import load_compiled
from automl.nn.measure import count_params

ROOT = Path(__file__).resolve().parents[1]
ENAS = str(ROOT / "spaces" / "enas_micro.space")
DARTS = str(ROOT / "spaces" / "darts.space")
NB201 = str(ROOT / "spaces" / "nasbench201.space")
DIGITS = str(ROOT / "spaces" / "digits.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def built_params(cs, arch) -> int:
    with torch.device("meta"):
        return count_params(cs.build_standalone(arch))


def random_arch(cs, seed: int):
    rng = random.Random(seed)
    return cs.encode({d.name: rng.choice(d.choices) for d in cs.decisions})


def table_is_off(path: str) -> bool:
    """Whether some network of the space builds to other params than its table says (what the note claims)."""
    cs = load_compiled(path)
    archs = [cs.cost_table.cheapest(), cs.cost_table.most_expensive(), *(random_arch(cs, s) for s in range(6))]
    return any(built_params(cs, a) != cs.cost_table.total(a) for a in archs)


@pytest.mark.parametrize("path", [ENAS, DARTS, NB201, DIGITS])
def test_check_and_show_say_the_table_is_an_estimate_only_where_it_is(path, capsys):
    estimate = table_is_off(path)
    assert main(["space", "check", path]) == 0
    line = capsys.readouterr().out
    assert ("table estimate" in line) == estimate, line
    assert re.search(r"params \S+\.\.\S+", line)  # the range itself is still there
    assert main(["space", "show", path]) == 0
    shown = capsys.readouterr().out
    assert ("table estimate" in shown) == estimate, shown
    assert "elastic width" not in shown  # the caveat of elastic widths is another one


def test_cost_keeps_its_json_and_says_the_built_count_on_stderr(tmp_path, capsys):
    cs = load_compiled(ENAS)
    arch = random_arch(cs, 3)
    built = built_params(cs, arch)
    assert built != cs.cost_table.total(arch)  # this architecture's table figure is off
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": list(cs.decode(arch))}))
    assert main(["space", "cost", ENAS, "--arch", str(path)]) == 0
    out, err = capsys.readouterr()
    ct = cs.cost_table
    assert json.loads(out) == {m: int(ct.total(arch, m)) for m in ct.metrics}  # unchanged: the table's figures
    assert "estimate" in err and f"{built:,} params" in err, err


def test_cost_of_an_exact_space_prints_nothing_else(tmp_path, capsys):
    cs = load_compiled(NB201)
    arch = random_arch(cs, 3)
    assert built_params(cs, arch) == cs.cost_table.total(arch)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": list(cs.decode(arch))}))
    assert main(["space", "cost", NB201, "--arch", str(path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["params"] == cs.cost_table.total(arch) and err == ""


def test_export_prints_the_parity_relative_difference(tmp_path, capsys):
    cs = load_compiled(DIGITS)
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"choices": [d.choices[-1] for d in cs.decisions]}))
    out = tmp_path / "out"
    assert main(["export", DIGITS, "--arch", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    onnx = json.loads((out / "manifest.json").read_text())["onnx"]
    assert (f"parity max |diff| {onnx['parity_max_abs_diff']:.2g} (relative {onnx['parity_max_rel_diff']:.2g})"
            in printed), printed


def test_cost_says_nothing_where_the_built_network_has_the_tables_params(tmp_path, capsys):
    """darts: an architecture whose built network has exactly its table's params gets no note."""
    cs = load_compiled(str(ROOT / "spaces" / "darts.space"))
    for seed in range(40):
        arch = torch.randint(0, 1 << 30, (cs.num_decisions,), generator=torch.Generator().manual_seed(seed))
        arch = arch % torch.tensor(cs.num_choices)
        with torch.device("meta"):
            built = count_params(cs.build_standalone(arch))
        if built == cs.cost_table.total(arch, "params"):
            break
    else:
        pytest.skip("no architecture of darts whose table params are exact among 40 drawn")
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"choices": cs.decode(arch)}))
    assert main(["space", "cost", str(ROOT / "spaces" / "darts.space"), "--arch", str(path)]) == 0
    assert capsys.readouterr().err == ""
