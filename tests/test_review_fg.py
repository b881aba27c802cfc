"""Review FG: `automl rank`'s messages true of every run folder and registered searcher, a refused `automl export`
leaves none of the folders it created, and the searchers' argument errors name the argument and never echo a
number of hundreds of digits."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import automl.search._registry as registry
from automl.cli import main
from automl.compile import load_compiled
from automl.errors import UserError
from automl.pipeline.rank import _checked_checkpoint
from automl.search import MultiEpsilonSearch, get_searcher, register_searcher
from automl.search._checks import check_fits, shown

from test_ranking import QUICK, TINY  # the ranking tests' tiny synthetic run

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
ENAS = str(ROOT / "spaces" / "enas_micro.space")
BIG = 10 ** 400
TABLE = torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]])

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


# ------------------------------------------------------------------------------------------ automl rank's messages

def test_reused_retrainings_of_an_earlier_automl_rank_are_not_called_the_runs_own(tmp_path, capsys):
    """The run had no ranking (ranking: null): the retrainings reused are an earlier `automl rank`'s, not the
    run's; the message said "by the run's earlier ranking"."""
    out = tmp_path / "run"
    assert main(["run", QUICK, "--out", str(out), *TINY]) == 0
    assert main(["rank", str(out), "--archs", "3", "--seeds", "1"]) == 0
    capsys.readouterr()
    assert main(["rank", str(out), "--archs", "3", "--seeds", "1"]) == 0
    said = capsys.readouterr().out
    assert "3 of 3 retrainings were recorded by an earlier ranking of this run folder" in said
    assert "the run's earlier ranking" not in said


def _run_without_supernet(method: str, out: Path):
    store = SimpleNamespace(load=lambda: {"supernet": None}, missing=lambda: False, why_none=lambda: "")
    return SimpleNamespace(out=out, method=get_searcher(method), store=store)


def test_the_methods_automl_rank_needs_are_the_registered_ones_that_train_a_supernet(tmp_path, monkeypatch):
    """A plugin searcher of mode joint trains a shared supernet too: the message names it (it named only
    importance_sampling and separate); one of mode sample is not named."""
    # the built-in methods only (another test module's plugin, test_stages' coordinate_test, may be registered in
    # this process), and the plugins below go with the test
    builtin = ("importance_sampling", "separate", "simultaneous", "random")
    monkeypatch.setattr(registry, "_REGISTRY", {k: v for k, v in registry._REGISTRY.items() if k in builtin})
    register_searcher("my_joint", "joint")(lambda problem: None)
    register_searcher("my_sampler", "sample")(lambda problem: None)
    with pytest.raises(UserError) as e:
        _checked_checkpoint(_run_without_supernet("random", tmp_path))
    said = str(e.value)
    assert "search.method random trains no shared supernet" in said
    needs = said.split("needs a run of search.method ")[1]
    assert needs == "importance_sampling, my_joint or separate"
    with pytest.raises(UserError, match="search.method my_sampler trains no shared supernet"):
        _checked_checkpoint(_run_without_supernet("my_sampler", tmp_path))


# ------------------------------------------------------------------------------------------ a refused export

def test_a_refused_export_removes_the_parent_folders_it_created(tmp_path, capsys):
    """--out a/b/net with weights of another space: the export is refused, and neither net nor a/b (which
    writable_dir created) stays behind; a folder that existed before stays."""
    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in load_compiled(DIGITS).decisions]}))
    ckpt = tmp_path / "enas.pt"
    torch.save({"supernet": load_compiled(ENAS).build_supernet().state_dict()}, ckpt)
    (tmp_path / "there").mkdir()
    out = tmp_path / "there" / "a" / "b" / "net"
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(out), "--weights", str(ckpt)]) == 2
    assert "does not fit space digits" in capsys.readouterr().err
    assert not (tmp_path / "there" / "a").exists() and (tmp_path / "there").is_dir()
    # a path through ".." (a/../c/net): c and a are removed, the folder above them stays
    out = tmp_path / "there" / "a" / ".." / "c" / "net"
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(out), "--weights", str(ckpt)]) == 2
    assert sorted(p.name for p in (tmp_path / "there").iterdir()) == []


def test_a_refused_export_keeps_a_created_folder_someone_wrote_in(tmp_path, capsys, monkeypatch):
    """Only empty folders are removed: a file put in a/ meanwhile keeps a/ (b/ and net/ go)."""
    import automl.commands.export as export

    arch = tmp_path / "arch.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in load_compiled(DIGITS).decisions]}))
    out = tmp_path / "a" / "b" / "net"

    def refused(*args, **kwargs):
        (tmp_path / "a" / "note.txt").write_text("kept")
        raise UserError("refused")

    monkeypatch.setattr(export, "export_architecture", refused)
    assert main(["export", DIGITS, "--arch", str(arch), "--out", str(out)]) == 2
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["note.txt"]


# ------------------------------------------------------------------------------------------ argument errors

def test_sample_uniform_of_a_count_beyond_int64_names_n():
    """It was torch's TypeError 'Overflow when unpacking long long', naming no argument."""
    engine = MultiEpsilonSearch([3, 3], TABLE, epsilons=[0.0], lam=4)
    for n in (BIG, 2 ** 63, 2 ** 40):
        with pytest.raises(ValueError, match=r"^n=.* is too large: sample_uniform's \(n, D\) draw .* use n <= "):
            engine.sample_uniform(n)
    assert engine.sample_uniform(5).shape == (5, 2)


@pytest.mark.parametrize("kw, start", [
    (dict(lr=BIG), "lr must be a positive finite number"),
    (dict(budget_lr=-BIG), "budget_lr must be a positive finite number"),
    (dict(theta_min=BIG), "theta_min must be None or a number"),
    (dict(seed=BIG), "seed must be an integer in"),
    (dict(lam=-BIG), "lam must be an integer >= 2"),
    (dict(lam=BIG), "lam=10,000,000,000"),
    (dict(epsilons=[0.5, BIG]), "epsilons must be finite and >= 0"),
    (dict(lr=10 ** 5000), "lr must be a positive finite number"),  # beyond str()'s 4,300 digits: was str()'s error
    (dict(seed=-10 ** 5000), "seed must be an integer in"),
])
def test_a_number_of_hundreds_of_digits_is_shortened_in_the_message(kw, start):
    """lr=10**400 echoed its 401 digits; 10**5000 was Python's 'Exceeds the limit (4300 digits)' instead."""
    with pytest.raises(ValueError) as e:
        MultiEpsilonSearch([3, 3], TABLE, **{"epsilons": [0.0], "lam": 4, **kw})
    said = str(e.value)
    assert said.startswith(start) and len(said) < 400 and "0" * 100 not in said, said
    assert "digits" in said or "characters)" in said


def test_epsilons_beyond_float64_are_reported_as_given_not_as_inf():
    with pytest.raises(ValueError, match=rf"got \[1000000000.*\({len(repr([BIG]))} characters\)$") as e:
        MultiEpsilonSearch([3, 3], TABLE, epsilons=[0.5, BIG], lam=4)
    assert "inf" not in str(e.value)
    with pytest.raises(ValueError, match=r"epsilons must be finite and >= 0, got \[-1, -2.0, inf\]$"):
        MultiEpsilonSearch([3, 3], TABLE, epsilons=[-1, 0.5, -2.0, float("inf")], lam=4)


def test_short_values_are_echoed_as_before():
    assert shown(0.5) == "0.5" and shown([1, -2]) == "[1, -2]" and shown("x") == "'x'"
    assert shown(-(10 ** 5000)) == "a negative integer of about 5,001 digits"
    held = 2 * 46_341 ** 2
    with pytest.raises(ValueError) as e:
        check_fits("lam", 46_341, held, "tell()'s tables", 46_340)
    assert str(e.value) == (f"lam=46,341 is too large: tell()'s tables would hold {held:,} numbers "
                            f"({held * 8 / 2 ** 30:,.3g} GiB in float64), more than 4,294,967,296; use lam <= 46,340")
