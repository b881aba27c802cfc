"""The run as stages: the searcher seam (a searcher defined here runs the whole pipeline) and reusing a
trained supernet (``automl run --supernet RUN_DIR``)."""

import json
import math
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.pipeline import Run, build_plan
from automl.pipeline.setup import engine_costs, load_spaces
from automl.recipe import load_recipe
from automl.search import Searcher, get_searcher, register_searcher

ROOT = Path(__file__).resolve().parents[1]
QUICK = str(ROOT / "recipes" / "quickstart.yaml")
TINY = ["data.limit_train=192", "data.batch_size=32", "data.theta_batch_size=32", "data.test_batch_size=512",
        "search.weight_epochs=2", "search.theta_epochs=2", "search.lam=2", "retrain.epochs=1",
        "export.onnx=false", "search.log_every=2", "device=cpu", "threads=1"]
EPS = ["search.epsilons=[0,0.5]"]


class CoordinateSearch(Searcher):
    """A tiny searcher: asks λ uniform architectures, keeps each member's lowest-loss one (N members share
    every loss). It records what it was asked and told, for the test to check the pipeline's use of it."""

    log: list = []

    def __init__(self, num_choices, n, lam, seed):
        self.num_choices, self.n, self.lam = list(num_choices), n, lam
        self.gen = torch.Generator().manual_seed(seed)
        self.best_arch = torch.zeros(n, len(num_choices), dtype=torch.long)
        self.best_loss = math.inf

    @property
    def num_distributions(self):
        return self.n

    def ask(self):
        k = torch.tensor(self.num_choices)
        arch = (torch.rand(self.lam, len(k), generator=self.gen) * k).long()
        self.log.append(("ask", arch.clone()))
        return arch

    def tell(self, arch, losses):
        losses = torch.as_tensor(losses)
        self.log.append(("tell", arch.clone(), losses.clone()))
        i = int(losses.argmin())
        if float(losses[i]) < self.best_loss:
            self.best_loss = float(losses[i])
            self.best_arch = arch[i].repeat(self.n, 1)

    def best(self):
        return self.best_arch.clone()

    def state_dict(self):
        return {"gen": self.gen.get_state(), "best_arch": self.best_arch, "best_loss": self.best_loss}

    def load_state_dict(self, state):
        self.gen.set_state(state["gen"])
        self.best_arch, self.best_loss = state["best_arch"], state["best_loss"]


@register_searcher("coordinate_test", mode="joint")
def _coordinate(problem):
    return CoordinateSearch(problem.num_choices, len(problem.members), problem.lam, problem.seed)


def test_a_searcher_defined_here_runs_the_pipeline(tmp_path):
    CoordinateSearch.log.clear()
    recipe = load_recipe(QUICK, TINY + EPS)
    res = Run(recipe, tmp_path / "run", tty=False, searcher="coordinate_test").execute()
    asks = [e for e in CoordinateSearch.log if e[0] == "ask"]
    tells = [e for e in CoordinateSearch.log if e[0] == "tell"]
    steps = 2 * math.ceil(96 / 32)  # θ epochs x D_θ batches (192 items, half of them D_θ)
    assert len(asks) == len(tells) == steps
    for (_, asked), (_, told, losses) in zip(asks, tells):  # told the losses of exactly what it asked
        assert torch.equal(asked, told) and losses.shape == (2,) and torch.isfinite(losses).all()
    losses = torch.cat([t[2] for t in tells])
    winner = tells[int(losses.argmin()) // 2][1][int(losses.argmin()) % 2]
    assert res["method"] == "coordinate_test" and len(res["architectures"]) == 2
    spaces = load_spaces(recipe)
    for a in res["architectures"]:  # every member is the searcher's answer: the lowest loss it was told
        assert a["choices"] == spaces.search.decode(winner) and a["test_accuracy"] is not None
    costs = engine_costs(spaces.search, "params", True)
    plan = build_plan(recipe, tmp_path, get_searcher("coordinate_test"), spaces, costs, torch.device("cpu"))
    assert plan.keys == ["weights", "theta", "retrain/0", "retrain/1", "report"]


def _cli(capsys, args):
    code = main(["run", QUICK, *TINY, *args])
    return code, capsys.readouterr()


@pytest.mark.heavy  # two full tiny runs and a refusal: 11 s
def test_reused_supernet_gives_a_full_runs_architectures_and_refuses_a_mismatch(tmp_path, capsys, monkeypatch):
    trained = tmp_path / "trained"
    assert _cli(capsys, EPS + ["--out", str(trained)])[0] == 0
    first = json.loads((trained / "results.json").read_text())
    assert first["supernet"]["from"] is None and first["phase_seconds"]["weights"] > 0

    # a new family on the trained supernet, twice: other ε, then budgets; the source checkpoint is read once
    from automl.train.checkpoint import CheckpointStore

    reads, load = [], CheckpointStore.load
    monkeypatch.setattr(CheckpointStore, "load", lambda self, *a, **k: reads.append(self.folder) or load(self, *a, **k))
    code, out = _cli(capsys, ["search.epsilons=[0.3]", "--out", str(tmp_path / "eps"), "--supernet", str(trained)])
    assert code == 0 and "weight phase skipped" in out.out
    assert [f for f in reads if str(f).startswith(str(trained))] == [trained / "checkpoints"]
    eps = json.loads((tmp_path / "eps" / "results.json").read_text())
    assert eps["supernet"]["from"] == str(trained.absolute())
    assert eps["supernet"]["fingerprint"] == first["supernet"]["fingerprint"] and not eps["supernet"]["forced"]
    assert "weights" not in eps["phase_seconds"]
    code, _ = _cli(capsys, ["search.budgets=[null,30k]", "--out", str(tmp_path / "budgets"),
                            "--supernet", str(trained)])
    assert code == 0
    budgets = json.loads((tmp_path / "budgets" / "results.json").read_text())
    assert budgets["architectures"][1]["cost"] <= 30_000

    # the same family from scratch: the θ phase is deterministic given the weights
    assert _cli(capsys, ["search.epsilons=[0.3]", "--out", str(tmp_path / "full")])[0] == 0
    full = json.loads((tmp_path / "full" / "results.json").read_text())
    assert [a["choices"] for a in eps["architectures"]] == [a["choices"] for a in full["architectures"]]
    assert [a["test_accuracy"] for a in eps["architectures"]] == [a["test_accuracy"] for a in full["architectures"]]

    # another space (a --set argument) and another weight phase: one message naming each key, exit 2
    code, out = _cli(capsys, EPS + ["space_args.width=0.5", "search.weight_epochs=3", "--out",
                                    str(tmp_path / "bad"), "--supernet", str(trained)])
    assert code == 2 and "Traceback" not in out.err
    assert "space_args" in out.err and "search.weight_epochs: 2 there, 3 here" in out.err
    assert "--supernet-force" in out.err and not (tmp_path / "bad").exists()  # refused before writing
    code, out = _cli(capsys, EPS + ["search.weight_epochs=3", "--out", str(tmp_path / "forced"),
                                    "--supernet", str(trained), "--supernet-force"])
    assert code == 0 and "warning" in out.out
    forced = json.loads((tmp_path / "forced" / "results.json").read_text())
    assert forced["supernet"]["forced"] and forced["supernet"]["differs"]


def test_supernet_of_a_run_without_one_is_refused(tmp_path, capsys):
    assert _cli(capsys, EPS + ["search.method=random", "retrain.epochs=0", "--out", str(tmp_path / "r")])[0] == 0
    code, out = _cli(capsys, EPS + ["--out", str(tmp_path / "x"), "--supernet", str(tmp_path / "r")])
    assert code == 2 and "no trained supernet" in out.err
    code, out = _cli(capsys, EPS + ["search.method=simultaneous", "--out", str(tmp_path / "s"), "--supernet",
                                    str(tmp_path / "r")])
    assert code == 2 and "search.method simultaneous trains no shared supernet" in out.err
    code, out = _cli(capsys, EPS + ["--out", str(tmp_path / "y"), "--supernet", str(tmp_path / "nothing")])
    assert code == 2 and "no checkpoint there" in out.err
    code, out = _cli(capsys, EPS + ["--out", str(tmp_path / "z"), "--supernet-force"])
    assert code == 2 and "--supernet-force needs --supernet" in out.err


def test_resume_with_new_search_settings_is_refused_and_points_to_supernet(tmp_path, capsys):
    out = tmp_path / "run"
    assert _cli(capsys, EPS + ["--out", str(out)])[0] == 0
    code, text = _cli(capsys, ["search.epsilons=[0.2]", "--out", str(out), "--resume"])
    assert code == 2 and f"--supernet {out}" in text.err


def test_fingerprint_records_the_split_and_the_ensemble_only_where_they_differ_from_before():
    """Runs recorded before data.split_seed and search.supernets keep matching: the keys appear only when the
    split is not the one the run's seed draws, or there is more than one supernet."""
    from automl.pipeline.reuse import weights_fingerprint

    def fp(*overrides):
        return weights_fingerprint(load_recipe(QUICK, TINY + list(overrides)), Path(QUICK), {})

    assert "data.split_seed" not in fp("search.supernets=1")                      # seed 0, split_seed 0
    assert "search.supernets" not in fp("search.supernets=1")
    assert fp()["search.supernets"] == 4                                         # the quickstart's four
    assert "data.split_seed" not in fp("seed=3", "data.split_seed=null")          # the split follows the seed
    assert fp("seed=3")["data.split_seed"] == 0                                  # seed 3 on split 0
    assert fp("seed=3", "data.split_seed=3") == fp("seed=3", "data.split_seed=null")
    assert fp("search.supernets=2")["search.supernets"] == 2


def test_a_supernet_counts_its_space_by_what_it_says(tmp_path):
    """--supernet: a space whose comments changed is the same space; a run recorded when spaces counted by
    their bytes still matches its unedited space; another space is a difference."""
    import hashlib
    import shutil

    from automl.pipeline.reuse import SPACE_DIGEST, load_supernet, weights_fingerprint
    from automl.pipeline.state import CKPT_FORMAT
    from automl.train.checkpoint import CheckpointStore

    space = Path(shutil.copy(ROOT / "spaces" / "digits.space", tmp_path / "digits.space"))
    original = space.read_bytes()
    recipe = load_recipe(QUICK, TINY)
    ours = weights_fingerprint(recipe, space, {})
    byte_wise = {**ours, SPACE_DIGEST: hashlib.sha256(original).hexdigest()}
    assert byte_wise != ours
    for name, recorded in (("now", ours), ("before", byte_wise)):
        CheckpointStore(tmp_path / name / "checkpoints").save({
            "format": CKPT_FORMAT, "recipe_sha256": "x", "stage": 1, "supernet": {"w": torch.zeros(3)},
            "supernet_origin": {}, "weights_fingerprint": recorded})
        assert load_supernet(tmp_path / name, ours, False, space)[2] == []
    space.write_bytes(original.replace(b"# ", b"#  ") + b"\n# edited\n")
    edited = weights_fingerprint(recipe, space, {})
    assert edited == ours and load_supernet(tmp_path / "now", edited, False, space)[2] == []
    space.write_bytes(original.replace(b"head = 128", b"head = 96"))
    other = weights_fingerprint(recipe, space, {})
    for name in ("now", "before"):
        assert load_supernet(tmp_path / name, other, True, space)[2] == [
            f"{SPACE_DIGEST}: \"{ours[SPACE_DIGEST] if name == 'now' else byte_wise[SPACE_DIGEST]}\" there, "
            f"\"{other[SPACE_DIGEST]}\" here"]
