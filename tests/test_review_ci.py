"""``data.cutout``: Cutout (DeVries & Taylor 2017) on CIFAR-10's training batches, as ASNG-NAS trains (the paper's
CIFAR-10 retraining is "the same as [1]"; ASNG-NAS's classification/classification/utils.py, ``Cutout(16)``).

One square per image, of the given side, centred on a uniformly drawn pixel and clipped at the border, zeroed
after normalisation; on the D_W and D (retraining) loaders only, never on D_theta, the test set or the BatchNorm
recalibration batches; drawn from a generator seeded from (seed, epoch, loader, rank), so a resumed epoch replays
it. Fake CIFAR-10 pickles as tests/test_data.py writes them.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from automl.cli import main
from automl.pipeline.reuse import differences, weights_fingerprint
from automl.errors import RecipeError, UserError
from automl.recipe import DataConfig, load_recipe
from automl.train import data as data_module
from automl.train.data import build_data
from test_data import write_fake_cifar, write_fake_imagefolder  # fake CIFAR-10 python batches; tiny JPEG folders

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
QUICK = RECIPES / "quickstart.yaml"
CIFAR_RECIPES = ["cifar10", "cifar10-method1", "cifar10-method2", "cifar10-random"]


@pytest.fixture(scope="module")
def cifar_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ci") / "cifar"
    write_fake_cifar(root, per_batch=100)  # 500 training items: D_W and D_theta 250 each; 100 test items
    return root


def _data(root, cutout=16, seed=0, **kw):
    cfg = DataConfig(dataset="cifar10", root=str(root), batch_size=50, theta_split=0.5, cutout=cutout, **kw)
    return build_data(cfg, ".", seed, "cpu")


def _cut_boxes(x: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Per image of a normalised batch, the zeroed region (zero in every channel) as (top, bottom, left, right),
    bottom and right exclusive, after checking it is one full rectangle; (0, 0, 0, 0) where nothing is zero."""
    boxes = []
    for img in x:
        zero = (img == 0).all(0)
        if not zero.any():
            boxes.append((0, 0, 0, 0))
            continue
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        t, b, lft, r = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        assert zero[t:b, lft:r].all() and int(zero.sum()) == (b - t) * (r - lft), "the zeroed pixels are no rectangle"
        assert ((img == 0).any(0) == zero).all(), "a pixel is zeroed in some channels only"
        boxes.append((t, b, lft, r))
    return boxes


def _centre(lo: int, hi: int, side: int) -> int:
    """The centre a clipped interval [lo, hi) of a square of ``side`` came from (rows cy - side//2 .. + side)."""
    return lo + side // 2 if lo > 0 else hi - side + side // 2


# ------------------------------------------------------------------------------------------ the squares


@pytest.mark.parametrize("side", [16, 5])
def test_each_image_loses_one_square_of_the_side_clipped_at_the_border_at_a_uniform_centre(side):
    n, size = 6400, 32
    x = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0)) + 10  # no pixel is 0 before
    before = x.clone()
    out = data_module.cutout(x, side, torch.Generator().manual_seed(1))
    assert torch.equal(x, before)  # the input is left as it was
    boxes = _cut_boxes(out)
    kept = (out != 0).all(1)
    assert torch.equal(out[kept.unsqueeze(1).expand_as(out)], x[kept.unsqueeze(1).expand_as(x)])
    centres, inside, clipped_both = [], 0, 0
    for t, b, lft, r in boxes:
        h, w = b - t, r - lft
        assert 1 <= h <= side and 1 <= w <= side
        # a side shorter than the square's only where the square meets the border
        assert h == side or t == 0 or b == size
        assert w == side or lft == 0 or r == size
        inside += h == side and w == side
        clipped_both += h < side and w < side
        centres.append((_centre(t, b, side), _centre(lft, r, side)))
    cy = torch.tensor([c[0] for c in centres])
    cx = torch.tensor([c[1] for c in centres])
    assert int(cy.min()) == 0 and int(cy.max()) == size - 1 and int(cx.min()) == 0 and int(cx.max()) == size - 1
    # uniform centres: each row (column) holds 1/32 of them; 6400 draws: 200 per value, sd about 14
    for c in (cy, cx):
        counts = torch.bincount(c, minlength=size).float()
        assert counts.min() > 130 and counts.max() < 270, counts
    # a square lies fully inside when both its centre's row and column are in [side//2, size - side + side//2]:
    # (size - side + 1)^2 / size^2 of them (17^2 / 32^2 = 28 % for 16); the rest reach past the border
    p_inside = (size - side + 1) ** 2 / size ** 2
    assert abs(inside / n - p_inside) < 0.03, (inside / n, p_inside)
    assert clipped_both > 0  # squares in a corner: clipped on two sides, not moved inside as RandomErasing would


def test_a_batch_of_the_cifar10_loader_is_the_same_batch_with_one_square_zeroed(cifar_root):
    """The crops and flips are those of the loader without Cutout; Cutout only zeroes one 16 x 16 square (or
    its part inside the image) in each normalised image."""
    on, off = _data(cifar_root, 16), _data(cifar_root, 0)
    for (xa, ya), (xb, yb) in zip(on.w.epoch(2), off.w.epoch(2)):
        assert torch.equal(ya, yb)
        boxes = _cut_boxes(xa)
        assert all(b - t >= 8 and r - lft >= 8 for t, b, lft, r in boxes)  # at least the quarter inside
        cut = (xa == 0).all(1, keepdim=True).expand_as(xa)
        assert torch.equal(xa[~cut], xb[~cut]) and (xb[cut] != 0).all()


# ------------------------------------------------------------------------------------------ which loaders


def _has_squares(loader, epoch=0) -> bool:
    return all(b != (0, 0, 0, 0) for x, _ in loader.epoch(epoch) for b in _cut_boxes(x))


def _no_zero_square(loader, epoch=0) -> bool:
    return all(b == (0, 0, 0, 0) for x, _ in loader.epoch(epoch) for b in _cut_boxes(x))


def test_d_w_and_the_retraining_set_are_cut_d_theta_test_and_recalibration_batches_are_whole(cifar_root):
    d, plain = _data(cifar_root, 16), _data(cifar_root, 0)
    assert _has_squares(d.w) and _has_squares(d.full)
    assert _no_zero_square(d.theta) and _no_zero_square(d.test)
    # the retraining stage's loader (automl/pipeline/final_stages.py): another batch size and seed, still cut
    assert _has_squares(d.full.with_batch_size(80).with_seed(7))
    # BatchNorm recalibration: the first D_W batches of epoch 0 as they are without Cutout
    bn = d.bn_batches(3)
    assert [torch.equal(a, b) for a, b in zip(bn, plain.bn_batches(3))] == [True] * 3
    assert torch.equal(bn[0], [x for x, _ in plain.w.epoch(0)][0])
    small = d.bn_batches(2, size=16)
    assert [tuple(x.shape[-2:]) for x in small] == [(16, 16)] * 2 and all(_no_zero_square_x(x) for x in small)
    resized = d.w.with_resolution(16).without_cutout()
    assert next(iter(resized.epoch(0)))[0].shape[-2:] == (16, 16)
    # D_theta, the test set, and everything of a recipe without Cutout are what they were
    for a, b in ((d.theta, plain.theta), (d.test, plain.test)):
        assert all(torch.equal(p[0], q[0]) for p, q in zip(a.epoch(1), b.epoch(1)))


def _no_zero_square_x(x) -> bool:
    return all(b == (0, 0, 0, 0) for b in _cut_boxes(x))


def test_cutout_follows_data_image_size(cifar_root):
    """The square is cut in the pixels the network sees (data.image_size), after resizing."""
    d = _data(cifar_root, 8, image_size=24)
    x, _ = next(iter(d.w.epoch(0)))
    assert x.shape[-2:] == (24, 24)
    assert all(1 <= b - t <= 8 and 1 <= r - lft <= 8 for t, b, lft, r in _cut_boxes(x))


def test_other_datasets_ignore_cutout(tmp_path):
    digits = build_data(DataConfig(dataset="digits", batch_size=100, cutout=4), ".", 0, "cpu")
    plain = build_data(DataConfig(dataset="digits", batch_size=100), ".", 0, "cpu")
    assert all(torch.equal(a[0], b[0]) for a, b in zip(digits.w.epoch(0), plain.w.epoch(0)))
    write_fake_imagefolder(tmp_path / "imgs")
    f = build_data(DataConfig(dataset="imagefolder", root=str(tmp_path / "imgs"), image_size=32, batch_size=3,
                              theta_split=2, cutout=16), ".", 0, "cpu")
    assert _no_zero_square(f.w)


# ------------------------------------------------------------------------------------------ determinism


def test_the_same_seed_gives_the_same_squares_and_a_resumed_epoch_replays_them(cifar_root):
    a, b = _data(cifar_root, 16, seed=3), _data(cifar_root, 16, seed=3)
    whole = [x for x, _ in a.w.epoch(4)]
    assert all(torch.equal(p, q) for p, q in zip(whole, [x for x, _ in b.w.epoch(4)]))
    for k in (1, 3, len(whole) - 1):
        rest = [x for x, _ in b.w.epoch(4, start=k)]
        assert len(rest) == len(whole) - k and all(torch.equal(p, q) for p, q in zip(rest, whole[k:]))
    full = [x for x, _ in a.full.epoch(1)]
    assert all(torch.equal(p, q) for p, q in zip([x for x, _ in b.full.epoch(1, start=2)], full[2:]))
    # another epoch, another seed: other squares
    assert [_cut_boxes(x) for x in whole] != [_cut_boxes(x) for x, _ in a.w.epoch(5)]
    assert [_cut_boxes(x) for x in whole] != [_cut_boxes(x) for x, _ in _data(cifar_root, 16, seed=4).w.epoch(4)]


# ------------------------------------------------------------------------------------------ the recipe key


def _error(path, overrides) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    assert isinstance(info.value, UserError) and info.value.exit_code == 2
    return info.value


@pytest.mark.parametrize("overrides, key, words", [
    (["data.cutout=-1"], "data.cutout", "0 or null for no Cutout (got -1)"),
    (["data.cutout=33"], "data.cutout", "larger than the images (32 x 32 pixels"),
    (["data.cutout=16", "data.image_size=8"], "data.image_size", "or data.image_size to at least 16"),
    (["data.cutout=true"], "data.cutout", "must be an integer"),
    (["data.cutout=2.5"], "data.cutout", "must be an integer"),
])
def test_a_bad_cutout_is_one_recipe_error_naming_the_key(overrides, key, words):
    text = str(_error(RECIPES / "cifar10.yaml", overrides))
    assert f"{key}:" in text and words in text and "\n" not in text, text


def test_a_bad_cutout_in_the_file_names_its_line_and_the_run_exits_2(tmp_path, capsys):
    text = (RECIPES / "cifar10.yaml").read_text(encoding="utf-8").replace("cutout: 16", "cutout: 40")
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("space: ../spaces", f"space: {ROOT / 'spaces'}"), encoding="utf-8")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.strip().startswith("cutout:"))
    err = _error(path, [])
    assert f"{path}:{line}: data.cutout:" in str(err)
    assert main(["run", str(path), "--out", str(tmp_path / "o")]) == 2
    out = capsys.readouterr().err
    assert "data.cutout" in out and "Traceback" not in out and not (tmp_path / "o").exists()


def test_null_and_0_are_off_and_leave_the_resume_fingerprint_as_it_was():
    base = load_recipe(QUICK)
    assert base.data.cutout == 0
    assert load_recipe(QUICK, ["data.cutout=null"]).data.cutout == 0
    assert load_recipe(QUICK, ["data.cutout=null"]).fingerprint() == base.fingerprint()
    assert "cutout" not in base.model_dump(mode="json", exclude=base._fingerprint_exclude())["data"]
    cifar = load_recipe(RECIPES / "cifar10.yaml")
    assert cifar.fingerprint() != load_recipe(RECIPES / "cifar10.yaml", ["data.cutout=0"]).fingerprint()


def test_cutout_on_a_dataset_without_it_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING):
        load_recipe(QUICK, ["data.cutout=4"])
    assert "data.cutout applies to dataset cifar10 only; dataset digits ignores it" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_recipe(QUICK, ["data.cutout=64"])  # no size check where nothing is cut
        load_recipe(QUICK)
    assert caplog.text.count("data.cutout") == 1


@pytest.mark.parametrize("name", CIFAR_RECIPES)
def test_the_papers_cifar10_recipes_cut_16_as_asng_nas(name):
    """ASNG-NAS's experiment(): cutout=True, _data_transforms_cifar10(cutout_length=16), on the search's and the
    retraining's training set."""
    assert load_recipe(RECIPES / f"{name}.yaml").data.cutout == 16


def test_a_supernet_trained_before_the_key_existed_is_reused_without_a_difference():
    """--supernet compares the weights' fingerprints: one recorded by an automl without data.cutout trained
    without Cutout, so it matches a recipe at data.cutout 0."""
    def fp(*overrides):
        r = load_recipe(QUICK, list(overrides))
        return weights_fingerprint(r, r.space_path, {k: str(v) for k, v in r.space_args.items()})

    older = {k: v for k, v in fp().items() if k != "data.cutout"}
    assert differences(older, fp()) == []
