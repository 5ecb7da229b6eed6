#!/usr/bin/env python3
"""ONNX Runtime peer timings for strata: single Conv2D layers (with bias) and the
forward pass (inference) of three networks, float32, CPU: cifar_cnn (the quickstart's),
resnet20 (the CIFAR ResNet-20 of He et al., examples/models/resnet20.rs) and mobilenet_v2
(keras.applications.MobileNetV2, alpha 1.0, 224x224x3, examples/models/mobilenet_v2.rs).

strata's copy of ../shared/bench/ort_peer.py, extended with resnet20 and mobilenet_v2.

Setup (once; needs only numpy, onnx and onnxruntime):
    python3 -m venv .venv && .venv/bin/pip install numpy onnx onnxruntime

Usage:
    .venv/bin/python ort_peer.py                      # all configs + network, threads 1 and 2
    .venv/bin/python ort_peer.py --quick              # smoke run: 1 warm-up + 3 timed calls each
    .venv/bin/python ort_peer.py --configs cifar_cnn --batches 1,8,64 --threads 1,2 --json ort.json
    .venv/bin/python ort_peer.py --configs c4,c5 --threads 1
    .venv/bin/python ort_peer.py --configs resnet20,mobilenet_v2 --batches 1,64 --threads 1

Method:
- Configs are given in NHWC (strata/Keras notation). The ONNX graphs are NCHW, ORT's
  native layout; inputs and weights are converted once, outside the timed calls.
  ORT's own internal reorders (e.g. to its blocked NCHWc layout) are part of the timed call.
- 'same' padding follows Keras/TF: out = ceil(in/s), pad_total = max((out-1)*s + k - in, 0),
  before = total // 2, after = the rest (c8: 224, k7, s2 -> ONNX pads [2, 2, 3, 3]).
- One InferenceSession per config: ORT_ENABLE_ALL, intra_op_num_threads=t,
  inter_op_num_threads=1, sequential execution, CPU provider, everything else default.
  Each thread count runs in a fresh subprocess, so thread pools never carry over.
- Timing of sess.run(): 3 warm-up calls, then >= 9 timed calls and >= 1 s of timed work
  (at most 60 calls); min / median / max ms per call. GFLOP/s at the median time.
- FLOPs = 2*N*Ho*Wo*Cout*Cin*Kh*Kw per conv (bias ignored); for cifar_cnn the sum over its
  4 convs and 2 dense layers (2*N*in*out; pooling, activations and softmax ignored).
- util = process CPU time / wall time over the timed calls (about t when ORT keeps t cores
  busy; ORT's idle pool threads spin, so t=2 reads ~2 unless another process steals a core).
- Before timing, every output is checked against a plain numpy implementation.
- Weights and inputs are random (seeded); cifar_cnn flattens in NCHW order (differs from
  NHWC/Keras order, irrelevant for timing). Dropout is identity at inference and omitted.
- resnet20 and mobilenet_v2 are written as strata's examples write them: convolutions
  without bias, each followed by an inference-mode BatchNormalization node (random moving
  statistics; epsilon 1e-3), Relu or Clip(0, 6) for relu6, Add for a residual, a
  group = C Conv for DepthwiseConv2D, GlobalAveragePool, Gemm, Softmax. MobileNetV2's
  ZeroPadding2D(((0, 1), (0, 1))) before its stride-2 depthwise convolutions is written as
  the next Conv's pads (what ORT's Pad fusion makes of a Pad node anyway). ORT folds each
  BatchNormalization into its Conv when it optimises the graph; that is part of what is timed.
  Their FLOPs count the convolutions (per group) and the dense layer only. The numpy check of
  these two runs on the first image of the batch.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import zlib

# name: (N, H, W, Cin, Cout, K, stride, padding), NHWC notation, square K x K kernels
CONVS = {
    "c1": (64, 32, 32, 3, 32, 3, 1, "same"),
    "c2": (64, 32, 32, 32, 32, 3, 1, "valid"),
    "c3": (64, 15, 15, 32, 64, 3, 1, "same"),
    "c4": (8, 56, 56, 64, 64, 3, 1, "same"),
    "c5": (8, 28, 28, 128, 128, 3, 1, "same"),
    "c6": (8, 14, 14, 256, 256, 3, 1, "same"),
    "c7": (8, 56, 56, 64, 256, 1, 1, "valid"),
    "c8": (1, 224, 224, 3, 64, 7, 2, "same"),
}
NET = "cifar_cnn"
NET_INPUT = (32, 32, 3)  # H, W, C
# Keras CIFAR-10 example CNN (the Dropout layers are omitted: identity at inference)
NET_LAYERS = [("conv", 32, 3, "same"), ("relu",), ("conv", 32, 3, "valid"), ("relu",), ("maxpool", 2),
              ("conv", 64, 3, "same"), ("relu",), ("conv", 64, 3, "valid"), ("relu",), ("maxpool", 2),
              ("flatten",), ("dense", 512), ("relu",), ("dense", 10), ("softmax",)]


def resnet20_layers():
    """the CIFAR ResNet-20 (examples/models/resnet20.rs): ("conv", filters, k, pad, stride),
    ("bn",), ("residual", main, shortcut or None), ..."""
    def conv_bn(f, s=1):
        return [("conv", f, 3, "same", s), ("bn",)]
    layers = conv_bn(16) + [("relu",)]
    for filters, first_stride in ((16, 1), (32, 2), (64, 2)):
        for block in range(3):
            s = first_stride if block == 0 else 1
            main = conv_bn(filters, s) + [("relu",)] + conv_bn(filters)
            shortcut = [("conv", filters, 1, "valid", s), ("bn",)] if s != 1 else None
            layers += [("residual", main, shortcut), ("relu",)]
    return layers + [("gap",), ("dense", 10), ("softmax",)]


def mobilenet_v2_layers():
    """keras.applications.MobileNetV2() (examples/models/mobilenet_v2.rs): inverted residual
    blocks of (input channels, expansion, output channels, stride)"""
    blocks = [(32, 1, 16, 1), (16, 6, 24, 2), (24, 6, 24, 1), (24, 6, 32, 2), (32, 6, 32, 1),
              (32, 6, 32, 1), (32, 6, 64, 2), (64, 6, 64, 1), (64, 6, 64, 1), (64, 6, 64, 1),
              (64, 6, 96, 1), (96, 6, 96, 1), (96, 6, 96, 1), (96, 6, 160, 2), (160, 6, 160, 1),
              (160, 6, 160, 1), (160, 6, 320, 1)]
    layers = [("conv", 32, 3, "same", 2), ("bn",), ("relu6",)]
    for cin, e, cout, s in blocks:
        body = [("conv", cin * e, 1, "valid", 1), ("bn",), ("relu6",)] if e != 1 else []
        # Keras: ZeroPadding2D(correct_pad) then 'valid' for stride 2: pads (0, 1) on even maps
        body += [("dw", 3, "same" if s == 1 else (0, 1), s), ("bn",), ("relu6",)]
        body += [("conv", cout, 1, "valid", 1), ("bn",)]
        layers += [("residual", body, None)] if s == 1 and cin == cout else body
    return layers + [("conv", 1280, 1, "valid", 1), ("bn",), ("relu6",), ("gap",), ("dense", 1000),
                     ("softmax",)]


# networks built by build_net: name -> (input H, W, C; layers; description)
NETS = {
    "resnet20": ((32, 32, 3), resnet20_layers(), "10 (ResNet-20)"),
    "mobilenet_v2": ((224, 224, 3), mobilenet_v2_layers(), "1000 (MobileNetV2)"),
}

# (warm-up calls, min timed calls, min timed seconds, max timed calls)
FULL_TIMING = (3, 9, 1.0, 60)
QUICK_TIMING = (1, 3, 0.0, 3)
MAX_REL_ERR = 1e-4  # output check vs numpy, relative to max |reference|


# ---------------------------------------------------------------------------- geometry
def geom(size, k, s, pad):
    """output size and (before, after) padding along one spatial axis"""
    if pad == "valid":
        return (size - k) // s + 1, 0, 0
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def describe(config, batch):
    if config == NET:
        h, w, c = NET_INPUT
        return f"{batch}x{h}x{w}x{c} -> 10 (network)"
    if config in NETS:
        (h, w, c), _, out = NETS[config]
        return f"{batch}x{h}x{w}x{c} -> {out}"
    n, h, w, cin, cout, k, s, pad = CONVS[config]
    return f"{n}x{h}x{w}x{cin} -> {cout}, {k}x{k} s{s} {pad}"


# ---------------------------------------------------------------------------- models (worker side)
def onnx_bytes(nodes, inits, x_shape, y_shape):
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, y_shape)], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="ort_peer")
    m.ir_version = 8  # loadable by older onnxruntime releases too
    onnx.checker.check_model(m)
    return m.SerializeToString()


def glorot(rng, shape, fan_in, fan_out):
    import numpy as np
    lim = (6.0 / (fan_in + fan_out)) ** 0.5
    return rng.uniform(-lim, lim, size=shape).astype(np.float32)


def np_conv(x, w, b, s, pads):
    """numpy reference conv: x NCHW, w OIHW, pads (top, left, bottom, right) -> NCHW"""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view
    t, l, bo, r = pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::s, ::s]  # N C Ho Wo Kh Kw
    return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2) + b[:, None, None]


def conv_case(name):
    """-> (ONNX model bytes, NCHW input, numpy reference output, FLOPs per call)"""
    import numpy as np
    from onnx import helper, numpy_helper
    n, h, w, cin, cout, k, s, pad = CONVS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = rng.uniform(-1, 1, size=(n, h, w, cin)).astype(np.float32)    # NHWC
    wk = glorot(rng, (k, k, cin, cout), k * k * cin, k * k * cout)    # HWIO (Keras)
    b = rng.uniform(-0.5, 0.5, size=cout).astype(np.float32)
    xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))                # -> NCHW, not timed
    wn = np.ascontiguousarray(wk.transpose(3, 2, 0, 1))               # -> OIHW
    ho, pt, pb = geom(h, k, s, pad)
    wo, pl, pr = geom(w, k, s, pad)
    node = helper.make_node("Conv", ["X", "W", "B"], ["Y"], kernel_shape=[k, k], strides=[s, s],
                            pads=[pt, pl, pb, pr])
    model = onnx_bytes([node], [numpy_helper.from_array(wn, "W"), numpy_helper.from_array(b, "B")],
                       [n, cin, h, w], [n, cout, ho, wo])
    return model, xn, np_conv(xn, wn, b, s, (pt, pl, pb, pr)), 2 * n * ho * wo * cout * cin * k * k


def net_case(n, seed=0):
    """cifar_cnn at batch n, static shapes; same weights for every batch size"""
    import numpy as np
    from onnx import helper, numpy_helper
    rng = np.random.default_rng(seed)
    h, w, c = NET_INPUT
    xn = np.ascontiguousarray(rng.uniform(-1, 1, size=(n, h, w, c)).astype(np.float32).transpose(0, 3, 1, 2))
    nodes, inits, flops = [], [], 0
    ref, shape, cur = xn, (c, h, w), "X"   # numpy reference, per-image shape, current tensor name
    for i, (kind, *arg) in enumerate(NET_LAYERS):
        out = "Y" if i == len(NET_LAYERS) - 1 else f"t{i}"
        if kind == "conv":
            cout, k, pad = arg
            cin, h, w = shape
            ho, pt, pb = geom(h, k, 1, pad)
            wo, pl, pr = geom(w, k, 1, pad)
            wt = glorot(rng, (cout, cin, k, k), cin * k * k, cout * k * k)
            b = rng.uniform(-0.1, 0.1, size=cout).astype(np.float32)
            inits += [numpy_helper.from_array(wt, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
            nodes.append(helper.make_node("Conv", [cur, f"w{i}", f"b{i}"], [out], kernel_shape=[k, k],
                                          pads=[pt, pl, pb, pr]))
            ref = np_conv(ref, wt, b, 1, (pt, pl, pb, pr))
            flops += 2 * ho * wo * cout * cin * k * k
            shape = (cout, ho, wo)
        elif kind == "maxpool":
            (p,) = arg
            ch, h, w = shape
            nodes.append(helper.make_node("MaxPool", [cur], [out], kernel_shape=[p, p], strides=[p, p]))
            ref = ref[:, :, :h // p * p, :w // p * p].reshape(n, ch, h // p, p, w // p, p).max(axis=(3, 5))
            shape = (ch, h // p, w // p)
        elif kind == "flatten":
            nodes.append(helper.make_node("Flatten", [cur], [out], axis=1))
            ref = ref.reshape(n, -1)
            shape = (ref.shape[1],)
        elif kind == "dense":
            (units,) = arg
            fin = shape[0]
            wt = glorot(rng, (units, fin), fin, units)   # (out, in), used with transB=1
            b = rng.uniform(-0.1, 0.1, size=units).astype(np.float32)
            inits += [numpy_helper.from_array(wt, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
            nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [out], transB=1))
            ref = ref @ wt.T + b
            flops += 2 * fin * units
            shape = (units,)
        elif kind == "relu":
            nodes.append(helper.make_node("Relu", [cur], [out]))
            ref = np.maximum(ref, 0)
        elif kind == "softmax":
            nodes.append(helper.make_node("Softmax", [cur], [out], axis=-1))
            e = np.exp(ref - ref.max(axis=-1, keepdims=True))
            ref = e / e.sum(axis=-1, keepdims=True)
        cur = out
    model = onnx_bytes(nodes, inits, [n, c, NET_INPUT[0], NET_INPUT[1]], [n, *shape])
    return model, xn, ref, flops * n


def np_depthwise(x, w, s, pads):
    """numpy reference depthwise conv: x NCHW, w (C, 1, kh, kw) -> NCHW"""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view
    t, l, bo, r = pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, bo), (l, r)))
    win = sliding_window_view(xp, w.shape[2:], axis=(2, 3))[:, :, ::s, ::s]  # N C Ho Wo Kh Kw
    return np.einsum("nchwij,cij->nchw", win, w[:, 0])


class NetBuilder:
    """appends the ONNX nodes of a layer list and runs the same layers in numpy (on `ref`,
    the first images of the batch); shapes are per image, (C, H, W)"""

    def __init__(self, rng):
        self.rng, self.nodes, self.inits, self.flops, self.count = rng, [], [], 0, 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def param(self, prefix, array):
        from onnx import numpy_helper
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(array, n))
        return n

    def node(self, op, inputs, **attrs):
        from onnx import helper
        out = self.name("t")
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def chain(self, layers, cur, shape, ref):
        for layer in layers:
            cur, shape, ref = self.layer(layer, cur, shape, ref)
        return cur, shape, ref

    def layer(self, layer, cur, shape, ref):
        import numpy as np
        kind, *arg = layer
        c, h, w = shape if len(shape) == 3 else (shape[0], 1, 1)
        if kind in ("conv", "dw"):
            if kind == "conv":
                cout, k, pad, s = arg
                groups, cin_g = 1, c
            else:
                k, pad, s = arg
                cout, groups, cin_g = c, c, 1
            if isinstance(pad, tuple):  # explicit (before, after) on both axes, then 'valid'
                ho, wo = (h + sum(pad) - k) // s + 1, (w + sum(pad) - k) // s + 1
                pt, pb, pl, pr = pad[0], pad[1], pad[0], pad[1]
            else:
                ho, pt, pb = geom(h, k, s, pad)
                wo, pl, pr = geom(w, k, s, pad)
            wt = glorot(self.rng, (cout, cin_g, k, k), cin_g * k * k, cout * k * k // groups)
            out = self.node("Conv", [cur, self.param("w", wt)], kernel_shape=[k, k], strides=[s, s],
                            pads=[pt, pl, pb, pr], group=groups)
            pads = (pt, pl, pb, pr)
            ref = np_conv(ref, wt, np.zeros(cout, np.float32), s, pads) if groups == 1 \
                else np_depthwise(ref, wt, s, pads)
            self.flops += 2 * ho * wo * cout * cin_g * k * k
            return out, (cout, ho, wo), ref
        if kind == "bn":
            gamma = self.rng.uniform(0.5, 1.5, c).astype(np.float32)
            beta = self.rng.uniform(-0.5, 0.5, c).astype(np.float32)
            mean = self.rng.uniform(-0.5, 0.5, c).astype(np.float32)
            var = self.rng.uniform(0.5, 2.0, c).astype(np.float32)
            names = [self.param(p, v) for p, v in (("g", gamma), ("b", beta), ("m", mean), ("v", var))]
            out = self.node("BatchNormalization", [cur] + names, epsilon=1e-3)
            bshape = (1, c, 1, 1)
            ref = (ref - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-3) \
                * gamma.reshape(bshape) + beta.reshape(bshape)
            return out, shape, ref
        if kind == "relu":
            return self.node("Relu", [cur]), shape, np.maximum(ref, 0)
        if kind == "relu6":
            lo = self.param("c", np.array(0.0, np.float32))
            hi = self.param("c", np.array(6.0, np.float32))
            return self.node("Clip", [cur, lo, hi]), shape, np.clip(ref, 0, 6)
        if kind == "residual":
            main, shortcut = arg
            y, out_shape, y_ref = self.chain(main, cur, shape, ref)
            z, _, z_ref = self.chain(shortcut, cur, shape, ref) if shortcut else (cur, shape, ref)
            return self.node("Add", [y, z]), out_shape, y_ref + z_ref
        if kind == "gap":
            pooled = self.node("GlobalAveragePool", [cur])
            return self.node("Flatten", [pooled], axis=1), (c,), ref.mean(axis=(2, 3))
        if kind == "dense":
            (units,) = arg
            wt = glorot(self.rng, (units, c), c, units)
            b = self.rng.uniform(-0.1, 0.1, size=units).astype(np.float32)
            out = self.node("Gemm", [cur, self.param("w", wt), self.param("b", b)], transB=1)
            self.flops += 2 * c * units
            return out, (units,), ref @ wt.T + b
        if kind == "softmax":
            e = np.exp(ref - ref.max(axis=-1, keepdims=True))
            return self.node("Softmax", [cur], axis=-1), shape, e / e.sum(axis=-1, keepdims=True)
        raise ValueError(f"unknown layer {kind}")


def built_net_case(config, n, seed=0):
    """a NETS network at batch n, static shapes; same weights for every batch size. The numpy
    reference covers the first image only (MobileNetV2's windows at batch 64 would take GBs)."""
    import numpy as np
    from onnx import helper
    (h, w, c), layers, _ = NETS[config]
    rng = np.random.default_rng(zlib.crc32(config.encode()) + seed)
    xn = np.ascontiguousarray(rng.uniform(0, 1, size=(n, h, w, c)).astype(np.float32).transpose(0, 3, 1, 2))
    b = NetBuilder(rng)
    last, shape, ref = b.chain(layers, "X", (c, h, w), xn[:1])
    b.nodes[-1].output[0] = "Y"
    del last
    model = onnx_bytes(b.nodes, b.inits, [n, c, h, w], [n, *shape])
    return model, xn, ref, b.flops * n


# ---------------------------------------------------------------------------- worker
def time_calls(fn, warmup, min_calls, min_seconds, max_calls):
    """per-call seconds, and process CPU time / wall time over the timed calls"""
    for _ in range(warmup):
        fn()
    times = []
    c0, w0 = time.process_time(), time.perf_counter()
    while len(times) < min_calls or (sum(times) < min_seconds and len(times) < max_calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times, (time.process_time() - c0) / (time.perf_counter() - w0)


def worker(threads, configs, batches, quick):
    """runs in a fresh subprocess per thread count; prints one RESULT json line per case"""
    import numpy as np
    import onnxruntime as ort
    cases = [(c, CONVS[c][0], lambda c=c: conv_case(c)) for c in configs if c in CONVS]
    if NET in configs:
        cases += [(NET, b, lambda b=b: net_case(b)) for b in batches]
    for config in (c for c in configs if c in NETS):
        cases += [(config, b, lambda c=config, b=b: built_net_case(c, b)) for b in batches]
    for config, batch, make in cases:
        model, x, ref, flops = make()
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        feed = {"X": x}
        y = sess.run(None, feed)[0][:len(ref)]  # the NETS references cover the first images only
        err = float(np.abs(y - ref).max() / np.abs(ref).max())
        if not err <= MAX_REL_ERR:
            raise SystemExit(f"{config} batch {batch}: ORT output differs from numpy reference (rel {err:.1e})")
        times, util = time_calls(lambda: sess.run(None, feed), *(QUICK_TIMING if quick else FULL_TIMING))
        print("RESULT " + json.dumps(dict(config=config, batch=batch, threads=threads, flops=flops,
                                          times_ms=[t * 1e3 for t in times], cpu_util=util, rel_err=err)),
              flush=True)


# ---------------------------------------------------------------------------- driver
def busy_cpu_seconds():
    """CPU seconds all processes have used since boot (Linux /proc/stat), or None"""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    except OSError:
        return None
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_worker(threads, args):
    """one thread count in a fresh subprocess -> (records, share of the machine that other
    processes used meanwhile, wall seconds)"""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(threads), "--configs", ",".join(args.configs),
           "--batches", ",".join(map(str, args.batches))] + (["--quick"] if args.quick else [])
    # numpy's BLAS (only used for the reference check) stays single-threaded; ORT has its own pool
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    busy0, own0, wall0 = busy_cpu_seconds(), children_cpu_seconds(), time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    recs = []
    for line in proc.stdout:
        if line.startswith("RESULT "):
            r = summarize(json.loads(line[len("RESULT "):]))
            recs.append(r)
            print(f"  t{threads} {r['config']} b{r['batch']}: median {r['ms_med']:.3f} ms, "
                  f"{r['gflops']:.1f} GFLOP/s", file=sys.stderr, flush=True)
    if proc.wait() != 0:
        raise SystemExit(f"worker for {threads} thread(s) failed (exit {proc.returncode})")
    wall = time.perf_counter() - wall0
    busy1 = busy_cpu_seconds()
    other = None
    if busy0 is not None and busy1 is not None:
        other = max(0.0, (busy1 - busy0) - (children_cpu_seconds() - own0)) / (wall * (os.cpu_count() or 1))
    return recs, other, wall


def summarize(r):
    t = sorted(r["times_ms"])
    r.update(calls=len(t), ms_min=t[0], ms_med=statistics.median(t), ms_max=t[-1])
    r["gflops"] = r["flops"] / (r["ms_med"] * 1e-3) / 1e9
    if r["config"] == NET or r["config"] in NETS:
        r["img_s"] = r["batch"] / (r["ms_med"] * 1e-3)
    return r


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def render(meta, recs):
    order = list(CONVS) + [NET] + list(NETS)
    recs = sorted(recs, key=lambda r: (order.index(r["config"]), r["batch"], r["threads"]))
    v = meta["versions"]
    lines = [f"## ONNX Runtime {v['onnxruntime']} peer timings (float32, CPU)", "",
             f"- onnxruntime {v['onnxruntime']}, onnx {v['onnx']}, numpy {v['numpy']}, Python {v['python']}",
             f"- CPU: {meta['cpu']} ({meta['cpus']} logical CPUs, {meta['cpus_usable']} usable by this process)",
             f"- {meta['date']}; load average before: {meta['loadavg']}; `ort_peer.py {meta['argv']}`",
             "- other processes' share of the machine while each worker ran: " +
             ", ".join(f"t{t} {'n/a' if o is None else f'{o:.0%}'}" for t, o in meta["other_load"].items()),
             "- ORT_ENABLE_ALL, intra_op_num_threads=t, inter_op_num_threads=1, sequential; NCHW graphs; "
             "GFLOP/s at the median; util = CPU time / wall time"]
    if any(o is not None and o > 0.1 for o in meta["other_load"].values()):
        lines.append("- **WARNING: other processes were busy during the run; these figures (t>1 most of all) "
                     "are too low. Rerun on an idle machine.**")
    lines += ["", "| config | shape (NHWC) | threads | MFLOP | calls | min ms | median ms | max ms | GFLOP/s "
              "| img/s | util |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        img = f"{r['img_s']:.0f}" if "img_s" in r else ""
        lines.append(f"| {r['config']} | {describe(r['config'], r['batch'])} | {r['threads']} | "
                     f"{r['flops'] / 1e6:.1f} | {r['calls']} | {r['ms_min']:.3f} | {r['ms_med']:.3f} | "
                     f"{r['ms_max']:.3f} | {r['gflops']:.1f} | {img} | {r['cpu_util']:.2f} |")
    return "\n".join(lines)


def int_list(s):
    vals = [int(v) for v in s.split(",") if v.strip()]
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {s!r}")
    return vals


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int_list, default="1,2", help="intra-op thread counts (default 1,2)")
    ap.add_argument("--configs", default=",".join(list(CONVS) + [NET] + list(NETS)),
                    help=f"subset of {','.join(CONVS)},{NET},{','.join(NETS)} (default all)")
    ap.add_argument("--batches", type=int_list, default="1,8,64",
                    help=f"batch sizes for the networks {NET},{','.join(NETS)} (default 1,8,64)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 warm-up + 3 timed calls per case")
    ap.add_argument("--json", metavar="PATH", help="also write the raw figures (every call's time) here")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # internal: thread count of a worker
    args = ap.parse_args()
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in args.configs if c not in CONVS and c != NET and c not in NETS]
    if bad or not args.configs:
        ap.error(f"unknown config(s) {bad}; choose from {', '.join(CONVS)}, {NET}, {', '.join(NETS)}")
    if args.worker:
        return worker(args.worker, args.configs, args.batches, args.quick)

    import numpy
    import onnx
    import onnxruntime
    meta = dict(date=datetime.datetime.now().astimezone().isoformat(timespec="seconds"), cpu=cpu_model(),
                cpus=os.cpu_count(), cpus_usable=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count(), loadavg=" ".join(f"{x:.2f}" for x in os.getloadavg()),
                argv=" ".join(sys.argv[1:]), quick=args.quick, other_load={}, worker_seconds={},
                versions=dict(onnxruntime=onnxruntime.__version__, onnx=onnx.__version__,
                              numpy=numpy.__version__, python=platform.python_version()))
    print(f"onnxruntime {onnxruntime.__version__}; CPU: {meta['cpu']}", file=sys.stderr, flush=True)
    recs = []
    for t in args.threads:
        r, other, wall = run_worker(t, args)
        recs += r
        meta["other_load"][t] = other
        meta["worker_seconds"][t] = round(wall, 1)
    print(render(meta, recs))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, results=recs), f, indent=1)
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
