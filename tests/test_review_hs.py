"""Review HS: a file where a folder is to be made (``mkdir`` of an existing file, a path through a file) is the
user's, named with the file to move away; exit 2, not an internal error."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

from automl._io import make_folder
from automl.cli import main
from automl.commands import space as space_command

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")


def _cli(capsys, *argv) -> tuple[int, str]:
    """``automl ARGV``'s exit code and standard error (a traceback is this file's to look for)."""
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("below", ["", "sub", "sub/deeper"])
def test_a_file_where_a_folder_is_to_be_is_named(monkeypatch, capsys, tmp_path, below):
    """A run folder whose ``export`` (say) is a file: ``make_folder`` stops with EEXIST (the file itself) or
    ENOTDIR (a folder below it); both were an internal error with a traceback."""
    (tmp_path / "export").write_text("not a folder")
    target = tmp_path / "export" / below if below else tmp_path / "export"
    monkeypatch.setattr(space_command, "main", lambda args: make_folder(target))
    code, err = _cli(capsys, "space", "check", DIGITS)
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    assert err.count(f"{tmp_path / 'export'} is a file, where a folder is to be made; remove or rename") == 1, err


def test_an_exists_error_on_a_folder_stays_internal(monkeypatch, capsys, tmp_path):
    """EEXIST for what is a folder is no file in the way: our own bug (an O_EXCL create, say), exit 1."""
    def exists(args):
        raise FileExistsError(errno.EEXIST, "File exists", str(tmp_path))

    monkeypatch.setattr(space_command, "main", exists)
    code, err = _cli(capsys, "space", "check", DIGITS)
    assert code == 1 and "internal error" in err, err


def test_a_link_to_a_folder_on_the_way_is_no_file(monkeypatch, capsys, tmp_path):
    """A link to a folder is a folder on the way: the file named is the one below it."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    monkeypatch.setattr(space_command, "main", lambda args: make_folder(tmp_path / "link" / "f" / "sub"))
    code, err = _cli(capsys, "space", "check", DIGITS)
    assert code == 2 and f"{tmp_path / 'link' / 'f'} is a file, where a folder" in err, err


# ------------------------------------------------------------------ a table of other --set values is kept

def test_a_table_of_other_set_values_is_not_to_be_overwritten(tmp_path, capsys, monkeypatch):
    """A table profiled without --set, used with ``--set width=2.0``: the refusal's command measured into the
    same file, which still fits the space without --set; it names a file of its own and keeps the table."""
    import json

    import automl.profile as profile
    from automl.compile import load_compiled
    from test_edge_fixes import _fake_time

    table = tmp_path / "latency.json"
    monkeypatch.setattr(profile, "time_module", _fake_time)
    assert main(["space", "profile", DIGITS, "--repeat", "1", "--calibrate", "0", "--out", str(table)]) == 0
    cs = load_compiled(DIGITS, {"width": "2.0"})
    arch = tmp_path / "a.json"
    arch.write_text(json.dumps({"choices": [d.choices[0] for d in cs.decisions]}))
    capsys.readouterr()
    code, err = _cli(capsys, "space", "cost", DIGITS, "--set", "width=2.0", "--arch", arch, "--cost-table", table)
    assert code == 2 and "widths or ops differ" in err, err
    new = tmp_path / "latency-width2.0.json"
    assert f"--set width=2.0 --out {new}` and give --cost-table {new} (keep {table} for no --set values)" in err, err
    assert f"--out {table}`" not in err, err
    # a recipe's table: the command alone would leave search.cost_table naming the old file
    recipe = tmp_path / "latency.yaml"
    recipe.write_text((ROOT / "recipes" / "quickstart.yaml").read_text()
                      .replace("../spaces/digits.space", DIGITS)
                      .replace("  cost: params", f"  cost: latency\n  cost_table: {table}"))
    code, err = _cli(capsys, "run", recipe, "space_args.width=2.0", "search.budgets=[null]",
                     "--out", tmp_path / "run")
    assert code == 2 and f"--out {new}` and give search.cost_table {new} (keep {table}" in err, err


# ------------------------------------------------------------------ integers too large for a float

HUGE = "1" + "0" * 400


@pytest.mark.parametrize("override,key", [(f"search.budgets=[null,{HUGE}]", "search.budgets[1]"),
                                          (f"search.theta_lr={HUGE}", "search.theta_lr")])
def test_an_integer_too_large_for_a_float_is_a_user_error(tmp_path, capsys, override, key):
    """``float()`` of YAML's 1 and 400 zeros raised OverflowError: an internal error, exit 1."""
    code, err = _cli(capsys, "run", ROOT / "recipes" / "quickstart.yaml", override, "--out", tmp_path / "run")
    assert code == 2 and f"{key}: override" in err and "finite number" in err, err
    assert "Traceback" not in err and "internal error" not in err, err


def test_a_file_value_an_override_replaces_does_not_break_the_line_lookup(tmp_path, capsys):
    """The file's budgets hold a number too large for a float, which the override replaces; the start-up refusal
    of the override's budget looks up the file's line, which validated the file alone and raised OverflowError."""
    recipe = tmp_path / "big.yaml"
    recipe.write_text((ROOT / "recipes" / "quickstart.yaml").read_text()
                      .replace("../spaces/digits.space", DIGITS)
                      .replace("  budgets: [null, 80k, 40k, 20k]", f"  budgets: [null, {HUGE}]"))
    assert f"budgets: [null, {HUGE}]" in recipe.read_text()
    code, err = _cli(capsys, "run", recipe, "search.budgets=[null,1]", "--out", tmp_path / "run")
    assert code == 2 and "search.budgets[1]: override search.budgets=[null,1]: 1 is below the smallest " \
        "architecture" in err, err
    assert "Traceback" not in err and "internal error" not in err, err


def test_export_recipe_data_not_found_is_located_at_data_root(tmp_path, capsys):
    """``automl export --recipe R`` of a recipe whose data.root holds no CIFAR-10: the refusal names the recipe's
    line of data.root, as ``automl run`` does (it named no file)."""
    import json

    (tmp_path / "a.json").write_text(json.dumps({"choices": ["ir_k3_e3"] * 9}))
    recipe = tmp_path / "r.yaml"
    recipe.write_text((ROOT / "recipes" / "quickstart.yaml").read_text().replace("../spaces/digits.space", DIGITS)
                      .replace("  dataset: digits", f"  dataset: cifar10\n  root: {tmp_path / 'none'}"))
    line = recipe.read_text().splitlines().index(f"  root: {tmp_path / 'none'}") + 1
    code, err = _cli(capsys, "export", DIGITS, "--arch", tmp_path / "a.json", "--out", tmp_path / "o",
                     "--recipe", recipe)
    assert code == 2 and f"{recipe}:{line}: data.root: CIFAR-10 not found" in err, err


def test_a_split_too_small_for_the_ranks_of_limited_data_is_located_at_limit_train(tmp_path):
    """Four ranks over data.limit_train: 6 (the file's): D_W and D_θ cannot give each rank an item, whatever the
    split; the refusal says to raise data.limit_train, and was located at data.theta_split, a key the file does not
    set (no line)."""
    from automl.errors import DataError
    from automl.pipeline.setup import recipe_data
    from automl.recipe import load_recipe
    from automl.train.distributed import DistInfo

    recipe = tmp_path / "r.yaml"
    recipe.write_text((ROOT / "recipes" / "quickstart.yaml").read_text().replace("../spaces/digits.space", DIGITS)
                      .replace("  dataset: digits", "  dataset: digits\n  limit_train: 6"))
    line = recipe.read_text().splitlines().index("  limit_train: 6") + 1
    with pytest.raises(DataError) as e:
        recipe_data(load_recipe(recipe), "cpu", DistInfo(rank=0, world_size=4, local_rank=0))
    assert str(e.value).startswith(f"{recipe}:{line}: data.limit_train: "), str(e.value)
    assert "raise data.limit_train" in str(e.value)


def test_a_workspace_locates_data_not_found_at_data_root(tmp_path):
    """``open_workspace`` (benchmarks and scripts) loads the data as a run does: located at data.root's line."""
    from automl.errors import DataError
    from automl.pipeline import open_workspace
    from automl.recipe import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text((ROOT / "recipes" / "quickstart.yaml").read_text().replace("../spaces/digits.space", DIGITS)
                      .replace("  dataset: digits", f"  dataset: cifar10\n  root: {tmp_path / 'none'}"))
    line = recipe.read_text().splitlines().index(f"  root: {tmp_path / 'none'}") + 1
    with pytest.raises(DataError, match=rf"^{recipe}:{line}: data\.root: CIFAR-10 not found"):
        open_workspace(load_recipe(recipe, ["device=cpu"]))


# ------------------------------------------------------------------ space encode --out replaces only an arch.json

def _encode(capsys, out) -> tuple[int, str]:
    return _cli(capsys, "space", "encode", ROOT / "spaces" / "mobilenetv3.space", "--timm", "mobilenetv3_large_100",
                "--out", out)


@pytest.mark.parametrize("text", ["name: my recipe\nseed: 0\n", '{"architectures": [{"choices": []}]}',
                                  '{"format_version": 1, "choices": [], "onnx": {}, "input_shape": [3, 8, 8]}'])
def test_encode_out_does_not_replace_a_file_that_is_no_arch_json(tmp_path, capsys, text):
    """``space encode --out recipes/quickstart.yaml`` replaced the user's recipe (or a results.json, an export's
    manifest) with an arch.json; space profile --out already refused such a file."""
    out = tmp_path / ("manifest.json" if "onnx" in text else "x.yaml")
    out.write_text(text)
    code, err = _encode(capsys, out)
    assert code == 2 and f"--out {out} is a file that holds no architecture's choices" in err, err
    assert out.read_text() == text


def test_encode_out_replaces_an_earlier_arch_json_and_an_empty_file(tmp_path, capsys):
    out = tmp_path / "arch.json"
    out.write_text("")
    assert _encode(capsys, out)[0] == 0
    first = json.loads(out.read_text())
    assert first["choices"] and first["timm_model"] == "mobilenetv3_large_100"
    assert _encode(capsys, out)[0] == 0 and json.loads(out.read_text()) == first


@pytest.mark.parametrize("given,shown", [("", "''"), (" ", "' '"), ("int4", "int4")])
def test_a_bad_quantize_value_is_shown_so_that_an_empty_one_can_be_seen(tmp_path, capsys, given, shown):
    """``--quantize ""`` (a variable unset) read "--quantize : supported: int8"."""
    code, err = _cli(capsys, "export", DIGITS, "--arch", tmp_path / "a.json", "--out", tmp_path / "o",
                     "--quantize", given, "--recipe", ROOT / "recipes" / "quickstart.yaml")
    assert code == 2 and f"--quantize {shown}: supported: int8 (e.g. --quantize int8)" in err, err
