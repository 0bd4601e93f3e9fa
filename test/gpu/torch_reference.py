#!/usr/bin/env python3
"""The reference beside `kvserve bench` on the GPU machine, in the same run: transformers' own Llama with the
same shape (configs/llama-3-8b.json, random bf16 weights, its default attention and dynamic KV cache) timing
a decode step at several batch sizes over a 1024-token context, and the time of
reading the weights once at the measured HBM bandwidth (the floor of a batch-1 decode step).
Usage: python3 test/gpu/torch_reference.py configs/llama-3-8b.json > OUT/torch-reference.txt
"""
import json
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

cfg_path = sys.argv[1] if len(sys.argv) > 1 else "configs/llama-3-8b.json"
CTX = 1024
torch.manual_seed(0)
dev = "cuda"


def timed(fn, reps=10):
    for _ in range(3):
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


# HBM bandwidth: a 4 GiB device-to-device copy (bytes read + written).
a = torch.empty(2 << 30, dtype=torch.uint8, device=dev)
b = torch.empty_like(a)
ms = timed(lambda: b.copy_(a))
bw = 2 * a.numel() / (ms / 1e3)
del a, b
print(f"device {torch.cuda.get_device_name()}  torch {torch.__version__}")
print(f"HBM copy bandwidth: {bw / 1e12:.2f} TB/s")

with open(cfg_path) as f:
    raw = json.load(f)
config = LlamaConfig(**{k: v for k, v in raw.items() if k not in ("architectures", "torch_dtype", "dtype")})
with torch.device(dev):
    model = LlamaForCausalLM(config).to(torch.bfloat16).eval()
weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
print(f"weights: {weight_bytes / 2**30:.2f} GiB -> floor of a batch-1 decode step {weight_bytes / bw * 1e3:.2f} ms")

print(f"transformers {__import__('transformers').__version__} LlamaForCausalLM, bf16, sdpa, context {CTX}:")
print(f"{'batch':>6} {'decode step ms':>15} {'tok/s':>10}")
with torch.no_grad():
    for batch in (1, 8, 32, 64):
        ids = torch.randint(3, config.vocab_size, (batch, CTX), device=dev)
        out = model(input_ids=ids, use_cache=True)
        past = out.past_key_values
        nxt = torch.randint(3, config.vocab_size, (batch, 1), device=dev)

        def step():
            # Decode one token on a copy-free view of the cache: crop back after each step.
            o = model(input_ids=nxt, past_key_values=past, use_cache=True)
            past.crop(CTX)
            return o

        ms = timed(step)
        print(f"{batch:>6} {ms:>15.2f} {batch / ms * 1e3:>10.0f}")
        del past, out
        torch.cuda.empty_cache()
