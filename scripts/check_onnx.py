#!/usr/bin/env python3
"""A second opinion on strata's ONNX export: onnx's full checker and ONNX Runtime.

Usage:
    pip install onnx onnxruntime numpy
    STRATA_ONNX_DIR=target/onnx cargo test --test onnx_export
    python3 scripts/check_onnx.py target/onnx

For each `{case}.onnx` in the folder, with the `{case}.check.safetensors`
the test wrote beside it (`input`, strata's prediction `strata` and, for
the Keras reference cases, Keras's output `keras`):

- `onnx.checker.check_model(full_check=True)`: the schema, the opset, the
  graph's SSA form and every operator's shape inference;
- ONNX Runtime (CPU) runs `input` and its output is compared with
  strata's (to 1e-5, 1e-4 for ResNet-20) and with Keras's (to 1e-4).

A file without its `.check.safetensors` (one you exported yourself) is
checked and run on zeros of its declared shape, batch 2.

Exits non-zero if any model fails.
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = {"p2_resnet20": 1e-4}
DEFAULT_TOLERANCE = 1e-5
KERAS_TOLERANCE = 1e-4


def read_safetensors(path):
    """The float32 tensors of a safetensors file, by name."""
    data = path.read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    body = data[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: {name} is {info['dtype']}, not F32")
        start, end = info["data_offsets"]
        tensors[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"])
    return tensors


def declared_input(model):
    """Zeros of the model's declared input shape, the symbolic batch as 2."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else 2 for d in dims]
    return {"input": np.zeros(shape, dtype=np.float32)}


def check(path):
    """Checks and runs one file; returns (ok, message)."""
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    ops = sorted({n.op_type for n in model.graph.node})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    stem = path.name[: -len(".onnx")]
    check_file = path.with_name(stem + ".check.safetensors")
    if not check_file.exists():
        (y,) = session.run(["output"], declared_input(model))
        ok = bool(np.isfinite(y).all())
        return ok, f"checker ok, opset {opsets}, ran on zeros: output {list(y.shape)}; ops {ops}"

    t = read_safetensors(check_file)
    (y,) = session.run(["output"], {"input": t["input"]})
    tolerance = TOLERANCE.get(stem, DEFAULT_TOLERANCE)
    err = float(np.abs(y - t["strata"]).max()) if y.size else 0.0
    ok = y.shape == t["strata"].shape and err <= tolerance
    message = f"checker ok, opset {opsets}, ORT vs strata {err:.3g} (tol {tolerance:g})"
    if "keras" in t:
        err_keras = float(np.abs(y - t["keras"]).max()) if y.size else 0.0
        ok = ok and err_keras <= KERAS_TOLERANCE
        message += f", ORT vs Keras {err_keras:.3g}"
    return ok, message


def main(argv):
    if len(argv) != 2:
        print(__doc__)
        return 2
    folder = Path(argv[1])
    files = sorted(folder.glob("*.onnx"))
    if not files:
        print(f"no .onnx files in {folder}")
        return 2
    print(f"onnx {onnx.__version__}, onnxruntime {ort.__version__}")
    failed = 0
    for path in files:
        try:
            ok, message = check(path)
        except Exception as e:  # a checker or runtime error is a failure
            ok, message = False, f"{type(e).__name__}: {e}"
        failed += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {path.name}: {message}")
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
