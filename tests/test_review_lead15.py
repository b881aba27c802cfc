"""The lock's reading of a holder's command line: one walk past the interpreter serves both questions asked of it
(which automl command holds a lock, whether a parent is torchrun)."""
import pytest

import automl._lock as lock_module


@pytest.mark.parametrize("cmd, want", [
    # the program is torch.distributed.launch; automl is one of its arguments, not what the process runs
    ("python -m torch.distributed.launch automl run r.yaml", None),
    ("python -mtorch.distributed.run --nproc-per-node 2 /v/bin/automl run r.yaml", None),
    ("python -mtorch.distributed.launch automl run r.yaml", None),
    ("python - automl run r.yaml", None),  # a program read from standard input, automl its argument
    ("python -X dev -m automl rank r", "automl rank r"),
    ("/v/bin/automl run r.yaml", "automl run r.yaml"),
    ("python3 /p/automl/__main__.py export o", "automl export o"),
    ("python -m", None), ("", None)])
def test_the_automl_command_is_the_program_not_an_argument(cmd, want, monkeypatch):
    monkeypatch.setattr(lock_module, "_cmdline", lambda pid: cmd.split())
    assert lock_module._running(7) == want


@pytest.mark.parametrize("cmd, want", [
    ("/v/bin/torchrun --nproc-per-node 2 -m automl run r.yaml", True),
    ("python3 /v/bin/torchrun --standalone job.py", True),
    ("python -X dev -m torch.distributed.run train.py", True),
    ("python -W ignore -mtorch.distributed.launch train.py", True),
    ("python /s/site-packages/torch/distributed/run.py x.py", True),
    ("python job.py torchrun", False), ("python -c torchrun", False), ("bash job.sh", False),
    ("python -m automl run torchrun.yaml", False), ("python -m", False), ("", False)])
def test_torchrun_is_found_as_the_program_only(cmd, want):
    assert lock_module._is_torchrun(cmd.split()) is want
