#!/usr/bin/env python3
"""Per layer, the abs-max of the K (after RoPE) and V that transformers' own KV cache holds for each sample,
ON THE GPU MACHINE: the independent reference of the fp8 KV cache's calibration (test/gpu/engine-kv-calibration.test.ts).
Each sample (token ids, BOS included) is one forward pass of the model in bf16 with eager attention on CUDA, as
make_bf16_references.py runs it; past_key_values then holds every layer's keys after RoPE and values.

Usage: python3 test/gpu/kv_absmax_reference.py MODEL_DIR SAMPLES_JSON   (SAMPLES_JSON: [[ids], ...])
Prints {"k": [per layer], "v": [per layer], "transformers": version} on stdout.
"""
import json
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM


def layer_kv(cache, layer):
    if hasattr(cache, "layers"):  # transformers >= 4.56: a list of per-layer caches
        return cache.layers[layer].keys, cache.layers[layer].values
    return cache.key_cache[layer], cache.value_cache[layer]


@torch.no_grad()
def main():
    model_dir, samples_path = sys.argv[1], sys.argv[2]
    with open(samples_path) as f:
        samples = json.load(f)
    m = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, attn_implementation="eager").to("cuda").eval()
    n = m.config.num_hidden_layers
    k_max, v_max = [0.0] * n, [0.0] * n
    for ids in samples:
        out = m(input_ids=torch.tensor([ids], device="cuda"), use_cache=True)
        for layer in range(n):
            k, v = layer_kv(out.past_key_values, layer)
            k_max[layer] = max(k_max[layer], k.abs().max().float().item())
            v_max[layer] = max(v_max[layer], v.abs().max().float().item())
    print(json.dumps({"k": k_max, "v": v_max, "transformers": transformers.__version__}))


if __name__ == "__main__":
    main()
