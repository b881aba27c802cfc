"""Review DC: `automl space show/check` count the distinct networks where elastic depth makes architectures the same
network; op names with leading zeros (`ir_k03_e6`) are refused with their one spelling; `space encode --timm` of a
name timm keeps as a deprecated alias shows automl's message alone, naming the current model."""

from __future__ import annotations

import itertools
import json
import math
import warnings
from pathlib import Path

import pytest

from automl.cli import main
from automl.compile import load_compiled
from automl.plan import count_networks

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared

ROOT = Path(__file__).resolve().parents[1]

# elastic depth in two stages (one with a fixed layer beyond its least depth), an elastic width and a resolution
DEPTH = """space dcdepth
input 3 x 16 x 16
resolution 12, 16
classes 10
choices mb = ir_k3_e3, ir_k5_e3, ir_k3_e6
network
  stem width 8
  stage s1 width 16, 24 stride 2 depth 1, 2, 3 choose mb
  stage s2 width 24 stride 2 depth 1, 2 choose [ir_k3_e3, ds_k3]
  stage s3 width 32 depth 1, 2 fixed ir_k3_e3
  head width 32
end
"""
PLAIN = """space dcplain
input 3 x 16 x 16
classes 10
choices mb = ir_k3_e3, ir_k5_e3, ir_k3_e6
network
  stem width 8
  stage s1 width 16, 24 stride 2 repeat 2 choose mb then [mb, skip]
  stage s2 width 24 stride 2 choose [ir_k3_e3, ds_k3]
  head width 32
end
"""


def _write(tmp_path, text: str, name: str = "t.space") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _brute_networks(cs) -> int:
    """Every architecture built as what its network is (each layer's op, `skip` where the depth leaves it out, and
    its widths; the input size), counted once per distinct network."""
    seen = set()
    for arch in itertools.product(*[range(k) for k in cs.num_choices]):
        layers = tuple((op, layer.in_ch, layer.out_ch) for _, _, layer, op in cs.chosen_layers(list(arch)))
        seen.add((layers, cs.resolution(list(arch))))
    return len(seen)


def _shown(path: str, capsys) -> dict:
    assert main(["space", "show", path, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_space_show_counts_the_distinct_networks_of_elastic_depth(tmp_path, capsys):
    path = _write(tmp_path, DEPTH)
    cs = load_compiled(path)
    brute = _brute_networks(cs)
    assert brute < cs.size  # elastic depth makes some architectures one network
    shown = _shown(path, capsys)
    assert shown["size"] == cs.size == math.prod(cs.num_choices)  # the product, as before
    assert shown["networks"] == brute == cs.networks
    assert main(["space", "show", path]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"size = {cs.size:,} architectures (the product of the choice counts), {brute:,} distinct networks" in out
    assert main(["space", "check", path]) == 0
    assert f"{cs.size:,} architectures (the product of the choice counts), {brute:,} distinct networks" in (
        capsys.readouterr().out)


def test_without_elastic_depth_every_architecture_is_a_network(tmp_path, capsys):
    path = _write(tmp_path, PLAIN)
    cs = load_compiled(path)
    assert _brute_networks(cs) == cs.size == cs.networks
    shown = _shown(path, capsys)
    assert shown["networks"] == shown["size"] == cs.size
    assert main(["space", "check", path]) == 0
    assert "distinct networks" not in capsys.readouterr().out  # one count where they agree


def test_the_ofa_space_counts_its_distinct_networks_without_enumerating(capsys):
    """The header of spaces/ofa_mbv3.space: ((3 x 3)^2 + (3 x 3)^3 + (3 x 3)^4)^5 x 2^5 x 4 = 2.8 x 10^21."""
    shown = _shown(str(ROOT / "spaces" / "ofa_mbv3.space"), capsys)
    assert shown["networks"] == (9 ** 2 + 9 ** 3 + 9 ** 4) ** 5 * 2 ** 5 * 4
    assert shown["size"] == 3 ** 5 * 9 ** 20 * 2 ** 5 * 4


@pytest.mark.parametrize("ks,gates", [
    ([3, 2, 2, 4], {1: (0, (False, True, True)), 2: (0, (False, False, True))}),
    ([2, 5, 3, 2, 3], {1: (0, (False, True)), 4: (3, (True, False))}),
    ([4, 3], {}),
])
def test_count_networks_against_enumeration(ks, gates):
    def network(a):
        return tuple(k if d not in gates or gates[d][1][a[gates[d][0]]] else None for d, k in enumerate(a))
    brute = len({network(a) for a in itertools.product(*[range(k) for k in ks])})
    assert count_networks(ks, gates) == brute


# ---------------------------------------------------------------------------------------------- leading zeros
OPS = "space t\ninput 3 x 32 x 32\nclasses 10\nnetwork\n  stem width 16\n  stage s1 width 24 stride 2 choose [{}]\n" \
      "  head width 64\nend\n"


@pytest.mark.parametrize("op,fix", [
    ("ir_k03_e6", "ir_k3_e6"), ("ir_k3_e06", "ir_k3_e6"), ("ds_k05_nre", "ds_k5_nre"),
    ("ir_k3_e6_se00.25", "ir_k3_e6_se0.25"), ("ir_k3_e1_g02", "ir_k3_e1_g2"), ("ir_k3_e006.5", "ir_k3_e6.5"),
])
def test_an_op_name_with_leading_zeros_is_refused_naming_its_spelling(tmp_path, capsys, op, fix):
    path = _write(tmp_path, OPS.format(f"ir_k5_e3, {op}"))
    assert main(["space", "check", path]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith(f"{path}:6:48: op {op!r}: ") and "leading zeros" in first and first.endswith(
        f"write {fix}")


@pytest.mark.parametrize("op", ["ir_k3_e0.5", "ir_k3_e6_se0.25", "ir_k3_e6.05", "cn_k1"])
def test_a_zero_that_is_no_leading_zero_is_accepted(tmp_path, capsys, op):
    path = _write(tmp_path, OPS.format(f"ir_k5_e3, {op}"))
    assert main(["space", "check", path]) == 0, capsys.readouterr().err


# ------------------------------------------------------------------------------------- --timm deprecated names
def test_encode_timm_deprecated_name_shows_automls_message_alone(capfd):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["space", "encode", str(ROOT / "spaces" / "mobilenetv3.space"), "--timm", "mnasnet_a1"]) == 2
    assert not [w for w in caught if "deprecated" in str(w.message)], [str(w.message) for w in caught]
    err = capfd.readouterr().err
    assert "Warning" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert err.rstrip().endswith("(mnasnet_a1 is timm's deprecated name of semnasnet_100)")


def test_encode_timm_deprecated_name_that_fits_names_the_current_model(tmp_path, capfd):
    out = tmp_path / "arch.json"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["space", "encode", str(ROOT / "spaces" / "proxylessnas.space"), "--timm", "mnasnet_b1",
                     "--out", str(out)]) == 0
    assert not [w for w in caught if "deprecated" in str(w.message)]
    printed = capfd.readouterr()
    assert "(mnasnet_b1 is timm's deprecated name of mnasnet_100)" in printed.out and not printed.err
    assert json.loads(out.read_text())["timm_model"] == "mnasnet_b1"
