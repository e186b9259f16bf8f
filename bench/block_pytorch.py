"""PyTorch twin of bench/block.ts: the same U-Net-like block, timed the same way.

Usage: python3 bench/block_pytorch.py THREADS WARMUP ITERS  -> one JSON object on stdout.
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

threads, warmup, iters = (int(a) for a in sys.argv[1:4])
torch.set_num_threads(threads)
torch.manual_seed(0)


class Attention(nn.Module):
    def __init__(self, dim, ctx_dim, heads):
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx_dim, dim, bias=False)
        self.to_v = nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, ctx):
        b, n, d = x.shape
        h = self.heads
        q = self.to_q(x).view(b, n, h, d // h).transpose(1, 2)
        k = self.to_k(ctx).view(b, -1, h, d // h).transpose(1, 2)
        v = self.to_v(ctx).view(b, -1, h, d // h).transpose(1, 2)
        p = torch.softmax(q @ k.transpose(-2, -1) * (d // h) ** -0.5, dim=-1)
        return self.to_out((p @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, c=64, ctx_dim=768, heads=8):
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(32, c), nn.Conv2d(c, c, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(32, c), nn.Conv2d(c, c, 3, padding=1)
        self.ln1, self.attn1 = nn.LayerNorm(c), Attention(c, c, heads)
        self.ln2, self.attn2 = nn.LayerNorm(c), Attention(c, ctx_dim, heads)
        self.ln3, self.ff1, self.ff2 = nn.LayerNorm(c), nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x, ctx):
        h = self.conv1(F.silu(self.norm1(x)))
        x = x + self.conv2(F.silu(self.norm2(h)))
        b, c, hh, ww = x.shape
        t = x.view(b, c, hh * ww).transpose(1, 2)
        a = self.ln1(t)
        t = t + self.attn1(a, a)
        t = t + self.attn2(self.ln2(t), ctx)
        t = t + self.ff2(F.gelu(self.ff1(self.ln3(t))))
        return t.transpose(1, 2).reshape(b, c, hh, ww)


block = Block()
x = torch.randn(2, 64, 32, 32)
ctx = torch.randn(2, 77, 768)
opt = torch.optim.AdamW(block.parameters(), lr=1e-4)


def median_ms(fn):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return times[len(times) // 2]


def forward():
    with torch.no_grad():
        block(x, ctx)


def train_step():
    opt.zero_grad(set_to_none=True)
    block(x, ctx).square().mean().backward()
    opt.step()


a = torch.ones(1)
def small_op():
    for _ in range(1000):
        torch.add(a, a)


print(json.dumps({
    "forward_ms": median_ms(forward),
    "train_step_ms": median_ms(train_step),
    "small_op_us": median_ms(small_op),  # 1000 calls, so ms == us per call
    "torch": torch.__version__,
    "threads": torch.get_num_threads(),
}))
