"""The Open Inference Protocol (V2), which KServe, Triton and MLServer clients speak: an infer
request's tensors to rows, the answer's tensors, a model's metadata.

A request names one tensor per feature column (``{"name": "age", "shape": [3], "datatype": "FP64",
"data": [...]}``, as MLServer's pandas codec sends a table), or sends one 2-D tensor of every
feature in the signature's column order (``shape: [rows, features]``, as its numpy codec sends a
matrix). ``data`` is flat in row-major order, or nested as the shape says. The answer has the
output ``predict`` (and ``predict_proba``, shape ``[rows, classes]``, when the request's ``outputs``
asks for it), as MLServer's scikit-learn runtime names them. The rows then go through the same
signature check, batching and model as ``/v1/models/{name}/predict``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ml_platform.serving.parsing import RequestError, json_body
from ml_platform.signature import Signature

OUTPUTS = ("predict", "predict_proba")
# A signature column's kind as a tensor's datatype.
_KIND_DATATYPES = {"numeric": "FP64", "boolean": "BOOL", "categorical": "BYTES", "datetime": "BYTES"}


def infer_request(body: bytes, signature: Signature) -> tuple[dict[str, list], str | None, list[str]]:
    """(the rows as ``{"columns", "data"}``, the request's ``id``, the outputs asked for)."""
    request = json_body(body) if body.strip() else None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise RequestError(400, 'an inference request is {"inputs": [{"name", "shape", "datatype", "data"}, ...]}')
    tensors = [_tensor(t, i) for i, t in enumerate(request["inputs"])]
    if len(tensors) == 1 and len(tensors[0][1].shape) == 2 and tensors[0][0] not in signature.columns:
        name, values = tensors[0]
        if values.shape[1] != len(signature.columns):
            raise RequestError(
                400,
                f"input {name!r} has {values.shape[1]} features per row; the model takes {len(signature.columns)}"
                f" ({', '.join(signature.columns)}), in that order",
            )
        rows = {"columns": list(signature.columns), "data": values.tolist()}
    else:
        rows = _columns(tensors)
    wanted = [o.get("name") if isinstance(o, dict) else o for o in request.get("outputs") or [{"name": "predict"}]]
    unknown = [o for o in wanted if o not in OUTPUTS]
    if unknown:
        raise RequestError(400, f"unknown output(s) {unknown}: this model answers {', '.join(OUTPUTS)}")
    request_id = request.get("id")
    return rows, None if request_id is None else str(request_id), wanted


def _tensor(tensor: Any, index: int) -> tuple[str, np.ndarray]:
    """(its name, its values in its shape)."""
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or "data" not in tensor:
        raise RequestError(400, f"inputs[{index}] must have a name, a shape, a datatype and data")
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise RequestError(400, f"input {tensor['name']!r}: shape must be a list of sizes, e.g. [3] or [3, 1]")
    try:
        flat = np.asarray(tensor["data"], dtype=object).reshape(-1)
    except ValueError:
        raise RequestError(400, f"input {tensor['name']!r}: data is ragged (rows of different lengths)") from None
    if flat.size != math.prod(shape):
        raise RequestError(
            400, f"input {tensor['name']!r} has {flat.size} values for the shape {shape} ({math.prod(shape)})"
        )
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1 and index > 0):
        raise RequestError(400, f"input {tensor['name']!r}: shape {shape}; a column is [rows] or [rows, 1]")
    values = flat.reshape(shape)
    return tensor["name"], values.reshape(-1) if len(shape) == 2 and shape[1] == 1 else values


def _columns(tensors: list[tuple[str, np.ndarray]]) -> dict[str, list]:
    lengths = {name: len(values) for name, values in tensors}
    if len(set(lengths.values())) != 1:
        raise RequestError(400, f"the inputs have different numbers of rows: {lengths}")
    if any(values.ndim != 1 for _, values in tensors):
        raise RequestError(400, "with several inputs, each is one column: shape [rows] or [rows, 1]")
    names = [name for name, _ in tensors]
    return {"columns": names, "data": [list(row) for row in zip(*(values.tolist() for _, values in tensors))]}


def datatype(values: np.ndarray) -> str:
    """A tensor datatype for numpy values."""
    kind = np.asarray(values).dtype.kind
    return {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}.get(kind, "BYTES")


def infer_answer(
    model: str,
    version: str,
    request_id: str | None,
    wanted: list[str],
    predictions: np.ndarray,
    probabilities: pd.DataFrame | None,
    role: str = "production",
) -> dict[str, Any]:
    """The answer of an infer request: ``predict`` and, asked for, ``predict_proba``; ``model_version``
    names the version that answered, and ``parameters.role`` its role (production, or a rollout's
    candidate)."""
    outputs = []
    for name in wanted:
        if name == "predict":
            values = np.asarray(predictions)
            plain = values.tolist() if values.dtype.kind in "biuf" else [str(v) for v in values]
            outputs.append({"name": name, "shape": [len(values)], "datatype": datatype(values), "data": plain})
        else:
            matrix = probabilities.to_numpy(dtype="float64")
            outputs.append(
                {
                    "name": name,
                    "shape": list(matrix.shape),
                    "datatype": "FP64",
                    "data": matrix.reshape(-1).tolist(),
                    "parameters": {"classes": [str(c) for c in probabilities.columns]},
                }
            )
    answer: dict[str, Any] = {
        "model_name": model,
        "model_version": version,
        "outputs": outputs,
        "parameters": {"role": role},
    }
    if request_id is not None:
        answer["id"] = request_id
    return answer


def model_metadata(name: str, version: str, signature: Signature, classifier: bool) -> dict[str, Any]:
    """GET /v2/models/{name}: the inputs a request sends (one per feature column) and the outputs."""
    kinds = signature.kinds
    outputs = [{"name": "predict", "datatype": "BYTES" if classifier else "FP64", "shape": [-1]}]
    if classifier:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(signature.classes or [])]})
    return {
        "name": name,
        "versions": [version],
        "platform": "scikit-learn",
        "inputs": [
            {"name": c, "datatype": _KIND_DATATYPES.get(kinds.get(c, "numeric"), "BYTES"), "shape": [-1]}
            for c in signature.columns
        ],
        "outputs": outputs,
    }
