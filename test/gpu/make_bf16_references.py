#!/usr/bin/env python3
"""Makes tiny random bf16 Llama / Qwen2 / Qwen3 models and their transformers references, ON THE GPU MACHINE
(the CUDA engine is compared with transformers run on the same GPU). Used by test/gpu/engine-bf16.test.ts.

Shapes chosen to exercise the CUDA kernels' real paths: head_dim 64 and 128, 2 to 8 query heads per KV head,
llama3 RoPE, qwen2 q/k/v bias with tied embeddings, qwen3 per-head q/k RMSNorm.
For each model and prompt, transformers (bf16, eager attention, on CUDA) decodes greedily over its own KV
cache; expected.json holds the greedy ids and logits-bf16.bin the float32 copy of the bf16 logits that chose
each token ([prompts, steps, vocab], little-endian).

Usage: python3 test/gpu/make_bf16_references.py OUT_DIR
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

STEPS = 32
BASE = dict(vocab_size=1024, intermediate_size=768, num_hidden_layers=3, max_position_embeddings=4096,
            rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, initializer_range=0.08)
MODELS = {
    "llama-d64-g4": dict(model_type="llama", hidden_size=512, num_attention_heads=8, num_key_value_heads=2,
                         rope_theta=500000.0, tie_word_embeddings=False,
                         rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                           original_max_position_embeddings=256)),
    "qwen2-d128-g2-bias": dict(model_type="qwen2", hidden_size=512, num_attention_heads=4, num_key_value_heads=2,
                               rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False),
    "qwen3-d128-g8-qknorm": dict(model_type="qwen3", hidden_size=256, num_attention_heads=8, num_key_value_heads=1,
                                 head_dim=128, rope_theta=1000000.0, tie_word_embeddings=False,
                                 use_sliding_window=False),
}


def prompts(vocab):
    g = torch.Generator().manual_seed(7)
    return [[1] + torch.randint(3, vocab, (n - 1,), generator=g).tolist() for n in (5, 41, 300)]


@torch.no_grad()
def greedy(model, prompt):
    out = model(input_ids=torch.tensor([prompt], device="cuda"), use_cache=True)
    past, logits = out.past_key_values, out.logits[0, -1]
    ids, rows = [], []
    for _ in range(STEPS):
        rows.append(logits.float().cpu().numpy())
        nxt = int(torch.argmax(logits))
        ids.append(nxt)
        out = model(input_ids=torch.tensor([[nxt]], device="cuda"), past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[0, -1]
    return ids, np.stack(rows)


def make(root, name, fields):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    fields = dict(fields)
    model_type = fields.pop("model_type")
    config = AutoConfig.for_model(model_type, **{**BASE, **fields})
    torch.manual_seed(1234)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation="eager")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model = model.to(torch.bfloat16)
    model.save_pretrained(d, safe_serialization=True)
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="eager").to("cuda").eval()
    ps = prompts(config.vocab_size)
    runs = [greedy(m, p) for p in ps]
    logits = np.stack([r[1] for r in runs]).astype("<f4")
    logits.tofile(os.path.join(d, "logits-bf16.bin"))
    exp = dict(name=name, model_type=model_type, prompts=ps, steps=STEPS, greedy_ids=[r[0] for r in runs],
               logits_file="logits-bf16.bin", logits_shape=list(logits.shape), transformers=transformers.__version__,
               torch=torch.__version__, device=torch.cuda.get_device_name(), attention="eager", dtype="bfloat16",
               head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(exp, f)
    print(f"{name}: head_dim {exp['head_dim']} greedy[0][:8] {runs[0][0][:8]}")


if __name__ == "__main__":
    root = sys.argv[1]
    os.makedirs(root, exist_ok=True)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}")
    for name, fields in MODELS.items():
        make(root, name, fields)
