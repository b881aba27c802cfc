"""Thread counts libgomp refuses are kept from it (not only those automl refuses); `space check` of several files
reads a malformed --set once, and a KEY=VALUE given where a file goes is pointed at --set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from automl.cli import main
from automl.limits import env_thread_count, omp_refuses

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
DARTS = str(ROOT / "spaces" / "darts.space")


@pytest.mark.parametrize("text, refused, count", [(None, False, None), ("", True, None), ("4,x", True, 4),
                                                  ("4,0", True, 4), ("4,", True, 4), ("2,1", False, 2),
                                                  (" 3 ", False, 3)])
def test_what_libgomp_refuses_and_what_automl_reads(text, refused, count):
    assert omp_refuses(text) is refused
    assert env_thread_count(text) == count


def test_a_list_libgomp_refuses_is_read_by_automl_without_libgomps_line(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="4,x", PYTHONPATH=str(ROOT))
    code = "import sys; from automl.cli import main; sys.exit(main(['space', 'check', sys.argv[1]]))"
    p = subprocess.run([sys.executable, "-c", code, DIGITS], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0 and "libgomp" not in p.stderr, p.stderr
    assert p.stdout.startswith(f"{DIGITS}: ok: space digits"), p.stdout


def test_a_malformed_set_is_one_message_for_several_files(capsys):
    assert main(["space", "check", DIGITS, DARTS, "--set", "bad"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "--set 'bad'" in err, err


def test_a_key_value_given_as_a_file_is_pointed_at_set(capsys):
    assert main(["space", "check", DIGITS, "wide=2"]) == 2
    out, err = capsys.readouterr()
    assert out.startswith(f"{DIGITS}: ok") and "did you mean --set wide=2?" in err, err
