"""A whole run on a space with elastic width and resolution: search under budgets with the exact costs,
retrain each member at its resolution, export it as a timm network and ONNX at that size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from automl.compile import load_compiled
from automl.pipeline import Run
from automl.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
SPACE = """space elastic_run
input 3 x 16 x 16
resolution 12, 16
classes 4
choices mb = ir_k3_e3, ir_k5_e6
network
  stem width 8
  stage s1 width 8, 16 stride 2 repeat 2 choose mb then [mb, skip]
  stage s2 width 16, 24, 32 stride 2 depth 1, 2 choose mb
  head width 32
end
"""


def test_a_run_on_a_width_and_resolution_space(tmp_path):
    import onnxruntime as ort

    path = tmp_path / "elastic.space"
    path.write_text(SPACE)
    cs = load_compiled(str(path))
    budget = int((cs.cost_table.min_total() + cs.cost_table.max_total()) / 2)
    overrides = [f"space={path}", "data.dataset=synthetic", "data.synthetic.num_train=32",
                 "data.synthetic.num_test=16", "data.synthetic.num_classes=4", "data.synthetic.channels=3",
                 "data.synthetic.size=16", "data.batch_size=8", "data.theta_batch_size=8", "data.test_batch_size=16",
                 "search.weight_epochs=1", "search.theta_epochs=2", "search.lam=4",
                 f"search.budgets=[null,{budget}]", "retrain.epochs=1", "device=cpu"]
    res = Run(load_recipe(str(ROOT / "recipes" / "quickstart.yaml"), overrides), tmp_path / "run", resume=False,
              tty=False).execute()
    members = res["architectures"]
    assert len(members) == 2 and members[1]["cost"] <= budget
    for m in members:
        arch = cs.encode(m["choices"])
        size = cs.resolution(arch)
        assert m["cost"] == cs.cost_table.total(arch) == m["params"]  # the exact cost with its widths
        manifest = json.loads((tmp_path / "run" / m["onnx"]).with_name("manifest.json").read_text())
        assert manifest["input_shape"] == [3, size, size] and manifest["params"] == m["params"]
        assert m["test_accuracy"] is not None
        session = ort.InferenceSession(str(tmp_path / "run" / m["onnx"]), providers=["CPUExecutionProvider"])
        out = session.run(None, {"input": np.zeros((2, 3, size, size), dtype=np.float32)})[0]
        assert out.shape == (2, 4) and np.isfinite(out).all()
    assert torch.isfinite(torch.tensor([m["test_accuracy"] for m in members])).all()


def test_a_budget_the_search_cannot_guarantee_is_one_message(tmp_path, capsys):
    """With elastic depth the searchers count an optional layer as present, so the cheapest network they
    can guarantee within a budget costs more than the smallest one: a budget in between exits 2."""
    from automl.cli import main
    from automl.pipeline.setup import engine_costs

    path = tmp_path / "depth.space"
    path.write_text(SPACE.replace("resolution 12, 16\n", "").replace("depth 1, 2", "depth 1, 3"))
    cs = load_compiled(str(path))
    low, guaranteed = cs.cost_table.min_total(), engine_costs(cs, "params", True).cheapest()
    assert guaranteed > low
    budget = int((low + guaranteed) / 2)
    code = main(["run", str(ROOT / "recipes" / "quickstart.yaml"), f"space={path}", "data.dataset=synthetic",
                 "data.synthetic.channels=3", "data.synthetic.size=16", "data.synthetic.num_classes=4",
                 f"search.budgets=[null,{budget}]", "device=cpu", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "search.budgets[1]" in err and "elastic depth" in err and "Traceback" not in err
    # a budget exactly at what the search can guarantee is accepted
    from automl.pipeline.setup import check_budgets

    recipe = load_recipe(str(ROOT / "recipes" / "quickstart.yaml"),
                         [f"space={path}", f"search.budgets=[null,{guaranteed!r}]"])
    check_budgets(recipe, cs, print, engine_costs(cs, "params", True))
