"""Review I: the command line and chain-space compilation (``automl space cost|encode``, ``--set``)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.nn.measure import count_params

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "spaces" / "digits.space"


def _manifest(tmp_path, space_args) -> Path:
    """A manifest.json as ``automl export`` writes it, reduced to what ``space cost`` reads: the choices of
    digits' cheapest architecture (the same names at every width), exported with ``space_args``."""
    cs = load_compiled(DIGITS)
    choices = dict(zip([d.name for d in cs.decisions], cs.decode(cs.cost_table.cheapest())))
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format_version": 1, "space": "digits", "space_args": space_args,
                                "choices": choices}))
    return path


def _cost(capsys, argv) -> tuple[int, str, str]:
    code = main(["space", "cost", str(DIGITS), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_space_cost_of_a_manifest_at_the_defaults_refuses_a_set_that_changes_its_network(tmp_path, capsys):
    # the manifest's network was exported with the space's defaults (space_args {}): --set width=0.5 would
    # price another network than the one the manifest describes; `automl export` refuses the same --set
    manifest = _manifest(tmp_path, {})
    code, out, err = _cost(capsys, ["--arch", str(manifest), "--set", "width=0.5"])
    assert code == 2 and out == "", out
    assert "--set width=0.5 contradicts --arch" in err and "Traceback" not in err, err


def test_space_cost_of_a_manifest_at_the_defaults_prices_its_network(tmp_path, capsys):
    manifest = _manifest(tmp_path, {})
    cs = load_compiled(DIGITS)
    code, out, err = _cost(capsys, ["--arch", str(manifest)])
    assert code == 0, err
    assert json.loads(out)["params"] == cs.cost_table.min_total()
    # a --set that keeps the manifest's value is no contradiction
    code, out, err = _cost(capsys, ["--arch", str(manifest), "--set", "width=1.0"])
    assert code == 0 and json.loads(out)["params"] == cs.cost_table.min_total(), err


def test_space_cost_of_a_manifest_prices_it_with_its_space_args(tmp_path, capsys):
    manifest = _manifest(tmp_path, {"width": "0.5"})
    half = load_compiled(DIGITS, {"width": "0.5"})
    code, out, err = _cost(capsys, ["--arch", str(manifest)])
    assert code == 0 and json.loads(out)["params"] == half.cost_table.min_total(), err


@pytest.mark.parametrize("space_args", [[1, 2], {"width": [1]}, "width=0.5"])
def test_space_cost_of_a_damaged_manifest_names_its_space_args(tmp_path, capsys, space_args):
    manifest = _manifest(tmp_path, space_args)
    code, out, err = _cost(capsys, ["--arch", str(manifest)])
    assert code == 2 and out == "", out
    assert f"--arch {manifest}" in err and '"space_args" must be' in err and "Traceback" not in err, err


@pytest.mark.parametrize("verb, extra, example", [
    ("encode", ["--timm", "mobilenetv3_large_100"], "arch.json"),
    ("profile", [], "latency.json"),
])
def test_an_empty_out_file_is_refused_by_name(capsys, verb, extra, example):
    # `--out "$OUT"` with OUT unset: encode printed the JSON and exited 0, profile named the folder '.'
    space = ROOT / "spaces" / ("mobilenetv3.space" if verb == "encode" else "digits.space")
    code = main(["space", verb, str(space), *extra, "--out", ""])
    out = capsys.readouterr()
    assert code == 2 and out.out == "", out.out
    assert "--out '' is empty" in out.err and example in out.err and "Traceback" not in out.err, out.err


def test_space_show_of_an_empty_metric_is_refused(capsys):
    code = main(["space", "show", str(DIGITS), "--metric", ""])
    out = capsys.readouterr()
    assert code == 2 and out.out == "", out.out
    assert "--metric ''" in out.err and "params, macs, layers" in out.err, out.err


@pytest.mark.parametrize("verb, extra", [("encode", ["--timm", "mobilenetv3_large_100"]), ("profile", [])])
def test_an_out_file_that_is_no_regular_file_is_left_alone(tmp_path, capsys, verb, extra):
    # the atomic write renames a new file over --out: a FIFO, socket or device (/dev/null as root) was replaced
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    space = ROOT / "spaces" / ("mobilenetv3.space" if verb == "encode" else "digits.space")
    code = main(["space", verb, str(space), *extra, "--out", str(fifo)])
    out = capsys.readouterr()
    assert code == 2 and stat.S_ISFIFO(os.stat(fifo).st_mode), out
    assert f"--out {fifo} is not a regular file" in out.err and "Traceback" not in out.err, out.err


def test_elastic_widths_that_round_alike_say_where_the_parameter_got_its_value(capsys):
    # the docs promise every value error names where its parameters got their values: here --set wide=1.0
    # makes `24 * wide * width` round to 24, the other width of the stage
    code = main(["space", "check", str(ROOT / "spaces" / "ofa_mbv3.space"), "--set", "wide=1.0"])
    err = capsys.readouterr().err
    assert code == 2 and "which is already a choice" in err, err
    assert "(from wide=1.0, given with --set or a recipe's space_args" in err, err


def test_a_depth_listed_twice_through_a_parameter_says_so(tmp_path, capsys):
    space = tmp_path / "d.space"
    space.write_text("space d\nparam n = 2\ninput 3 x 32 x 32\nclasses 10\nnetwork\n  stem width 16\n"
                     "  stage s1 width 24 stride 2 depth 2, n choose [ir_k3_e3, ir_k5_e6]\nend\n")
    code = main(["space", "check", str(space)])
    err = capsys.readouterr().err
    assert code == 2 and f"{space}:7:39: depth 2 is listed twice (from `param n = 2` at line 2)" in err, err


@pytest.mark.parametrize("verb", ["cost", "export"])
@pytest.mark.parametrize("space_args, problem", [({"nosuch": "1"}, "unknown parameter 'nosuch'"),
                                                 ({"classes": "2.5"}, "is a whole number")])
def test_a_manifest_whose_space_args_the_space_rejects_is_named_not_a_set_flag(tmp_path, capsys, verb,
                                                                               space_args, problem):
    # no --set was given: the values are the manifest's (another space's manifest, or a hand-edited one)
    manifest = _manifest(tmp_path, space_args)
    (name, value), = space_args.items()
    argv = (["space", "cost", str(DIGITS)] if verb == "cost" else ["export", str(DIGITS), "--out",
                                                                    str(tmp_path / "out")])
    code = main([*argv, "--arch", str(manifest)])
    err = capsys.readouterr().err
    assert code == 2 and "--set" not in err, err
    assert f'--arch {manifest}: its "space_args" {name}={value}' in err and problem in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("verb, extra", [("encode", ["--timm", "mobilenetv3_large_100"]), ("profile", [])])
def test_an_out_file_that_is_the_space_file_is_refused(tmp_path, capsys, verb, extra):
    # `automl space profile my.space --out my.space` wrote the latency table over the user's space file
    space = tmp_path / "my.space"
    text = (ROOT / "spaces" / ("mobilenetv3.space" if verb == "encode" else "digits.space")).read_text()
    space.write_text(text)
    code = main(["space", verb, str(space), *extra, "--out", str(tmp_path / "." / "my.space")])
    err = capsys.readouterr().err
    assert code == 2 and space.read_text() == text, err
    assert "is the space file" in err and "Traceback" not in err, err


def test_encode_refuses_to_write_over_its_arch_def(tmp_path, capsys):
    arch_def = tmp_path / "arch_def.json"
    text = json.dumps([["ir_r1_k3_s1_e1_c24"], ["ir_r1_k3_s2_e1_c32"], ["ir_r1_k3_s1_e1_c48"]])  # in digits
    arch_def.write_text(text)
    code = main(["space", "encode", str(DIGITS), "--arch-def", str(arch_def),
                 "--out", str(arch_def)])
    err = capsys.readouterr().err
    assert code == 2 and arch_def.read_text() == text, err
    assert f"--out {arch_def} is the --arch-def file" in err, err


LONG = "a" * 300  # longer than a file name may be (255 bytes on Linux): the OS refuses the path (ENAMETOOLONG)


@pytest.mark.parametrize("argv", [
    ["space", "check", LONG + ".space"],
    ["space", "profile", str(DIGITS), "--out", LONG + ".json"],
    ["run", LONG + ".yaml"],
    ["rank", LONG],
])
def test_a_path_the_os_refuses_is_the_users_mistake_not_an_internal_error(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "File name too long" in err and "internal error" not in err and "Traceback" not in err, err
    assert "aaaa" in err and LONG not in err  # named, shortened


def test_a_network_whose_layers_may_all_be_skipped_or_left_out_by_depth_is_refused(tmp_path, capsys):
    # depth 1 leaves s1_2 out and s1_1 may be skip: one architecture (the cheapest) has no block, which timm's
    # builder cannot make (its standalone network and export failed with an IndexError)
    space = tmp_path / "z.space"
    space.write_text("space z\ninput 3 x 32 x 32\nclasses 10\nnetwork\n  stem width 16\n"
                     "  stage s1 width 16 depth 1, 2 choose [ir_k3_e3, skip] then [ir_k3_e3]\n  head width 64\nend\n")
    code = main(["space", "check", str(space)])
    err = capsys.readouterr().err
    assert code == 2 and f"{space}:6:9: every layer of this network may be `skip`" in err, err
    assert "or left out by an elastic depth" in err and "least depth" in err, err


def test_a_layer_within_the_least_depth_is_always_there(tmp_path):
    # depth 2, 3: s1_2 is in every network and offers no skip, so every network has a block
    space = tmp_path / "z.space"
    space.write_text("space z\ninput 3 x 32 x 32\nclasses 10\nnetwork\n  stem width 16\n"
                     "  stage s1 width 16 depth 2, 3 choose [ir_k3_e3, skip] then [ir_k3_e3, ir_k5_e3]\nend\n")
    cs = load_compiled(space)
    cheapest = cs.cost_table.cheapest()
    assert cs.decode(cheapest)[:3] == ["d2", "skip", "ir_k3_e3"]
    assert count_params(cs.build_standalone(cheapest)) == cs.cost_table.min_total()


@pytest.mark.parametrize("value", ["-5", "0", "1"])
def test_the_number_of_classes_says_its_real_least_value(value, capsys):
    """--set classes=-5 said "between 1 and 1048576" while 1 itself was then refused: every value below 2 is
    told the least value there is."""
    assert main(["space", "check", str(DIGITS), "--set", f"classes={value}"]) == 2
    err = capsys.readouterr().err
    assert f"classes must be at least 2 (a classifier of one class learns nothing), got {value}" in err, err
    assert "classes=" in err and "between 1" not in err, err


@pytest.mark.heavy  # 7 s: compiles two spaces of 2 x 2,048 width combinations
def test_resolutions_times_width_combinations_are_capped_as_widths_are(tmp_path, capsys):
    """Widths alone are capped at 4,096 combinations (one cost table each); resolutions multiplied them without a
    cap (16,384 tables: 22 s and 880 MB for `space check`). 4,096 width combinations and 2 resolutions are refused
    at the resolution statement; 2 x 2,048 pass."""
    def space(widths_in_s4: str) -> Path:
        path = tmp_path / "wide.space"
        path.write_text("space wide\ninput 3 x 16 x 16\nclasses 10\nresolution 8, 16\nnetwork\n  stem width 16\n"
                        + "".join(f"  stage s{i} width 16, 24, 32, 40, 48, 56, 64, 72 choose [ir_k3_e3, ir_k5_e3]\n"
                                  for i in range(1, 4))
                        + f"  stage s4 width {widths_in_s4} choose [ir_k3_e3]\nend\n")
        return path

    assert main(["space", "check", str(space("16, 24, 32, 40, 48, 56, 64, 72"))]) == 2
    err = capsys.readouterr().err
    assert "wide.space:4:" in err and "8,192 cost tables" in err and "at most 4,096" in err, err
    assert main(["space", "check", str(space("16, 24, 32, 40"))]) == 0
