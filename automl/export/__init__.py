"""Export architectures as deployable models: a standalone torch model (a timm ``EfficientNet`` for chain
spaces, a plain ``nn.Module`` for cell spaces), its weights, ONNX, and a ``manifest.json``.

>>> from automl.compile import load_compiled
>>> from automl.export import export_architecture, load_model
>>> cs = load_compiled("spaces/proxylessnas.space")
>>> manifest = export_architecture(cs, arch, "export/my-net")     # doctest: +SKIP
>>> model = load_model("export/my-net")                            # doctest: +SKIP
"""

from automl.export._arch import as_arch, choices_from_json, is_manifest, read_arch_file, read_arch_json
from automl.export._export import check_se, export_architecture, inherit_from_state, load_model, run_of
from automl.export.inherit import InheritError, inherit_weights, load_checkpoint, split_checkpoint
from automl.export.manifest import FORMAT_VERSION, read_manifest
from automl.export.onnx import OnnxParityError, export_onnx
from automl.export.timm_spec import StandaloneSpecError, build_timm_model
from automl.nn import count_params  # published here first

__all__ = [
    "export_architecture", "load_model", "read_manifest", "read_arch_file", "read_arch_json", "is_manifest",
    "choices_from_json", "as_arch",
    "export_onnx", "inherit_weights", "inherit_from_state", "load_checkpoint", "split_checkpoint", "build_timm_model",
    "count_params", "check_se", "OnnxParityError", "InheritError", "StandaloneSpecError", "FORMAT_VERSION",
    "run_of",
]
