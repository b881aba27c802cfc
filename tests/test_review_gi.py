"""Review GI: results.json read as UTF-8 whatever the locale, and one nested too deep read as damaged; report.md's
words for an undefined rank correlation fit a value missing, null and NaN; a recipe path no file system takes
(a NUL character, a lone surrogate) is refused at its key."""

import json
import os
import subprocess
import sys

import pytest

from automl._io import atomic_write_json
from automl.errors import RecipeError
from automl.pipeline.results import read_results
from automl.recipe import load_recipe, parse_recipe
from automl.report import render_markdown

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACE = os.path.join(ROOT, "spaces", "digits.space")


# ---- 1. read_results ----------------------------------------------------------------------------------------------

def _as_automl_writes() -> dict:
    """A results.json's shape at its deepest (ranking.archs[j].retrainings[s].seed: 6 lists and objects)."""
    retraining = {"seed": 0, "test_loss": 1.0, "test_accuracy": 0.5}
    return {"recipe": "r", "note": "café — edited by hand",
            "ranking": {"archs": [{"choices": ["a", "b"], "retrainings": [retraining]}], "retrain_epochs": 1}}


def test_read_results_reads_utf8_under_an_ascii_locale(tmp_path):
    """A hand-edited results.json with UTF-8 text, read with the C locale (ASCII, no UTF-8 mode): read as written,
    not taken for damaged (automl rank would write it anew, dropping the edit and what it records)."""
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_as_automl_writes(), ensure_ascii=False), encoding="utf-8")
    code = ("import json, sys; from pathlib import Path; from automl.pipeline.results import read_results; "
            "print(json.dumps(read_results(Path(sys.argv[1]))))")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    env.pop("PYTHONIOENCODING", None)
    p = subprocess.run([sys.executable, "-c", code, str(path)], env=env, capture_output=True, text=True, cwd=ROOT,
                       timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout) == _as_automl_writes()


def test_read_results_skips_a_byte_order_mark(tmp_path):
    """A results.json saved by an editor as "UTF-8 with BOM" is still the run's."""
    path = tmp_path / "results.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_as_automl_writes()).encode("utf-8"))
    assert read_results(path) == _as_automl_writes()


def test_read_results_takes_a_file_nested_too_deep_to_parse_for_damaged(tmp_path):
    """[[[[...]]]] 100,000 deep: Python's parser stops on its recursion limit; read as damaged ({}: written anew
    from the run's last checkpoint), not a traceback."""
    path = tmp_path / "results.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    assert read_results(path) == {}
    path.write_text('{"recipe": "r", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert read_results(path) == {}


def test_read_results_takes_a_file_too_deep_to_write_back_for_damaged(tmp_path):
    """500 deep parses, but writing it back (automl rank adds its ranking to what it read) would stop on the
    recursion limit: read as damaged. What automl writes is read whole."""
    path = tmp_path / "results.json"
    written = _as_automl_writes()
    atomic_write_json(path, written)
    assert read_results(path) == written
    path.write_text(json.dumps({**written, "junk": 0})[:-1] + ', "deep": ' + "[" * 500 + "]" * 500 + "}")
    results = read_results(path)
    assert results == {}
    atomic_write_json(tmp_path / "again.json", results)  # what its callers then write


# ---- 2. report.md: why a rank correlation is undefined --------------------------------------------------------------

def _results_with_ranking(arch_2: dict) -> dict:
    """A results.json whose ranking's batch-statistics τ is undefined (null), its third architecture ``arch_2``."""
    archs = [{"choices": [str(j)], "params": 10 + j, "supernet_accuracy": 0.1 * j,
              "supernet_accuracy_batch_stats": 0.1 * j, "test_accuracy": 0.5 + 0.1 * j,
              "retrainings": [{"seed": 0, "test_loss": 1.0, "test_accuracy": 0.5 + 0.1 * j}]} for j in range(2)]
    ranking = {"kendall_tau": 1.0, "spearman": 1.0, "kendall_tau_batch_stats": None, "seeds": 1,
               "truth": "accuracy", "archs": archs + [arch_2], "retrain_epochs": 1, "seconds": 1.0,
               "pairs": {"concordant": 3, "discordant": 0, "tied": 0, "total": 3}}
    member = {"epsilon": 0.0, "budget": None, "choices": ["x"], "params": 100, "cost": 100.0, "test_accuracy": 0.9,
              "weights": "retrained", "macs": 1e6, "latency_ms": None, "int8": None, "onnx": None}
    return {"recipe": "r", "method": "importance_sampling", "search_seconds": 1.0,
            "phase_seconds": {"weights": 0.5, "theta": 0.5}, "cost_metric": "params", "supernet": None,
            "architectures": [member], "ranking": ranking}


def _why(arch_2: dict) -> str:
    text = render_markdown(_results_with_ranking(arch_2))
    return text[text.index("With each batch's own BatchNorm statistics"):].split("\n")[0]


_THIRD = {"choices": ["2"], "params": 12, "supernet_accuracy": 0.2, "test_accuracy": 0.7,
          "retrainings": [{"seed": 0, "test_loss": 1.0, "test_accuracy": 0.7}]}


def test_report_says_a_missing_value_is_missing_not_a_diverged_network():
    """An older automl's results.json, or one edited: the key is not there. No network diverged."""
    why = _why(_THIRD)  # no supernet_accuracy_batch_stats
    assert "ranking.archs[2].supernet_accuracy_batch_stats" in why and "older automl" in why, why
    assert "diverged" not in why and "NaN" not in why, why


def test_report_says_a_null_value_may_be_a_nan_written_as_null_or_an_edit():
    why = _why({**_THIRD, "supernet_accuracy_batch_stats": None})
    assert ("a value is NaN or inf, which results.json writes as null (ranking.archs[2].supernet_accuracy_batch_stats: "
            "a network diverged, or the file was edited)") in why, why


def test_report_says_a_nan_value_is_a_diverged_network():
    why = _why({**_THIRD, "supernet_accuracy_batch_stats": float("nan")})
    assert "a value is NaN or inf (a network diverged)" in why and "null" not in why and "edited" not in why, why


# ---- 3. a recipe path no file system takes ---------------------------------------------------------------------------

def _recipe(extra: str = "", data: str = "{dataset: digits}", search: str = "") -> str:
    return (f"name: q\nspace: {json.dumps(SPACE)}\ndata: {data}\n"
            f"search: {{weight_epochs: 1, theta_epochs: 1{search}}}\nretrain: {{epochs: 0}}\n{extra}")


@pytest.mark.parametrize("given, key, line", [
    ({"extra": 'export: {dir: "a\\0b"}\n'}, "export.dir", 6),
    ({"extra": 'export: {dir: "/tmp/a\\0b"}\n'}, "export.dir", 6),
    ({"extra": 'supernet: "/tmp/run\\0"\n'}, "supernet", 6),
    ({"data": '{dataset: imagefolder, root: "/data\\0/x"}'}, "data.root", 3),
    ({"data": '{dataset: imagefolder, root: "data\\0"}'}, "data.root", 3),  # relative: resolved first
    ({"search": ', cost_table: "t\\0.json"'}, "search.cost_table", 4),
])
def test_a_nul_in_a_recipe_path_is_refused_at_its_key(tmp_path, given, key, line):
    path = tmp_path / "r.yaml"
    path.write_text(_recipe(**given), encoding="utf-8")
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:{line}: {key}: this path holds a NUL character"), msg


@pytest.mark.parametrize("space", [SPACE + "\0", "digits\0.space"])
def test_an_unusable_space_path_is_refused_at_its_key(tmp_path, space):
    path = tmp_path / "r.yaml"
    path.write_text(_recipe().replace(json.dumps(SPACE), json.dumps(space)), encoding="utf-8")
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    assert str(e.value).startswith(f"{path}:2: space: this path holds "), str(e.value)


@pytest.mark.parametrize("override", ['export.dir="/tmp/a\\0b"', 'space="x\\0.space"', 'data.root="d\\0"'])
def test_a_nul_in_an_override_path_is_refused_naming_the_override(override):
    key = override.split("=")[0]
    with pytest.raises(RecipeError) as e:
        parse_recipe(_recipe(data="{dataset: imagefolder, root: /data}"), "r.yaml", overrides=[override])
    assert f"{key}: override {override}: this path holds a NUL character" in str(e.value), str(e.value)


def test_a_lone_surrogate_in_a_recipe_path_is_refused_at_its_key():
    with pytest.raises(RecipeError) as e:
        parse_recipe(_recipe('export: {dir: "/tmp/a\\ud800b"}\n'), "r.yaml")
    assert str(e.value).startswith("r.yaml:6: export.dir: this path holds '\\ud800' (U+D800), a lone UTF-16 "
                                   "surrogate"), str(e.value)


def test_the_cli_refuses_a_nul_in_export_dir_with_exit_2(tmp_path):
    """The command a user runs: exit 2 and one line naming the file, line and key; before, an internal error
    (ValueError: embedded null byte, from os.path.realpath) with exit 1."""
    path = tmp_path / "r.yaml"
    path.write_text(_recipe('export: {dir: "a\\0b"}\n'), encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "automl", "run", str(path), "threads=1", "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert p.returncode == 2, p.stderr[-3000:]
    assert f"{path}:6: export.dir: this path holds a NUL character" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()
