#!/usr/bin/env python3
"""Golden files for switching heads off (`--ablate L.H`) and for the logit lens (`--lens`),
computed with HuggingFace transformers on the committed fixture tests/fixtures/tiny-gpt2
(a random GPT-2: 3 layers, 4 heads, n_embd 32, n_ctx 64, vocabulary 513).

CI never runs this script; it is committed so that anyone can regenerate the golden and see
how it was made. Nothing is fetched from the hub.

    /tmp/ref/bin/python3 tests/golden/hf_ablation.py

writes tests/golden/ablation.json:

"greedy": for each prompt and each set of heads switched off (none, one, two), the greedy
    continuation (12 new tokens, with the cache) and the gap between the two largest logits
    at every step. A head is switched off the way transformers 5 allows (it has no
    head_mask any more): its d_head ROWS of that block's attn.c_proj weight (a Conv1D,
    stored [n_embd, n_embd] = [in, out]) are zeroed, so the head's part of the merged heads
    contributes nothing; the bias stays. The Rust crate instead zeroes the head's columns
    of the merged heads before c_proj: the same product, computed independently.

"sweep": for one prompt, the greedy continuation with each single head switched off,
    for LEARN.md's experiment (which head changes the continuation most).

"lens": for one prompt, transformers' hidden states (output_hidden_states=True): one per
    layer's input, n_layer + 1 in all. Each is put through ln_f and the tied lm_head, except
    the last, which transformers has already put through ln_f. For every (layer, position):
    the top token's id and its probability (softmax in float64).
"""

import copy
import json
from pathlib import Path

import torch
import transformers
from transformers import GPT2LMHeadModel, GPT2TokenizerFast

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "tests" / "fixtures" / "tiny-gpt2"
OUT = REPO / "tests" / "golden" / "ablation.json"
EOT = 512
MAX_NEW_TOKENS = 12

PROMPTS = ["Hello", "The quick brown fox", "Once upon a time, there was"]
ABLATIONS = [[], [[1, 2]], [[0, 1], [2, 3]]]
SWEEP_PROMPT = "Once upon a time, there was"
LENS_PROMPT = "The quick brown fox"


@torch.no_grad()
def with_heads_off(model, heads):
    """A copy of `model` whose heads (layer, head) have their c_proj rows zeroed."""
    m = copy.deepcopy(model)
    d_head = m.config.n_embd // m.config.n_head
    for layer, head in heads:
        m.transformer.h[layer].attn.c_proj.weight[head * d_head:(head + 1) * d_head, :] = 0.0
    return m


@torch.no_grad()
def greedy(model, prompt_ids):
    input_ids = torch.tensor([prompt_ids])
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                         max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                         use_cache=True, pad_token_id=EOT)
    generated = out[0, len(prompt_ids):].tolist()
    gaps = []
    for step, token in enumerate(generated):
        last = model(input_ids=torch.tensor([prompt_ids + generated[:step]])).logits[0, -1]
        top2 = torch.topk(last, 2).values
        assert int(torch.argmax(last)) == token
        gaps.append(float(top2[0] - top2[1]))
    return generated, gaps


@torch.no_grad()
def lens(model, ids):
    out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    hidden = out.hidden_states  # n_layer + 1 tensors [1, n_seq, n_embd]
    rows = []
    for i, h in enumerate(hidden):
        normed = h[0] if i == len(hidden) - 1 else model.transformer.ln_f(h[0])
        logits = model.lm_head(normed).double()  # [n_seq, n_vocab]
        p = torch.softmax(logits, dim=-1)
        top = torch.topk(logits, 2)
        rows.append({
            "top": top.indices[:, 0].tolist(),
            "probability": p.max(dim=-1).values.tolist(),
            "top2_gap": (top.values[:, 0] - top.values[:, 1]).tolist(),
        })
    assert torch.equal(model.lm_head(hidden[-1][0]), out.logits[0])
    return rows


def main():
    tokenizer = GPT2TokenizerFast.from_pretrained(str(CHECKPOINT))
    model = GPT2LMHeadModel.from_pretrained(str(CHECKPOINT)).eval().to(torch.float32)
    cases = []
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt)
        for heads in ABLATIONS:
            generated, gaps = greedy(with_heads_off(model, heads), ids)
            cases.append({"prompt": prompt, "prompt_ids": ids, "heads_off": heads,
                          "generated": generated, "top2_gaps": gaps})
    sweep_ids = tokenizer.encode(SWEEP_PROMPT)
    sweep = []
    for layer in range(model.config.n_layer):
        for head in range(model.config.n_head):
            generated, gaps = greedy(with_heads_off(model, [[layer, head]]), sweep_ids)
            sweep.append({"heads_off": [[layer, head]], "generated": generated,
                          "top2_gaps": gaps})
    lens_ids = tokenizer.encode(LENS_PROMPT)
    golden = {
        "generated_by": f"torch {torch.__version__}, transformers {transformers.__version__}",
        "greedy": cases,
        "sweep": {"prompt": SWEEP_PROMPT, "prompt_ids": sweep_ids, "cases": sweep},
        "lens": {"prompt": LENS_PROMPT, "prompt_ids": lens_ids, "rows": lens(model, lens_ids)},
    }
    OUT.write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
