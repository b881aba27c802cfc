"""Review JE: docs/reliability.md says what the code does (signals a run stops on, the GPU memory check's copies)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

from automl.recipe import OptimConfig
from automl.train import loops
from automl.train.preempt import SIGNALS

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")


def test_the_stopping_heading_names_every_signal_a_run_stops_on():
    """The heading of "Stopping" lists each signal automl.train.preempt.SIGNALS catches."""
    heading = re.search(r"\*\*Stopping: ([^*]+)\.\*\*", DOC)
    assert heading, "no **Stopping: ...** heading"
    named = set(re.findall(r"SIG[A-Z0-9]+", heading[1]))
    assert named == {signal.Signals(s).name for s in SIGNALS}


def test_the_gpu_check_lists_the_copies_of_every_optimiser():
    """The GPU memory check's sentence gives the copies loops.training_copies counts for each recipe optimiser
    (a supernet: weights plus the optimiser's state per weight)."""
    optimisers = OptimConfig.model_fields["name"].annotation.__args__
    words = {1: "once", 2: "twice", 3: "three times"}
    sentence = " ".join(DOC[DOC.index("checked against its GPU's free memory"):DOC.index("Activations are not")].split())
    said = {"sgd": "twice with SGD's momentum", "adamw": "three times with AdamW", "rmsprop": "twice with RMSprop"}
    for name in ("sgd", "adamw", "rmsprop"):
        assert name in optimisers
        count = loops.training_copies(name, 0.0 if name == "rmsprop" else 0.9, supernet=True).count
        assert said[name] in sentence and said[name].startswith(words[count]), (name, count)
    with_momentum = loops.training_copies("rmsprop", 0.9, supernet=True).count
    assert f"{words[with_momentum]} with its momentum" in sentence
