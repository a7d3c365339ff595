#!/usr/bin/env python3
"""Reference CPU benchmark: HuggingFace transformers GPT-2 (124M shapes).

What it measures
----------------
Throughput of transformers' GPT2LMHeadModel on the CPU, in float32, eval mode,
under torch.inference_mode(), so it can be compared with the gpt2-edu Rust
benchmark. It uses the same key names as the Rust benchmark where they apply:

  prefill_tok_s        one forward over a 128-token prompt with use_cache=True;
                       reported as 128 / time. logits_to_keep=1 is passed so HF
                       computes logits for the last position only (by default
                       HF projects all 128 positions onto the 50257-word vocab).
  decode_tok_s_ctx128  cached decode: after a 127-token prefill (untimed), time
                       N single-token forwards feeding past_key_values;
                       reported as N / time (context grows 128 .. 127+N).
  decode_tok_s_ctx512  same after a 511-token prefill.
  full_tok_s_ctx128    no cache: one full forward over 128 tokens per generated
                       token (use_cache=False, logits_to_keep=1); steps / time.
  full_tok_s_ctx512    same over 512 tokens.

Every measurement is preceded by one untimed warm-up, timed with
time.perf_counter, and the median of a few repetitions is reported. Token ids
are random (fixed seed); with the default model the weights are random too
(GPT2Config() = GPT-2 124M shapes: 12 layers, 12 heads, n_embd 768,
n_ctx 1024, vocab 50257), which does not change the amount of work.

Output: a small human-readable table, then ONE machine-readable line of
key=value pairs (including threads=, torch=, transformers=).

How to run (from the crate root)
--------------------------------
  /tmp/ref/bin/python3 examples/bench_transformers.py [--threads N] [--tokens N] [--model DIR]

  --threads N  torch.set_num_threads(N) (default 2)
  --tokens N   decode steps per repetition for the decode_* keys (default 32)
  --dtype D    float32 (default) or bfloat16: torch's own bf16 kernels, activations
               in bf16 too (gpt2-edu's bf16 keeps activations in f32)
  --model DIR  load a local model folder with GPT2LMHeadModel.from_pretrained(DIR)
               instead of building random weights (local paths only; this
               script never downloads anything)

CI never runs this script; it needs a Python environment with torch and
transformers and is for manual comparison only.
"""

import argparse
import os
import statistics
import sys
import time

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=32, help="decode steps per repetition")
    p.add_argument("--model", type=str, default=None, help="local model directory")
    p.add_argument("--reps", type=int, default=3, help="repetitions (median is reported)")
    p.add_argument("--full-steps", type=int, default=3, help="steps per repetition for full_* keys")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                   help="the weights' and activations' dtype (torch's own bf16 kernels)")
    return p.parse_args()


def build_model(args):
    if args.model:
        if not os.path.isdir(args.model):
            sys.exit(f"--model must be a local directory: {args.model!r}")
        model = GPT2LMHeadModel.from_pretrained(args.model, local_files_only=True,
                                                dtype=getattr(torch, args.dtype))
    else:
        torch.manual_seed(0)
        cfg = GPT2Config(n_layer=12, n_head=12, n_embd=768, n_positions=1024,
                         vocab_size=50257)
        model = GPT2LMHeadModel(cfg)
    return model.to(getattr(torch, args.dtype)).eval()


def median_time(fn, reps):
    """One untimed warm-up, then `reps` timed calls; returns the median seconds.

    fn(timed) does any untimed setup itself and returns the elapsed seconds
    of the timed part.
    """
    fn()
    return statistics.median(fn() for _ in range(reps))


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    model = build_model(args)
    cfg = model.config
    gen = torch.Generator().manual_seed(1234)
    ids = torch.randint(0, cfg.vocab_size, (1, 512 + args.tokens + 1), generator=gen)

    def prefill():
        prompt = ids[:, :128]
        t0 = time.perf_counter()
        out = model(prompt, use_cache=True, logits_to_keep=1)
        dt = time.perf_counter() - t0
        assert out.logits.shape[1] == 1
        return dt

    def decode(ctx):
        def run():
            out = model(ids[:, :ctx - 1], use_cache=True, logits_to_keep=1)  # untimed prefill
            past = out.past_key_values
            nxt = out.logits[:, -1:].argmax(-1)
            t0 = time.perf_counter()
            for _ in range(args.tokens):
                out = model(nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1:].argmax(-1)
            return time.perf_counter() - t0
        return run

    def full(ctx):
        def run():
            window = ids[:, :ctx].clone()
            t0 = time.perf_counter()
            for _ in range(args.full_steps):
                out = model(window, use_cache=False, logits_to_keep=1)
                nxt = out.logits[:, -1:].argmax(-1)
                window = torch.cat([window[:, 1:], nxt], dim=1)  # slide, keep ctx tokens
            return time.perf_counter() - t0
        return run

    results = {}
    with torch.inference_mode():
        t = median_time(prefill, args.reps)
        results["prefill_tok_s"] = (128 / t, f"128 tok prompt, {t * 1e3:.1f} ms")
        for ctx in (128, 512):
            t = median_time(decode(ctx), args.reps)
            results[f"decode_tok_s_ctx{ctx}"] = (
                args.tokens / t,
                f"{args.tokens} steps after {ctx - 1}-tok prefill, {t / args.tokens * 1e3:.2f} ms/tok")
        for ctx in (128, 512):
            t = median_time(full(ctx), args.reps)
            results[f"full_tok_s_ctx{ctx}"] = (
                args.full_steps / t,
                f"{args.full_steps} x {ctx}-tok forward, {t / args.full_steps * 1e3:.1f} ms/tok")

    src = args.model if args.model else "random weights (GPT2Config 124M shapes)"
    print(f"transformers GPT-2 CPU benchmark: {src}")
    print(f"layers={cfg.n_layer} heads={cfg.n_head} n_embd={cfg.n_embd} n_ctx={cfg.n_positions} "
          f"vocab={cfg.vocab_size} dtype={args.dtype} attn={model.config._attn_implementation} "
          f"threads={args.threads} reps={args.reps} (median)")
    print(f"{'metric':<22}{'tok/s':>10}  detail")
    for k, (v, detail) in results.items():
        print(f"{k:<22}{v:>10.2f}  {detail}")
    kv = [f"{k}={v:.2f}" for k, (v, _) in results.items()]
    kv += [f"dtype={args.dtype}", f"threads={args.threads}", f"torch={torch.__version__}",
           f"transformers={transformers.__version__}"]
    print(" ".join(kv))


if __name__ == "__main__":
    main()
