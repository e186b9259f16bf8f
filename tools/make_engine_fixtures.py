"""Reference values for the engine's operator tests, computed by PyTorch.

Run with a Python that has torch (Debian: /usr/bin/python3 with python3-torch):
    /usr/bin/python3 tools/make_engine_fixtures.py
Writes test/fixtures/engine/ops.json. Inputs are drawn here and stored with the outputs, so the
TypeScript test feeds the same values through p3s's wrappers and compares.
"""
import json
import math

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
cases = []


def t(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def enc(x):
    x = x.detach()
    return {"shape": list(x.shape), "data": [float(v) for v in x.reshape(-1).tolist()]}


def case(name, inputs, output, **params):
    outs = output if isinstance(output, (list, tuple)) else [output]
    cases.append({"name": name, "inputs": [enc(i) for i in inputs], "outputs": [enc(o) for o in outs], "params": params})


a, b = t(2, 3, 4), t(3, 1)
case("add_broadcast", [a, b], a + b)
case("sub_alpha", [a, b], torch.sub(a, b, alpha=0.5))
case("mul_broadcast", [a, b], a * b)
case("div_broadcast", [a, b], a / b)
x, y = t(2, 3, 4), t(2, 4, 5)
case("matmul", [x, y], x @ y)
case("bmm", [x, y], torch.bmm(x, y))
c = t(2, 3, 5)
case("baddbmm", [c, x, y], torch.baddbmm(c, x, y, beta=0.5, alpha=2.0), beta=0.5, alpha=2.0)
img, w, bias = t(2, 4, 7, 6), t(5, 4, 3, 3), t(5)
case("conv2d_s2_p1", [img, w, bias], F.conv2d(img, w, bias, stride=2, padding=1), stride=2, padding=1)
w1 = t(3, 4, 1, 1)
case("conv2d_1x1", [img, w1], F.conv2d(img, w1))
gw, gb = t(4), t(4)
case("group_norm", [img, gw, gb], F.group_norm(img, 2, gw, gb, eps=1e-6), groups=2, eps=1e-6)
lx, lw, lb = t(2, 5, 8), t(8), t(8)
case("layer_norm", [lx, lw, lb], F.layer_norm(lx, [8], lw, lb, eps=1e-5), eps=1e-5)
W, B = t(6, 8), t(6)
case("linear", [lx, W, B], F.linear(lx, W, B))
case("silu", [a], F.silu(a))
case("gelu", [a], F.gelu(a))
case("gelu_tanh", [a], F.gelu(a, approximate="tanh"))
case("quick_gelu", [a], a * torch.sigmoid(1.702 * a))
case("softmax", [a], F.softmax(a, dim=-1), dim=-1)
case("cat", [a, a * 2], torch.cat([a, a * 2], dim=1), dim=1)
case("stack", [a, a * 2], torch.stack([a, a * 2], dim=0), dim=0)
case("chunk", [a], list(torch.chunk(a, 2, dim=2)), chunks=2, dim=2)
case("split_sizes", [a], list(torch.split(a, [1, 3], dim=2)), sizes=[1, 3], dim=2)
case("permute", [a], a.permute(2, 0, 1), dims=[2, 0, 1])
case("transpose", [a], a.transpose(0, 2))
case("slice", [a], a[:, 1:3, ::2])
case("select", [a], a[:, 2])
small = t(1, 2, 3, 4)
case("interp_nearest", [small], F.interpolate(small, size=(6, 8), mode="nearest"))
case("interp_bilinear", [small], F.interpolate(small, size=(5, 7), mode="bilinear", align_corners=False))
case("interp_bicubic", [small], F.interpolate(small, size=(5, 7), mode="bicubic", align_corners=False))
case("interp_scale2", [small], F.interpolate(small, scale_factor=2.0, mode="nearest"))
case("avg_pool2d", [img], F.avg_pool2d(img, 2, 2))
case("sum_dim", [a], a.sum(dim=1, keepdim=True))
case("mean_dims", [a], a.mean(dim=[0, 2]))
case("var_unbiased", [a], a.var(dim=2))
case("var_biased", [a], a.var(dim=2, unbiased=False))
cond = (a > 0).to(torch.float64)
case("where", [cond, a, b.expand(2, 3, 4)], torch.where(a > 0, a, b.expand(2, 3, 4)))
case("clamp", [a], a.clamp(-0.5, 0.7))
emb = t(10, 4)
ids = torch.tensor([[1, 3, 9], [0, 0, 2]])
case("embedding", [emb, ids.to(torch.float64)], F.embedding(ids, emb))
q, k, v = t(2, 3, 5, 8), t(2, 3, 7, 8), t(2, 3, 7, 8)
probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)
case("attention", [q, k, v], [probs @ v, probs])
g = torch.Generator().manual_seed(7)
cases.append({"name": "randn_generator_seed7", "outputs": [enc(torch.randn(2, 5, generator=g))]})
g = torch.Generator().manual_seed(7)
cases.append({"name": "rand_generator_seed7", "outputs": [enc(torch.rand(6, generator=g))]})

with open("test/fixtures/engine/ops.json", "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f)
print(f"wrote {len(cases)} cases")
