"""Rebuild the layers Lowrank factored, in a PyTorch model.

Lowrank's compression writes a safetensors checkpoint in which each factored
weight "<prefix>.weight" is replaced by "<prefix>.lowrank.<i>.weight", and a
manifest (JSON) saying which modules rebuild each layer. This script turns a
model into one whose state_dict has exactly the compressed checkpoint's
names: the module at <prefix> becomes a LowRank module holding the factor
modules in a Sequential called "lowrank" and the original bias as its own
"bias". Then model.load_state_dict(tensors, strict=True) loads the file.

    import torch
    from pytorch_apply import read_safetensors, apply_lowrank
    tensors, _ = read_safetensors("model.lowrank.safetensors")
    manifest = json.load(open("manifest.json"))
    model = MyModel()
    apply_lowrank(model, manifest)
    model.load_state_dict(tensors)

Only torch is needed: the safetensors file is read by a small reader below
(torch.frombuffer on each tensor's byte range), not by the safetensors
package.

`python3 pytorch_apply.py --check ORIGINAL COMPRESSED MANIFEST [--seed N]`
runs the self-check Lowrank's tests use on a small demo model (DemoNet):
it loads the original weights into one copy and the compressed ones into a
rebuilt copy, feeds both random inputs, and prints JSON with each layer's
relative output error and the whole model's.
"""

import argparse
import json
import struct
import sys

import torch
from torch import nn
import torch.nn.functional as F

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}


def read_safetensors(path):
    """Returns ({name: tensor}, metadata) of a safetensors file (little-endian host)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    tensors = {}
    for name, entry in header.items():
        lo, hi = entry["data_offsets"]
        dtype = _DTYPES[entry["dtype"]]
        if hi > lo:
            t = torch.frombuffer(bytearray(data[base + lo:base + hi]), dtype=dtype)
        else:
            t = torch.empty(0, dtype=dtype)
        tensors[name] = t.reshape(entry["shape"])
    return tensors, meta


class HFConv1D(nn.Module):
    """Hugging Face's Conv1D: y = x @ W + b with W stored (in, out)."""

    def __init__(self, n_in, n_out, bias=True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out)) if bias else None

    def forward(self, x):
        y = x @ self.weight
        return y if self.bias is None else y + self.bias


class LowRank(nn.Module):
    """A factored layer: the factor modules in order, then the original bias."""

    def __init__(self, modules, bias, channel_dim):
        super().__init__()
        self.lowrank = nn.Sequential(*modules)
        self.bias = nn.Parameter(bias.clone()) if bias is not None else None
        self.channel_dim = channel_dim

    def forward(self, x):
        y = self.lowrank(x)
        if self.bias is None:
            return y
        shape = [1] * y.dim()
        shape[self.channel_dim if self.channel_dim >= 0 else y.dim() - 1] = -1
        return y + self.bias.view(shape)


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _geometry(spec, original):
    """Stride, padding and dilation of a rebuilt conv module."""
    stride, padding, dilation = [1, 1], [0, 0], [1, 1]
    where = spec.get("geometry", "")
    if where:
        if isinstance(original.padding, str):
            raise ValueError("padding=%r on the original conv: give it as numbers" % original.padding)
        axes = {"original": (0, 1), "original_h": (0,), "original_w": (1,)}[where]
        s, p, d = _pair(original.stride), _pair(original.padding), _pair(original.dilation)
        for a in axes:
            stride[a], padding[a], dilation[a] = s[a], p[a], d[a]
    return tuple(stride), tuple(padding), tuple(dilation)


def _build(spec, original):
    kind = spec["type"]
    if kind == "linear":
        return nn.Linear(spec["in_features"], spec["out_features"], bias=False)
    if kind == "hf_conv1d":
        return HFConv1D(spec["in_features"], spec["out_features"], bias=False)
    if kind == "conv2d":
        stride, padding, dilation = _geometry(spec, original)
        return nn.Conv2d(spec["in_features"], spec["out_features"], tuple(spec["kernel_size"]),
                         stride=stride, padding=padding, dilation=dilation,
                         groups=spec.get("groups", 1) or 1, bias=False)
    raise ValueError("unknown module type %r" % kind)


def apply_lowrank(model, manifest):
    """Replaces every layer the manifest lists by its LowRank rebuild (weights
    uninitialised: load the compressed checkpoint into the model next)."""
    if manifest.get("format") != "lowrank.compress.v1":
        raise ValueError("unknown manifest format %r" % manifest.get("format"))
    for layer in manifest["layers"]:
        name = layer["name"]
        prefix = name[:-len(".weight")] if name.endswith(".weight") else name
        parent_name, _, attr = prefix.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        original = getattr(parent, attr)
        if isinstance(original, nn.Conv2d) and original.groups != 1:
            raise ValueError("%s: grouped convolutions are not factored" % prefix)
        modules = [_build(spec, original) for spec in layer["modules"]]
        bias = getattr(original, "bias", None)
        last = layer["modules"][-1]
        if bias is not None and not last.get("bias"):
            raise ValueError("%s: the model has a bias the manifest does not name" % prefix)
        channel_dim = 1 if layer["layout"] == "conv2d" else -1
        setattr(parent, attr, LowRank(modules, bias.detach() if bias is not None else None, channel_dim))
    return model


class DemoNet(nn.Module):
    """The model of the self-check; Lowrank's Go test writes its weights."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 48, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(48, 64, 1)
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.proj = HFConv1D(128, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.proj(x))
        return self.fc2(x)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def check(original_path, compressed_path, manifest_path, seed):
    torch.manual_seed(seed)
    original, _ = read_safetensors(original_path)
    compressed, meta = read_safetensors(compressed_path)
    with open(manifest_path) as f:
        manifest = json.load(f)
    ref = DemoNet()
    ref.load_state_dict(original, strict=True)
    low = apply_lowrank(DemoNet(), manifest)
    low.load_state_dict(compressed, strict=True)
    ref.eval()
    low.eval()
    out = {"layers": {}, "lowrank_version": meta.get("lowrank_version")}
    with torch.no_grad():
        for layer in manifest["layers"]:
            prefix = layer["name"][:-len(".weight")]
            a, b = ref.get_submodule(prefix), low.get_submodule(prefix)
            if layer["layout"] == "conv2d":
                x = torch.randn(16, layer["shape"][1], 8, 8)
            elif layer["layout"] == "hf_conv1d":
                x = torch.randn(512, layer["shape"][0])
            else:
                x = torch.randn(512, layer["shape"][1])
            # Without the bias, which the two share, the ratio is that of
            # the weights alone.
            bias_shape = [1, -1] + [1] * (x.dim() - 2)
            ya = a(x) - (0 if a.bias is None else a.bias.view(bias_shape))
            yb = b.lowrank(x)
            out["layers"][layer["name"]] = _rel(yb, ya)
        x = torch.randn(64, 8, 8, 8)
        out["model"] = _rel(low(x), ref(x))
    json.dump(out, sys.stdout)
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", nargs=3, metavar=("ORIGINAL", "COMPRESSED", "MANIFEST"), required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    check(*args.check, seed=args.seed)


if __name__ == "__main__":
    main()
