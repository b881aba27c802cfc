"""``automl export SPACE --arch ARCH.json --out DIR``: one architecture -> ONNX + weights + manifest."""

from __future__ import annotations

import os

from automl.cli import parse_set_args
from automl.errors import UserError

__all__ = ["main"]


def main(args) -> int:
    from automl.compile import load_compiled
    from automl.export import export_architecture, load_checkpoint, read_arch_file, split_checkpoint
    from automl.export._export import check_se
    from automl.export.onnx import check_opset

    overrides = parse_set_args(args.set)
    if not os.path.isfile(args.space):
        raise UserError(f"{args.space}: no such space file")
    compiled = load_compiled(args.space, overrides or None)
    arch = read_arch_file(args.arch, compiled)
    se = check_se(args.se, compiled)
    check_opset(args.opset)

    weights = supernet_state = None
    if args.weights:
        obj = load_checkpoint(args.weights)
        keys = set(compiled.build_standalone(arch, se=se).state_dict())
        kind, state = split_checkpoint(obj, keys, source=f"--weights {args.weights}")
        if kind == "supernet":
            supernet_state = state
        else:
            weights = state
    manifest = export_architecture(compiled, arch, args.out, weights=weights, supernet_state=supernet_state,
                                   se=se, opset=args.opset, space_path=args.space, space_args=overrides)
    onnx, w = manifest["onnx"], manifest["weights"]
    print(f"exported {manifest['space_name']} ({manifest['params']:,} params, weights: {w['source']}) to "
          f"{args.out}: {onnx['file']} (opset {onnx['opset']}, parity max |diff| "
          f"{onnx['parity_max_abs_diff']:.2g}), {w['file']}, manifest.json")
    return 0
