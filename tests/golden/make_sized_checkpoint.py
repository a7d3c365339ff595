#!/usr/bin/env python3
"""A GPT-2 checkpoint folder of one of the four official shapes, with random weights.

For measuring loading (time and peak memory) and speed at real sizes without
downloading anything: the folder has the layout `--model DIR` reads (config.json,
model.safetensors, vocab.json, merges.txt), its weights drawn by transformers'
own initialisation (normal, std 0.02) from a fixed seed. No test needs it; the
speed and memory do not depend on the values.

How to run
----------
From the repository root, with torch and transformers installed (the
environment used: torch 2.15 CPU, transformers 5.24):

    /tmp/ref/bin/python tests/golden/make_sized_checkpoint.py 774M /tmp/gpt2-774m
    /tmp/ref/bin/python tests/golden/make_sized_checkpoint.py 1558M /tmp/gpt2-1558m
    /tmp/ref/bin/python tests/golden/make_sized_checkpoint.py 124M /tmp/gpt2-124m-bf16 --dtype bf16

then, say:

    cargo run --release --example bench -- --model /tmp/gpt2-774m --dtype q8 --tokens 4
    cargo run --release -- --model /tmp/gpt2-774m --dtype q8 -n 8 "Hello"

Sizes (weights in float32): 124M 0.5 GB, 355M 1.4 GB, 774M 3.1 GB, 1558M 6.2 GB;
making the checkpoint needs about that much memory again. The tokenizer files are
copied from tests/fixtures/gpt2-tokenizer/.
"""

import argparse
import shutil
import time
from pathlib import Path

# The shapes of OpenAI's four released GPT-2s (as HParams::gpt2_124m() ... in the crate).
SIZES = {
    "124M": dict(n_layer=12, n_head=12, n_embd=768),
    "355M": dict(n_layer=24, n_head=16, n_embd=1024),
    "774M": dict(n_layer=36, n_head=20, n_embd=1280),
    "1558M": dict(n_layer=48, n_head=25, n_embd=1600),
}

TOKENIZER = Path(__file__).resolve().parents[1] / "fixtures" / "gpt2-tokenizer"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("size", choices=SIZES)
    parser.add_argument("out", type=Path, help="the folder to write (created)")
    parser.add_argument("--dtype", choices=["f32", "f16", "bf16"], default="f32",
                        help="the dtype model.safetensors stores (default f32)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(args.seed)
    config = GPT2Config(n_positions=1024, vocab_size=50257, **SIZES[args.size])
    start = time.time()
    model = GPT2LMHeadModel(config).eval()
    dtype = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[args.dtype]
    model = model.to(dtype)
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    for name in ["vocab.json", "merges.txt"]:
        shutil.copy(TOKENIZER / name, args.out / name)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: GPT-2 {args.size}, {n_params:,} parameters in {args.dtype}, "
          f"{time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
