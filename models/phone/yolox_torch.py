"""YOLOX-nano as a trainable PyTorch module, built from the official ONNX file.

The ONNX export of YOLOX-nano has its batch norms folded into the convolutions, so the
network is a plain graph of ten operator kinds (Conv, Sigmoid, Mul, Add, Concat, Slice,
MaxPool, Resize, Reshape, Transpose). :class:`OnnxYolox` walks that graph in order with
every convolution turned into an ``nn.Conv2d`` holding the ONNX weights, so the COCO
weights are the starting point exactly (checked by :func:`check_against_onnxruntime`).

For a detector of a subset of the classes (here the one class "cell phone", COCO 67),
``keep_classes`` keeps only those rows of the three ``head.cls_preds`` convolutions.
``raw=True`` (training) returns the objectness and class logits before the sigmoid, and
:meth:`OnnxYolox.export` writes a YOLOX-format ONNX: output (1, N, 5 + classes) with
sigmoid scores, input size dynamic (any multiple of 32).

Training only: this module needs torch and onnx, which the server does not install.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn import functional as F

HEAD_PREDS = ("head.cls_preds.", "head.obj_preds.")


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxYolox(nn.Module):
    def __init__(self, onnx_path: Path, keep_classes: list[int] | None = None) -> None:
        super().__init__()
        model = onnx.load(str(onnx_path))
        graph = model.graph
        inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.input_name = graph.input[0].name
        self.convs = nn.ModuleDict()
        self.steps: list[tuple[str, list[str], list[str], dict]] = []
        self.consts: dict[str, list] = {}
        self.logit_names: set[str] = set()  # outputs of obj/cls prediction convs
        self.cls_names: list[str] = []  # outputs of the class prediction convs
        self.num_classes = 80
        for index, node in enumerate(graph.node):
            attrs = _attrs(node)
            inputs = list(node.input)
            if node.op_type == "Conv":
                weight = inits[inputs[1]]
                bias = inits[inputs[2]] if len(inputs) > 2 else None
                if inputs[1].startswith("head.cls_preds.") and keep_classes is not None:
                    weight = weight[keep_classes]
                    bias = bias[keep_classes] if bias is not None else None
                    self.num_classes = len(keep_classes)
                if inputs[1].startswith(HEAD_PREDS):
                    self.logit_names.add(node.output[0])
                if inputs[1].startswith("head.cls_preds."):
                    self.cls_names.append(node.output[0])
                out_c, in_c_g, kh, kw = weight.shape
                group = attrs.get("group", 1)
                conv = nn.Conv2d(
                    in_c_g * group,
                    out_c,
                    (kh, kw),
                    stride=tuple(attrs.get("strides", [1, 1])),
                    padding=tuple(attrs.get("pads", [0, 0, 0, 0])[:2]),
                    groups=group,
                    bias=bias is not None,
                )
                conv.weight.data = torch.from_numpy(np.array(weight, dtype=np.float32))
                if bias is not None:
                    conv.bias.data = torch.from_numpy(np.array(bias, dtype=np.float32))
                key = f"c{index}"
                self.convs[key] = conv
                attrs = {"conv": key}
                inputs = inputs[:1]
            elif node.op_type == "Slice":
                attrs = {
                    "starts": inits[inputs[1]].tolist(),
                    "ends": inits[inputs[2]].tolist(),
                    "axes": inits[inputs[3]].tolist(),
                    "steps": inits[inputs[4]].tolist(),
                }
                inputs = inputs[:1]
            elif node.op_type == "Resize":
                attrs = {"scale": [int(s) for s in inits[inputs[2]].tolist()[2:]]}
                inputs = inputs[:1]
            elif node.op_type == "Reshape":
                inputs = inputs[:1]
            self.steps.append((node.op_type, inputs, list(node.output), attrs))
        self.output_name = graph.output[0].name
        self.feature_names, self.head_start = self._find_head()

    def _find_head(self) -> tuple[list[str], int]:
        """The three feature maps the detection head reads (the PAFPN's outputs, strides
        8, 16, 32) and the index of the head's first step. The head of each level starts
        with a 1x1 "stem" convolution whose activation feeds both the class and the box
        branch; everything before the first stem is backbone and neck."""
        producer = {out: i for i, (_, _, outs, _) in enumerate(self.steps) for out in outs}
        consumers: dict[str, list[int]] = {}
        for i, (_, ins, _, _) in enumerate(self.steps):
            for name in ins:
                consumers.setdefault(name, []).append(i)
        features, starts = [], []
        for op, ins, outs, _ in self.steps:
            if op != "Conv" or outs[0] not in self.cls_names:
                continue
            # walk back from a class/objectness prediction to the branch point
            name = ins[0]
            while True:
                users = [c for c in consumers.get(name, []) if self.steps[c][0] == "Conv"]
                if len(users) >= 2:
                    break
                name = self.steps[producer[name]][1][0]
            # ``name`` is the stem's activation (Mul of conv and its sigmoid): its conv
            mul = self.steps[producer[name]]
            stem = min(producer[x] for x in mul[1] if self.steps[producer[x]][0] == "Conv")
            feature = self.steps[stem][1][0]
            if feature not in features:
                features.append(feature)
                starts.append(stem)
        if len(features) != 3:
            raise ValueError(f"expected 3 head inputs, found {len(features)}")
        order = sorted(range(3), key=lambda k: starts[k])
        return [features[k] for k in order], min(starts)

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Backbone and neck only: the three maps the head reads."""
        values: dict[str, torch.Tensor] = {self.input_name: images}
        self._run(values, 0, self.head_start, raw=False)
        return [values[name] for name in self.feature_names]

    def head(self, features: list[torch.Tensor], raw: bool = False) -> torch.Tensor:
        """The detection head on :meth:`features`' output."""
        values = dict(zip(self.feature_names, features, strict=True))
        self._run(values, self.head_start, len(self.steps), raw=raw)
        return values[self.output_name]

    def head_parameters(self) -> list[nn.Parameter]:
        keys = {a["conv"] for op, _, _, a in self.steps[self.head_start :] if op == "Conv"}
        return [p for key in sorted(keys) for p in self.convs[key].parameters()]

    def forward(self, images: torch.Tensor, raw: bool = False) -> torch.Tensor:
        """(B, 3, S, S) BGR 0-255 → (B, N, 5 + classes): cx, cy, log w, log h (grid
        units), objectness and class scores: probabilities, or logits when ``raw``."""
        values: dict[str, torch.Tensor] = {self.input_name: images}
        self._run(values, 0, len(self.steps), raw=raw)
        return values[self.output_name]

    def _run(self, values: dict[str, torch.Tensor], start: int, stop: int, raw: bool) -> None:
        for op, inputs, outputs, attrs in self.steps[start:stop]:
            x = [values[i] for i in inputs]
            if op == "Conv":
                y = self.convs[attrs["conv"]](x[0])
            elif op == "Sigmoid":
                y = x[0] if raw and inputs[0] in self.logit_names else torch.sigmoid(x[0])
            elif op == "Mul":
                y = x[0] * x[1]
            elif op == "Add":
                y = x[0] + x[1]
            elif op == "Concat":
                y = torch.cat(x, dim=attrs["axis"])
            elif op == "Slice":
                y = x[0]
                for start, end, axis, step in zip(
                    attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"], strict=True
                ):
                    index = [slice(None)] * y.dim()
                    index[axis] = slice(start, None if end >= 2**62 else end, step)
                    y = y[tuple(index)]
            elif op == "MaxPool":
                k = attrs["kernel_shape"][0]
                y = F.max_pool2d(x[0], k, stride=1, padding=k // 2)
            elif op == "Resize":
                y = F.interpolate(x[0], scale_factor=attrs["scale"], mode="nearest")
            elif op == "Reshape":
                y = x[0].flatten(2)
            elif op == "Transpose":
                y = x[0].permute(*attrs["perm"])
            else:
                raise NotImplementedError(op)
            values[outputs[0]] = y

    def export(self, path: Path, size: int = 416) -> None:
        """Write a YOLOX-format ONNX (input ``images`` 1x3xHxW dynamic H, W; output
        ``output`` 1xNx(5 + classes), scores after the sigmoid)."""
        self.eval()
        dummy = torch.zeros(1, 3, size, size)
        torch.onnx.export(
            self,
            (dummy,),
            str(path),
            input_names=["images"],
            output_names=["output"],
            dynamic_axes={"images": {2: "height", 3: "width"}, "output": {1: "anchors"}},
            opset_version=17,
            dynamo=False,
        )


def check_against_onnxruntime(onnx_path: Path, size: int = 416) -> float:
    """Largest absolute difference between this module and onnxruntime on random input."""
    import onnxruntime as ort

    net = OnnxYolox(onnx_path).eval()
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (theirs,) = session.run(None, {session.get_inputs()[0].name: x})
    return float(np.abs(ours - theirs).max())


if __name__ == "__main__":
    import sys

    print("max |torch - onnxruntime|:", check_against_onnxruntime(Path(sys.argv[1])))
