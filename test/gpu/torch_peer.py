#!/usr/bin/env python3
"""The strongest peer this GPU machine can run, on kvserve's benchmark shape, in the same lease as kvserve's
numbers (docs/cuda.md): a compact gpt-fast-style Llama (configs/llama-3-8b.json, random bf16 weights) in
PyTorch with a static KV cache, the decode step under torch.compile(mode="reduce-overhead") (CUDA graphs),
prefill through flash SDPA; and the ceilings: device copy bandwidth and an 8192^3 bf16 GEMM.
Also torch SDPA decode attention (q [B, 32, 1, 128] over k/v [B, 8, 4096, 128], enable_gqa) as bandwidth.
Usage: python3 test/gpu/torch_peer.py [config.json] [--no-compile]  -> a table on stdout
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

cfg_path = next((a for a in sys.argv[1:] if not a.startswith("--")), "configs/llama-3-8b.json")
COMPILE = "--no-compile" not in sys.argv
dev = "cuda"
torch.manual_seed(0)


def timed(fn, reps=20, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e))
    ts.sort()
    return ts[len(ts) // 2]


a = torch.empty(2 << 30, dtype=torch.uint8, device=dev)
b = torch.empty_like(a)
copy_bw = 2 * a.numel() / (timed(lambda: b.copy_(a)) / 1e3)
del a, b
x = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
y = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
gemm = 2 * 8192**3 / (timed(lambda: x @ y, reps=10) / 1e3)
del x, y
print(f"device {torch.cuda.get_device_name()}  torch {torch.__version__}")
print(f"ceilings: copy bandwidth {copy_bw / 1e12:.2f} TB/s (read + write); bf16 GEMM 8192^3 {gemm / 1e12:.0f} TFLOP/s")

cfg = json.load(open(cfg_path))
H, I, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
Hq, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
D = cfg.get("head_dim", H // Hq)
V, eps, theta = cfg["vocab_size"], cfg.get("rms_norm_eps", 1e-5), cfg.get("rope_theta", 10000.0)
bf = torch.bfloat16


def w(*shape):
    return (torch.rand(*shape, device=dev, dtype=bf) - 0.5) * 0.1


layers = [dict(wqkv=w((Hq + 2 * Hkv) * D, H), wo=w(H, Hq * D), w13=w(2 * I, H), w2=w(H, I),
               n1=torch.ones(H, device=dev, dtype=bf), n2=torch.ones(H, device=dev, dtype=bf)) for _ in range(L)]
embed, lm_head, norm = w(V, H), w(V, H), torch.ones(H, device=dev, dtype=bf)
weight_bytes = sum(t.numel() * 2 for l in layers for t in l.values()) + (embed.numel() + lm_head.numel() + H) * 2
inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, device=dev, dtype=torch.float32) / D))
# The weights are plain tensors the compiled step reads as globals: marked static, CUDA graphs use them in
# place (unmarked, inductor treats them as ordinary inputs and copies them into its graph's memory on every
# replay, which is what made this peer's decode steps slow).
for t in [embed, lm_head, norm, inv_freq] + [t for l in layers for t in l.values()]:
    torch._dynamo.mark_static_address(t)


def rms(x, wt):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(bf) * wt


def rope(x, pos):  # x [B, T, h, D], pos [T]
    f = torch.outer(pos.float(), inv_freq)
    cos, sin = torch.cat([f, f], -1).cos().to(bf)[None, :, None], torch.cat([f, f], -1).sin().to(bf)[None, :, None]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def forward(tokens, pos, kc, vc, mask):
    """tokens [B, T], pos [T] positions, kc/vc per layer [B, Hkv, S, D] static caches, mask [T, S] bool."""
    B, T = tokens.shape
    h = embed[tokens]
    for li, l in enumerate(layers):
        qkv = rms(h, l["n1"]) @ l["wqkv"].t()
        q, k, v = qkv.split([Hq * D, Hkv * D, Hkv * D], -1)
        q, k = rope(q.view(B, T, Hq, D), pos), rope(k.view(B, T, Hkv, D), pos)
        kc[li].index_copy_(2, pos, k.transpose(1, 2))  # kc, vc: [L, B, Hkv, S, D] (or a list of [B, Hkv, S, D])
        vc[li].index_copy_(2, pos, v.view(B, T, Hkv, D).transpose(1, 2))
        o = F.scaled_dot_product_attention(q.transpose(1, 2), kc[li], vc[li], attn_mask=mask, enable_gqa=True)
        h = h + o.transpose(1, 2).reshape(B, T, Hq * D) @ l["wo"].t()
        gu = rms(h, l["n2"]) @ l["w13"].t()
        g, u = gu.chunk(2, -1)
        h = h + (F.silu(g) * u) @ l["w2"].t()
    return rms(h[:, -1], norm) @ lm_head.t()


rows = []
with torch.inference_mode():
    # Prefill (eager, flash SDPA with is_causal; no cache): TTFT-like timings at batch 1.
    for T in (128, 2048, 8192):
        toks = torch.randint(0, V, (1, T), device=dev)

        def prefill():
            h = embed[toks]
            pos = torch.arange(T, device=dev)
            for l in layers:
                qkv = rms(h, l["n1"]) @ l["wqkv"].t()
                q, k, v = qkv.split([Hq * D, Hkv * D, Hkv * D], -1)
                q, k = rope(q.view(1, T, Hq, D), pos), rope(k.view(1, T, Hkv, D), pos)
                o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.view(1, T, Hkv, D).transpose(1, 2),
                                                   is_causal=True, enable_gqa=True)
                h = h + o.transpose(1, 2).reshape(1, T, Hq * D) @ l["wo"].t()
                g, u = (rms(h, l["n2"]) @ l["w13"].t()).chunk(2, -1)
                h = h + (F.silu(g) * u) @ l["w2"].t()
            return rms(h[:, -1], norm) @ lm_head.t()

        ms = timed(prefill, reps=5, warm=2)
        rows.append(f"prefill batch 1 x {T} tokens (eager, flash SDPA)   {ms:8.2f} ms   {T / ms * 1e3:9.0f} tok/s")

    # Decode with a static cache of S = 1024 at context 512, compiled with CUDA graphs. As in gpt-fast, the
    # caches are buffers of a module (static inputs, so inductor keeps its CUDA graphs despite the in-place
    # cache writes; passed as plain arguments they made it skip the graphs).
    S, CTX = 1024, 512

    class StaticCache(torch.nn.Module):
        def __init__(self, B):
            super().__init__()
            self.register_buffer("kc", torch.zeros(L, B, Hkv, S, D, device=dev, dtype=bf), persistent=False)
            self.register_buffer("vc", torch.zeros(L, B, Hkv, S, D, device=dev, dtype=bf), persistent=False)
            self.register_buffer("mask", torch.tril(torch.ones(S, S, dtype=torch.bool, device=dev)), persistent=False)

        def forward(self, tok, pos):
            return forward(tok, pos, self.kc, self.vc, self.mask[pos])

    for B in (1, 64) if COMPILE else (1,):
      try:
        cache = StaticCache(B)
        cache(torch.randint(0, V, (B, CTX), device=dev), torch.arange(CTX, device=dev))  # fill the context

        def decode(tok, pos):
            return cache(tok, pos)

        step = torch.compile(decode, mode="reduce-overhead", fullgraph=True) if COMPILE else decode
        tok = torch.randint(0, V, (B, 1), device=dev)
        pos = torch.tensor([CTX], device=dev)
        t0 = time.time()
        step(tok, pos)
        torch.cuda.synchronize()
        compile_s = time.time() - t0
        ms = timed(lambda: step(tok, pos))
        rows.append(f"decode batch {B:3d}, context {CTX}, static cache, {'torch.compile reduce-overhead' if COMPILE else 'eager'}"
                    f" {ms:8.2f} ms   {B / ms * 1e3:9.0f} tok/s   (first call {compile_s:.0f} s)")
        del cache
        torch.cuda.empty_cache()
      except Exception as e:  # keep the other rows: a compile failure is reported, not fatal
        rows.append(f"decode batch {B}: failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")

    # SDPA decode attention bandwidth (flash / efficient kernels, enable_gqa).
    for B, ctx in ((1, 4096), (64, 4096), (256, 512)):
        q = torch.randn(B, Hq, 1, D, device=dev, dtype=bf)
        k = torch.randn(B, Hkv, ctx, D, device=dev, dtype=bf)
        v = torch.randn(B, Hkv, ctx, D, device=dev, dtype=bf)
        ms = timed(lambda: F.scaled_dot_product_attention(q, k, v, enable_gqa=True))
        kv = 2 * B * Hkv * ctx * D * 2
        rows.append(f"SDPA decode attention b{B} x {ctx}: {ms * 1e3:8.1f} us   {kv / (ms * 1e-3) / 1e12:5.2f} TB/s"
                    f" ({100 * kv / (ms * 1e-3) / copy_bw:.0f}% of copy)")

print(f"weights {weight_bytes / 2**30:.2f} GiB -> batch-1 decode floor {weight_bytes / copy_bw * 1e3:.2f} ms at copy bandwidth;"
      f" GEMM-FLOP floor of a 2048-token prefill {2 * 2048 * (weight_bytes / 2 - embed.numel()) / gemm * 1e3:.1f} ms")
for r in rows:
    print(r)
