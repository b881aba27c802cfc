"""Review IS: a hand-edited manifest's ``timm_kwargs.timm_class`` that is no text (a list, an object) is the one
message naming the field, not a TypeError; read_manifest and check_recorded refuse the same ``format_version``
values (a bool, 0, a negative number); a ``--set`` that contradicts an architecture file of another space says
first which space the file is of, not the given space's default as the file's value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from automl.cli import main
from automl.commands._arch_args import space_args_for
from automl.compile import load_compiled
from automl.errors import UserError
from automl.export import load_model, read_manifest
from automl.export.manifest import check_recorded

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "spaces" / "digits.space")
NB201 = str(ROOT / "spaces" / "nasbench201.space")

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: the cores are shared


def _folder(tmp_path: Path, **fields) -> Path:
    """An export folder whose manifest.json holds ``fields`` besides its choices."""
    folder = tmp_path / "exported"
    folder.mkdir(exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"format_version": 1, "choices": ["a"], **fields}))
    return folder


# ---- 1. timm_class of another JSON type ------------------------------------------------------------------------

@pytest.mark.parametrize("timm_class", [["MobileNetV3"], {"name": "MobileNetV3"}])
@pytest.mark.parametrize("reader", [read_manifest, load_model])
def test_a_timm_class_that_is_no_text_is_one_message_naming_the_field(tmp_path, timm_class, reader):
    folder = _folder(tmp_path, timm_kwargs={"timm_class": timm_class, "num_classes": 10})
    with pytest.raises(UserError) as e:
        reader(folder)
    text = str(e.value)
    assert text.startswith(f"{folder / 'manifest.json'}: \"timm_kwargs\" \"timm_class\" must be EfficientNet or "
                           f"MobileNetV3, got {timm_class!r}"), text
    assert "export the network again" in text and len(text.splitlines()) == 1, text


# ---- 2. format_version: the same values refused by both readers ---------------------------------------------------

@pytest.mark.parametrize("version", [True, False, 0, -1, 1.0, "1"])
def test_read_manifest_refuses_the_format_versions_check_recorded_refuses(tmp_path, version):
    folder = _folder(tmp_path, format_version=version)
    with pytest.raises(UserError) as e:
        check_recorded({"format_version": version, "choices": ["a"]}, "--arch m.json")
    assert f"\"format_version\" {version!r} is not one automl writes (a whole number, 1)" in str(e.value)
    with pytest.raises(UserError) as e:
        read_manifest(folder)
    text = str(e.value)
    assert text == (f"{folder / 'manifest.json'}: \"format_version\" {version!r} is not one automl writes (a whole "
                    f"number, 1); put back the value the export wrote"), text


@pytest.mark.parametrize("version", [1, None])
def test_a_format_version_both_readers_take(tmp_path, version):
    check_recorded({"format_version": version, "choices": ["a"]}, "--arch m.json")
    assert read_manifest(_folder(tmp_path, format_version=version))["format_version"] == version


def test_a_newer_format_version_says_upgrade_in_both(tmp_path):
    folder = _folder(tmp_path, format_version=2)
    with pytest.raises(UserError) as e:
        read_manifest(folder)
    assert str(e.value) == (f"{folder / 'manifest.json'}: \"format_version\" 2 is newer than this automl "
                            f"understands (1); upgrade automl"), str(e.value)


# ---- 3. a --set that contradicts a file of another space ----------------------------------------------------------

@pytest.fixture(scope="module")
def nb201_choices() -> list[str]:
    return [d.choices[0] for d in load_compiled(NB201).decisions]


def test_set_against_a_manifest_of_another_space_says_which_space_not_the_given_spaces_default(tmp_path,
                                                                                               nb201_choices):
    path = tmp_path / "manifest.json"
    manifest = {"format_version": 1, "space_name": "nasbench201", "space_args": {}, "choices": nb201_choices}
    with pytest.raises(UserError) as e:
        space_args_for(DIGITS, str(path), manifest, ["size=16"])
    text = str(e.value)
    assert text.startswith(f"--arch {path} is an export of space nasbench201, not of digits: give that space "
                           f"file"), text
    assert "--set size=16" in text and "size=8" not in text and "the space's default" not in text, text


def test_set_against_an_arch_encoded_for_another_space_file_says_which_file(tmp_path, nb201_choices, capsys):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"space": NB201, "choices": nb201_choices, "space_args": {}}))
    code = main(["space", "cost", DIGITS, "--arch", str(path), "--set", "size=16"])
    out, err = capsys.readouterr()
    assert code == 2 and not out, err
    assert err.startswith(f"error: --arch {path} was encoded for the space file {NB201}"), err
    assert "size=8" not in err and len(err.strip().splitlines()) == 1, err


def test_set_against_a_manifest_of_this_space_still_names_the_default(tmp_path):
    cs = load_compiled(DIGITS)
    manifest = {"format_version": 1, "space_name": "digits", "space_args": {},
                "choices": [d.choices[0] for d in cs.decisions]}
    with pytest.raises(UserError) as e:
        space_args_for(DIGITS, "m.json", manifest, ["size=16"])
    assert str(e.value).startswith("--set size=16 contradicts --arch m.json: its network was exported with size=8 "
                                   "(the space's default)"), str(e.value)
