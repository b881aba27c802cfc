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


@pytest.mark.parametrize("flags,named", [(["--seed", "3"], "--seed: it chooses"),
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
