#!/usr/bin/env python3
"""Trains the fixture tests/fixtures/trained-gpt2: a small GPT-2 with GPT-2's real vocabulary,
trained with PyTorch on CPU on the King James Bible, so that perplexity, generation and
quantization have something to mean. Then writes its golden, tests/golden/trained_gpt2.json.

CI never runs this script; it is committed so that anyone can regenerate the fixture and see
how it was made. Nothing is fetched from the hub. The text comes from Debian's public-domain
King James Bible (the `bible-kjv-text` and `bible-kjv` packages):

    apt-get install -y bible-kjv-text
    /tmp/ref/bin/python3 tests/golden/train_fixture.py            # trains, saves, scores
    /tmp/ref/bin/python3 tests/golden/train_fixture.py --golden   # only rescores the saved fixture

The text is every chapter of the Bible as `bible -l0` prints it, verse numbers removed: a
chapter is its heading ("Genesis 1") then one verse per line, chapters separated by a blank
line. The book of Ruth (4 chapters, about 13 KB) is held out: it is never trained on, and is
saved as the fixture's heldout.txt.

The model is trained in float32 and saved in BF16 (half the bytes; the embedding of 50,257
tokens is nearly all of them). The golden is computed from the saved BF16 file, loaded back
into float32, the way gpt2-edu loads it; the held-out perplexity follows the window rule of
src/score.rs and tests/golden/hf_scoring.py (HuggingFace's sliding-window recipe) at the
default stride n_ctx / 2.
"""

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_scoring import windows_scores  # noqa: E402  the same window rule as the scoring golden

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

REPO = Path(__file__).resolve().parents[2]
TOKENIZER = REPO / "tests" / "fixtures" / "gpt2-tokenizer"
FIXTURE = REPO / "tests" / "fixtures" / "trained-gpt2"
GOLDEN = REPO / "tests" / "golden" / "trained_gpt2.json"

SEED = 1611
N_EMBD, N_LAYER, N_HEAD, N_CTX = 96, 4, 4, 128
BATCH = 16  # sequences of N_CTX tokens per step
STEPS = 700
LR, WARMUP, WEIGHT_DECAY = 3e-3, 100, 0.1
THREADS = 2
HELD_OUT_BOOK = "Ruth"
GREEDY_PROMPT, GREEDY_TOKENS = "And God said", 30
REPETITION_PENALTY = 1.3  # the README's example: greedy alone loops ("I will I will ...")


def bible_text():
    """(training text, held-out text): every chapter, verse numbers removed."""
    raw = subprocess.run(["bible", "-l0", "gen1:1-rev22:21"], check=True, capture_output=True,
                         text=True).stdout
    chapters, current = [], None
    for line in raw.splitlines():
        verse = re.fullmatch(r"\s+\d+ (.*)", line)
        if verse:
            current[1].append(verse.group(1).strip())
        elif line.strip():
            current = (line.strip(), [])
            chapters.append(current)
    assert len(chapters) == 1189, len(chapters)
    text = lambda chs: "".join(f"{h}\n" + "".join(v + "\n" for v in vs) + "\n" for h, vs in chs)
    held = [c for c in chapters if c[0].rsplit(" ", 1)[0] == HELD_OUT_BOOK]
    train = [c for c in chapters if c[0].rsplit(" ", 1)[0] != HELD_OUT_BOOK]
    assert len(held) == 4
    return text(train), text(held)


def train(tokenizer, train_text, steps):
    torch.manual_seed(SEED)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=N_CTX, n_embd=N_EMBD,
                        n_layer=N_LAYER, n_head=N_HEAD, resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, bos_token_id=50256, eos_token_id=50256)
    model = GPT2LMHeadModel(config)
    ids = torch.tensor(tokenizer(train_text)["input_ids"], dtype=torch.long)
    print(f"training text: {len(train_text)} characters, {len(ids)} tokens; "
          f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=LR, betas=(0.9, 0.95))
    # Linear warm-up, then a cosine from LR down to LR / 10.
    schedule = lambda step: min(1.0, (step + 1) / WARMUP) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / STEPS)))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    start, losses = time.time(), []
    for step in range(steps):
        starts = torch.randint(0, len(ids) - N_CTX - 1, (BATCH,), generator=generator)
        batch = torch.stack([ids[s:s + N_CTX + 1] for s in starts.tolist()])
        loss = model(batch[:, :-1], labels=batch[:, :-1].clone()).loss  # HF shifts the labels
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:5} loss {loss.item():.4f} "
                  f"({time.time() - start:.0f} s)", flush=True)
    elapsed = time.time() - start
    final = sum(losses[-50:]) / len(losses[-50:])
    return model, {"seconds": round(elapsed), "final_loss_last_50_steps": round(final, 4),
                   "tokens_seen": steps * BATCH * N_CTX, "training_tokens": len(ids)}


def save(model, tokenizer):
    FIXTURE.mkdir(parents=True, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(FIXTURE, safe_serialization=True)
    for name in ["generation_config.json"]:
        (FIXTURE / name).unlink(missing_ok=True)
    for name in ["vocab.json", "merges.txt"]:
        shutil.copy(TOKENIZER / name, FIXTURE / name)


def golden(heldout_text, training):
    model = GPT2LMHeadModel.from_pretrained(FIXTURE, torch_dtype=torch.float32).eval()
    tokenizer = GPT2TokenizerFast.from_pretrained(FIXTURE)
    n_ctx = model.config.n_positions
    ids = tokenizer(heldout_text)["input_ids"]
    stride = n_ctx // 2
    _, nll, windows = windows_scores(model, ids, n_ctx, stride, 1)
    perplexity = math.exp(nll)
    prompt = tokenizer(GREEDY_PROMPT)["input_ids"]
    def greedy(**penalty):
        with torch.no_grad():
            out = model.generate(torch.tensor([prompt]), max_new_tokens=GREEDY_TOKENS,
                                 do_sample=False, pad_token_id=50256, **penalty)[0].tolist()
        return {"prompt": GREEDY_PROMPT, "n_tokens": GREEDY_TOKENS, **penalty, "ids": out,
                "text": tokenizer.decode(out)}

    plain, penalised = greedy(), greedy(repetition_penalty=REPETITION_PENALTY)
    print(f"held-out: {len(ids)} tokens, stride {stride}, {windows} windows: "
          f"nll {nll:.6f}, perplexity {perplexity:.4f}")
    print(f"greedy: {plain['text']!r}")
    print(f"greedy, repetition penalty {REPETITION_PENALTY}: {penalised['text']!r}")
    result = {
        "generated_by": {"torch": torch.__version__, "transformers": transformers.__version__},
        "checkpoint": "tests/fixtures/trained-gpt2",
        "heldout": "tests/fixtures/trained-gpt2/heldout.txt",
        "n_tokens": len(ids), "stride": stride, "windows": windows,
        "nll": nll, "perplexity": perplexity,
        "greedy": plain,
        "greedy_repetition_penalty": penalised,
    }
    if training is None and GOLDEN.exists():
        result["training"] = json.loads(GOLDEN.read_text())["training"]
    else:
        result["training"] = training
    GOLDEN.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--golden", action="store_true", help="only rescore the saved fixture")
    parser.add_argument("--steps", type=int, default=STEPS, help="fewer, to time a trial run")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    train_text, heldout_text = bible_text()
    training = None
    if not args.golden:
        tokenizer = GPT2TokenizerFast.from_pretrained(TOKENIZER)
        model, training = train(tokenizer, train_text, args.steps)
        training.update({"seed": SEED, "steps": args.steps, "batch": BATCH, "lr": LR,
                         "warmup": WARMUP, "weight_decay": WEIGHT_DECAY, "threads": THREADS})
        print(training)
        save(model, tokenizer)
        (FIXTURE / "heldout.txt").write_text(heldout_text, encoding="utf-8", newline="")
    golden(heldout_text, training)


if __name__ == "__main__":
    main()
