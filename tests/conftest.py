import pytest
import torch

from automl.train.checkpoint import CheckpointStore

# The networks in the tests are tiny: one intra-op thread is faster than two fighting over 2 cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _children_write_temp_files_under_pytests_basetemp(tmp_path_factory):
    """Processes the tests start (torchrun leaves a ``torchelastic_*`` folder per launch) get their TMPDIR
    inside pytest's basetemp, which pytest rotates, instead of littering the machine's /tmp."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TMPDIR", str(tmp_path_factory.mktemp("tmp")))
    yield
    mp.undo()


@pytest.fixture
def one_thread():
    """One intra-op thread for the test, the count before restored after (a module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``): the test machine's cores are shared, and a
    test that set its own count would leave it for the next."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Killed(KeyboardInterrupt):
    """A run killed right after a checkpoint (as ``kill -9`` would, but in this process)."""


@pytest.fixture
def die_after_save(monkeypatch):
    """``die_after_save(when)``: the next checkpoint for which ``when(state, n)`` holds (``n``: checkpoints
    written so far, this one included) is written, then the run dies with :class:`Killed`; every later
    checkpoint is written normally (the resumed run's). Returns the list of (stage, epoch, step) written
    until the kill."""
    def arm(when):
        real, saved = CheckpointStore.save, []

        def save_then_die(self, state):
            path = real(self, state)
            saved.append((state["stage"], state["epoch"], state["step"]))
            if when(state, len(saved)):
                monkeypatch.setattr(CheckpointStore, "save", real)
                raise Killed()
            return path

        monkeypatch.setattr(CheckpointStore, "save", save_then_die)
        return saved
    return arm
