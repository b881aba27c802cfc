"""The ``--set`` values an architecture file brings (``automl export --arch``, ``automl space cost --arch``,
``automl space encode --arch-def``): a module of its own, since it reads manifests (automl.export, which loads
torch) and ``automl.commands`` is imported by every CLI call."""

from __future__ import annotations

from automl.commands import recorded_space_args, space_args_for
from automl.export import is_manifest
from automl.export.manifest import check_recorded

__all__ = ["arch_space_args"]


def arch_space_args(space: str, path: str, arch_json, items: list[str] | None, flag: str = "--arch") -> dict[str, str]:
    """The ``--set`` values ``items`` on top of those the file ``path`` (given as ``flag``, its JSON ``arch_json``)
    records: an export's manifest (checked first: :func:`~automl.export.manifest.check_recorded`), or with
    ``--arch`` an ARCH.json of ``automl space encode`` (:func:`~automl.commands.recorded_space_args`); a ``--set``
    that changes a recorded value is refused (:func:`~automl.commands.space_args_for`)."""
    if is_manifest(arch_json):  # an export's manifest: its network's space; a --set may not change it
        check_recorded(arch_json, f"{flag} {path}")
        return space_args_for(space, path, arch_json, items, flag)
    encoded = recorded_space_args(arch_json) if flag == "--arch" else None  # encode's ARCH.json: its parameters
    return space_args_for(space, path, encoded, items, flag, encoded=True)
