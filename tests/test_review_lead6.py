"""Lead: benchmarks/export_latency.py refuses the flags that choose random architectures when export folders are
given (it ignored them and measured the folders)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from automl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))


@pytest.mark.parametrize("flags,named", [(["--seed", "3"], "--seed: it chooses"), (["--seed", "0"], "--seed: it"),
                                         (["-n", "5", "--set", "width=2"], "--set, --num-archs: they choose"),
                                         (["--space", str(ROOT / "spaces" / "digits.space")], "--space: it chooses")])
def test_export_latency_refuses_flags_it_would_ignore_with_export_folders(tmp_path, capsys, flags, named):
    import export_latency

    with pytest.raises(SystemExit) as e:
        export_latency.main([str(tmp_path / "no-export"), *flags])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err and "export folders were given" in err, err


def test_export_latency_with_only_export_folders_goes_on_to_read_them(tmp_path, capsys):
    """The default flags with a folder: no refusal of flags; the folder is read (here: it is no export)."""
    import export_latency

    with pytest.raises(UserError, match="no manifest here"):
        export_latency.main([str(tmp_path / "no-export")])
    assert "export folders were given" not in capsys.readouterr().err


def test_gpu_check_takes_a_relative_py_and_a_relative_out_from_the_folder_it_is_started_in(tmp_path):
    """PY=./python3 and OUT=gpu, started from another folder: every step runs that python (the steps run in the
    repository, where ./python3 named nothing: exit 127 for each, the device lease spent) and writes into that
    folder's gpu/; the repository comes first on PYTHONPATH (not the folder it was started from)."""
    import subprocess

    from test_review_jf import FAKE_PY, STEPS, _env

    fake = tmp_path / "python3"
    record = 'echo "PYTHONPATH=$PYTHONPATH" >> "$(dirname "$0")/paths"\n'  # each call's PYTHONPATH
    fake.write_text(FAKE_PY.replace("#!/bin/sh\n", "#!/bin/sh\n" + record, 1))
    fake.chmod(0o755)
    r = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=60, env=_env(OUT="gpu", PY="./python3", BUDGET="480"))
    summary = (tmp_path / "gpu" / "summary.txt").read_text().splitlines()
    outcomes = {x.split(" ", 1)[0]: x for x in summary if x.split(" ", 1)[0] in STEPS}
    assert list(outcomes) == STEPS and all(" done in " in x for x in outcomes.values()), (summary, r.stderr)
    assert r.returncode == 0, r.stderr
    paths = (tmp_path / "paths").read_text().splitlines()
    assert paths and all(p.startswith(f"PYTHONPATH={ROOT}") for p in paths), paths[:3]


def test_space_show_json_writes_an_elastic_width_spaces_choice_costs_as_reals_and_its_totals_as_ints(capsys):
    """With elastic widths a choice's params are a first-order average (24047.11... for a width): every choice's
    cost is then a float, not an int where the average happens to be whole; the exact totals stay ints."""
    import json

    from automl.cli import main

    assert main(["space", "show", str(ROOT / "spaces" / "ofa_mbv3.space"), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    kinds = {type(c["costs"][m]) for d in shown["decisions"] for c in d["choices"] for m in ("params", "macs")}
    assert kinds == {float}, kinds
    assert type(shown["min_cost"]) is int and type(shown["max_cost"]) is int
    assert all(type(v) is int for v in shown["fixed_cost_range"]), shown["fixed_cost_range"]


def _refused_space(tmp_path, capsys, stages: str) -> tuple:
    """``automl space check`` of a small chain space whose network holds ``stages`` (from line 10): its path and
    the message (exit 2)."""
    from automl.cli import main

    space = tmp_path / "bad.space"
    space.write_text("space bad\n\ninput 1 x 8 x 8\nclasses 10\n\nchoices block = ir_k3_e1, ir_k3_e3\n\nnetwork\n"
                     f"  stem width 16\n{stages}  head width 64\nend\n")
    assert main(["space", "check", str(space)]) == 2
    return space, capsys.readouterr().err


def test_of_several_numbers_with_a_leading_zero_the_first_in_the_file_is_named(tmp_path, capsys):
    """Two stages' width lists with a leading zero: the error is at line 10's first, not at the last one found."""
    space, err = _refused_space(tmp_path, capsys, "  stage s1 width 016, 032 depth 01, 02 choose block\n"
                                                  "  stage s2 width 024, 48 repeat 2 choose block\n")
    assert err.startswith(f"{space}:10:18: `016`: write the numbers of a list without leading zeros"), err


def test_in_one_list_a_number_too_large_before_a_leading_zero_is_named_first(tmp_path, capsys):
    space, err = _refused_space(tmp_path, capsys, "  stage s1 width 99999999999999999999999999, 016 choose block\n")
    assert err.startswith(f"{space}:10:18: ") and "016" not in err.splitlines()[0], err
