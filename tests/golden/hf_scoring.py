#!/usr/bin/env python3
"""Golden scores for `src/score.rs` and `--perplexity`, computed with HuggingFace transformers.

CI never runs this script; it is committed so that anyone can regenerate the golden and see
how it was made. Nothing is fetched from the hub: the model is the committed checkpoint
fixture tests/fixtures/tiny-gpt2 (a random 3-layer GPT-2, n_ctx 64, vocabulary 513).

    /tmp/ref/bin/python3 tests/golden/hf_scoring.py

writes tests/golden/scoring.json and the text files it scores, tests/golden/scoring-*.txt.

The windows follow the rule documented in src/score.rs, written here independently of
the Rust code as HuggingFace's perplexity guide writes its loop: windows of n_ctx tokens
start at 0, stride, 2*stride, ...; each token from the second is scored once, in the first
window in which it is among the new positions (after the previous window's end), with that
window's tokens before it as context (see windows_scores for stride == n_ctx). The log-probabilities are
torch.log_softmax of transformers' float32 logits, in float64.
"""

import json
from pathlib import Path

import torch
import transformers
from transformers import GPT2LMHeadModel, GPT2TokenizerFast

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
CHECKPOINT = REPO / "tests" / "fixtures" / "tiny-gpt2"
TOP_N = 3

# Texts shorter and longer than the context (64 tokens); the long ones are the
# crate's own prose, so there is no licence to track.
TEXTS = {
    "short": "Hello, world. The dog ran.",
    "medium": (
        "A language model gives, at every position, a probability to every possible next "
        "token. Scoring a text reads off the probability of the token that comes next."
    ),
    "long": (
        "Perplexity is the exponential of the mean negative log-likelihood per token. "
        "A model that spreads its belief evenly over P tokens has perplexity P. "
        "Because a model can only look at n_ctx tokens at once, a long text is scored in "
        "windows, and the stride between windows decides how much context each token gets. "
        "With a small stride every token sees almost a whole window before it, and the "
        "perplexity is lower; with a stride equal to the context, the first tokens of every "
        "window are predicted from almost nothing.\n\nThat is one reason why published "
        "numbers disagree: the same model and the same text give different perplexities "
        "under different strides, and more again when the loss is averaged per word instead "
        "of per token."
    ),
}
STRIDES = [64, 32, 17]


def windows_scores(model, ids, n_ctx, stride, top_n):
    """Per-token (position, token, logprob, top), HuggingFace's sliding-window recipe:
    the window at `begin` holds ids[begin:begin + n_ctx] and scores its new positions,
    those after the previous window's end, given its tokens before them. With
    stride == n_ctx a window's first token has no context inside it, so the window
    before also scores the token after its last position (HF's recipe drops it)."""
    n = len(ids)
    scored = []
    windows = 0
    prev_end = 1  # the first token is only context
    for begin in range(0, n, stride):
        end = min(begin + n_ctx, n)
        last = end if stride < n_ctx else min(begin + n_ctx + 1, n)
        inputs = ids[begin:end]
        with torch.no_grad():
            logits = model(torch.tensor([inputs])).logits[0]
        logprobs = torch.log_softmax(logits.double(), dim=-1)
        windows += 1
        for target in range(prev_end, last):
            row = logprobs[target - 1 - begin]  # the prediction made at the position before
            values, indices = torch.sort(row, descending=True, stable=True)
            top = [[int(i), float(v)] for i, v in zip(indices[:top_n], values[:top_n])]
            scored.append([target, ids[target], float(row[ids[target]]), top])
        prev_end = last
        if last == n:
            break
    assert [t[0] for t in scored] == list(range(1, n)), "every token from the second, once"
    nll = -sum(t[2] for t in scored) / len(scored)
    return scored, nll, windows


def main():
    model = GPT2LMHeadModel.from_pretrained(CHECKPOINT, torch_dtype=torch.float32).eval()
    tokenizer = GPT2TokenizerFast.from_pretrained(CHECKPOINT)
    n_ctx = model.config.n_positions
    cases = []
    for name, text in TEXTS.items():
        path = GOLDEN / f"scoring-{name}.txt"
        path.write_text(text, encoding="utf-8", newline="")
        ids = tokenizer(text)["input_ids"]  # exactly the text: no <|endoftext|> added
        for stride in STRIDES:
            tokens, nll, windows = windows_scores(model, ids, n_ctx, stride, TOP_N)
            cases.append({
                "text": name, "file": path.name, "n_tokens": len(ids), "ids": ids,
                "stride": stride, "windows": windows, "nll": nll,
                "perplexity": float(torch.tensor(nll, dtype=torch.float64).exp()),
                "tokens": tokens,
            })
            print(f"{name:6} {len(ids):4} tokens, stride {stride:2}: {windows} windows, "
                  f"perplexity {cases[-1]['perplexity']:.4f}")
    golden = {
        "generated_by": {"torch": torch.__version__, "transformers": transformers.__version__},
        "checkpoint": "tests/fixtures/tiny-gpt2",
        "n_ctx": n_ctx,
        "top_n": TOP_N,
        "token_format": "[position, token, logprob, [[id, logprob] x top_n]]",
        "cases": cases,
    }
    (GOLDEN / "scoring.json").write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
