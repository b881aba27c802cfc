"""Review T: the weight-training code (automl/train/loops.py, sampling.py, checkpoint.py, automl/nn/ensemble.py)."""

import json
from pathlib import Path

import torch

from automl.train import loops
from automl.train.checkpoint import CheckpointStore


def _damage(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-10])


def test_a_run_resumed_from_the_previous_checkpoint_keeps_that_one_as_its_fallback(tmp_path):
    """The newest checkpoint is damaged, the run resumes from the one before; its next checkpoint must keep the
    intact one it resumed from as the fallback, not the damaged one (which then leaves no checkpoint at all
    when the new one is damaged too)."""
    store = CheckpointStore(tmp_path)
    store.save({"n": torch.tensor(1)})
    _damage(store.save({"n": torch.tensor(2)}))
    resumed = CheckpointStore(tmp_path)
    assert resumed.load()["n"].item() == 1
    newest = resumed.save({"n": torch.tensor(3)})
    assert CheckpointStore(tmp_path).load()["n"].item() == 3
    _damage(newest)
    again = CheckpointStore(tmp_path).load()
    assert again is not None and again["n"].item() == 1


def test_a_store_that_loaded_its_newest_checkpoint_keeps_the_usual_two(tmp_path):
    store = CheckpointStore(tmp_path)
    for n in range(1, 4):
        store.save({"n": torch.tensor(n)})
    resumed = CheckpointStore(tmp_path)
    assert resumed.load()["n"].item() == 3
    resumed.save({"n": torch.tensor(4)})
    assert [e["file"] for e in resumed._index()] == ["ckpt-000004.pt", "ckpt-000003.pt"]
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.pt")) == ["ckpt-000003.pt", "ckpt-000004.pt"]


def test_an_index_entry_naming_a_file_outside_the_folder_is_skipped_and_the_file_never_deleted(tmp_path):
    """The index only ever names ckpt-N.pt files of its folder: an entry naming another path (a hand-edited
    index) is never loaded, and a save neither keeps it nor deletes the file it names."""
    folder = tmp_path / "checkpoints"
    store = CheckpointStore(folder)
    store.save({"n": torch.tensor(1)})
    victim = tmp_path / "results.json"
    victim.write_text("{}")
    index = json.loads(store.index_path.read_text())
    index["checkpoints"].insert(0, {"seq": 2, "file": "../results.json", "sha256": "0" * 64})
    index["checkpoints"].append({"seq": 0, "file": str(victim), "sha256": "0" * 64})
    store.index_path.write_text(json.dumps(index))
    resumed = CheckpointStore(folder)
    assert resumed.load()["n"].item() == 1
    assert "not a checkpoint of this folder" in resumed.problems[0]
    resumed.save({"n": torch.tensor(3)})
    resumed.save({"n": torch.tensor(4)})
    assert victim.exists()
    assert [e["file"] for e in resumed._index()] == ["ckpt-000004.pt", "ckpt-000003.pt"]


def test_nesterov_without_momentum_is_plain_sgd_not_a_crash():
    """optim.nesterov: true with optim.momentum: 0 is a recipe the schema accepts; torch's SGD refuses it
    (ValueError, which the CLI reported as an internal error). Nesterov's update with no momentum is plain SGD."""
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    start = a.weight.detach().clone()
    oa = loops.create_optimizer(a, "sgd", 0.1, 1e-2, momentum=0.0, nesterov=True)
    ob = loops.create_optimizer(b, "sgd", 0.1, 1e-2, momentum=0.0, nesterov=False)
    x = torch.randn(4, 3)
    for net, opt in ((a, oa), (b, ob)):
        for _ in range(3):
            opt.zero_grad()
            net(x).square().sum().backward()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.weight, start)  # it trained
