"""The shipped ``phone_wide_check.onnx`` (issue 18) from the two wide crop checks that
``context_check.py export`` writes (``phone_check_4x.onnx``, ``phone_check_8x.onnx``: each
the frozen COCO YOLOX-nano backbone and neck with 4 MLPs, 6 MB).

    .venv/bin/python -m models.phone.combine_wide /tmp/phone_check_4x.onnx:4:1 \
        /tmp/phone_check_8x.onnx:8:2 --out models/phone/phone_wide_check.onnx

One file, one backbone: both files' backbones are the same frozen weights (checked), so
the second file's MLPs are grafted onto the first's pooled features; every check's output
(``p4x``, ``p8x``: its phone probability, (N, 1)) is computed on every crop of the batch
and the caller takes each check's on the crops of its own context. The weights are stored
as float16 and cast back to float32 when the file is opened (onnxruntime folds the casts:
the arithmetic stays float32), which halves the file (4.4 MB instead of 8.7). The file's
metadata names each output's context (the crop's side in the box's longer side) and its
weight in the product's score (``contexts`` "4,8", ``weights`` "1,2"; read by
:class:`proctor.vision.phone.WideCheck`). The figures and the comparison with the two
source files are printed; results in ``models/phone/README.md``.

Needs only ``onnx`` and ``onnxruntime`` (the product's own dependencies).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HALF_FROM = 64  # float initializers of at least this many values are stored as float16


def _head_start(graph: onnx.GraphProto) -> tuple[int, str]:
    """Index of the first node that reads the pooled features, and their tensor's name
    (the input of the first ``Gemm``)."""
    for i, node in enumerate(graph.node):
        if node.op_type == "Gemm":
            return i, node.input[0]
    raise ValueError("no Gemm: not a crop check of context_check.py export")


def combine(sources: list[tuple[Path, float, float]], out: Path) -> None:
    """Graft each source's MLPs (from its first ``Gemm``) onto the first source's
    backbone; outputs ``p{context}x``; float16 storage; metadata for the product."""
    models = [onnx.load(str(path)) for path, _, _ in sources]
    base = models[0].graph
    start, features = _head_start(base)
    backbone = {i.name: numpy_helper.to_array(i) for i in base.initializer}
    head_inits: set[str] = set()
    for node in base.node[start:]:
        head_inits.update(n for n in node.input if n in backbone)
    nodes = list(base.node[:start])
    inits = [i for i in base.initializer if i.name not in head_inits]
    outputs = []
    for k, (model, (path, context, _)) in enumerate(zip(models, sources, strict=True)):
        graph = model.graph
        s, feat = _head_start(graph)
        own = {i.name: i for i in graph.initializer}
        for name, array in own.items():  # the backbone must be the same weights
            used_by_head = any(name in n.input for n in graph.node[s:])
            if not used_by_head and not np.array_equal(
                numpy_helper.to_array(array), backbone[name]
            ):
                raise ValueError(f"{path.name}: backbone weight {name} differs from the first's")
        if [n.op_type for n in graph.node[:s]] != [n.op_type for n in base.node[:start]]:
            raise ValueError(f"{path.name}: another backbone than the first file's")
        prefix = f"k{k}/"
        (final,) = [o.name for o in graph.output]
        name = f"p{context:g}x"
        fixed = {feat: features, final: name}

        def renamed(t: str, prefix: str = prefix, fixed: dict = fixed) -> str:
            return fixed.get(t, prefix + t if t else t)

        for node in graph.node[s:]:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.name = prefix + node.name
            copy.input[:] = [renamed(t) for t in node.input]
            copy.output[:] = [renamed(t) for t in node.output]
            nodes.append(copy)
        for node in graph.node[s:]:
            for t in node.input:
                if t in own and not any(i.name == prefix + t for i in inits):
                    copy = onnx.TensorProto()
                    copy.CopyFrom(own[t])
                    copy.name = prefix + t
                    inits.append(copy)
        (o,) = graph.output
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["n", 1]))
        assert o.type.tensor_type.elem_type == TensorProto.FLOAT
    # float16 storage, cast back on opening
    stored, casts = [], []
    for init in inits:
        array = numpy_helper.to_array(init)
        if init.data_type == TensorProto.FLOAT and array.size >= HALF_FROM:
            stored.append(numpy_helper.from_array(array.astype(np.float16), init.name + ":f16"))
            casts.append(
                helper.make_node("Cast", [init.name + ":f16"], [init.name], to=TensorProto.FLOAT)
            )
        else:
            stored.append(init)
    graph = helper.make_graph(casts + nodes, "phone_wide_check", list(base.input), outputs, stored)
    model = helper.make_model(graph, opset_imports=list(models[0].opset_import))
    model.ir_version = models[0].ir_version
    helper.set_model_props(
        model,
        {
            "contexts": ",".join(f"{c:g}" for _, c, _ in sources),
            "weights": ",".join(f"{w:g}" for _, _, w in sources),
            "outputs": ",".join(o.name for o in outputs),
        },
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(out))
    print(f"wrote {out}: {out.stat().st_size / 1e6:.2f} MB")


def compare(sources: list[tuple[Path, float, float]], out: Path, count: int = 256) -> None:
    """The combined file against the source files on random crops (uniform noise and
    smooth blobs): the largest difference of each output."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (count // 2, 3, 96, 96))
    blobs = np.repeat(np.repeat(rng.uniform(0, 255, (count // 2, 3, 12, 12)), 8, 2), 8, 3)
    crops = np.concatenate([noise, blobs]).astype(np.float32)
    combined = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [o.name for o in combined.get_outputs()]
    got = dict(zip(names, combined.run(None, {"crops": crops}), strict=True))
    for path, context, _ in sources:
        ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        (want,) = ref.run(None, {"crops": crops})
        diff = np.abs(got[f"p{context:g}x"] - want)
        print(f"{path.name} -> p{context:g}x: max |diff| {diff.max():.2e}, mean {diff.mean():.2e}")


def _source(text: str) -> tuple[Path, float, float]:
    path, context, weight = text.rsplit(":", 2)
    return Path(path), float(context), float(weight)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.phone.combine_wide")
    parser.add_argument("sources", nargs="+", type=_source, help="FILE:CONTEXT:WEIGHT")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    combine(args.sources, args.out)
    compare(args.sources, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
