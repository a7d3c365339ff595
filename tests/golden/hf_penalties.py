"""Golden values for the penalties and the min-p / typical-p warpers, from transformers.

CI never runs this script; it is committed so that anyone can regenerate
tests/golden/penalties.json and see how it was made. Deterministic: fixed seeds,
fixed inputs, nothing fetched.

    /tmp/ref/bin/python3 tests/golden/hf_penalties.py

(torch 2.15 CPU, transformers 5.x, numpy; the versions are recorded in the JSON.)

What it writes: tests/golden/penalties.json, with

"processors": random float32 logits and random token histories (a prompt and
    generated tokens, drawn from a few ids so that repeats happen), and for
    each, transformers' own RepetitionPenaltyLogitsProcessor and
    NoRepeatNGramLogitsProcessor applied alone and in transformers' order,
    then presence/frequency (OpenAI's formula, which transformers does not
    have, in plain float64 numpy: logit - P * (count > 0) - F * count, the
    counts over the generated tokens only). -inf is written as null.

"warpers": random float32 logits, and transformers' TemperatureLogitsWarper,
    TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper and TypicalLogitsWarper
    (min_tokens_to_keep = 1) chained in generate()'s order, on float64 scores.
    A case is kept only if the same chain on float32 scores masks the same
    tokens: no token sits within float32 rounding of a cut-off, so the set is
    not a matter of the last bit. Every parameter is a short binary fraction,
    exact in float32.

"greedy": greedy generate() (do_sample=False) on tests/fixtures/tiny-gpt2 with
    repetition_penalty and/or no_repeat_ngram_size, with the gap between the
    two largest processed logits at every step (the step's logits recomputed
    by a full forward pass, processed by the same processors).
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import GPT2LMHeadModel, GPT2TokenizerFast
from transformers.generation.logits_process import (
    MinPLogitsWarper,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "tests/fixtures/tiny-gpt2"
OUT = REPO / "tests/golden/penalties.json"


def nulls(values):
    """-inf as null (JSON has no infinities); everything else as the float it is."""
    out = []
    for v in values:
        v = float(v)
        assert v == v and v != float("inf"), v
        out.append(None if v == float("-inf") else v)
    return out


# ---------------------------------------------------------------------------
# 1. Processors on random logits and histories
# ---------------------------------------------------------------------------
def presence_frequency(logits, generated, presence, frequency):
    out = logits.astype(np.float64).copy()
    counts = np.bincount(np.array(generated, dtype=np.int64), minlength=len(out)) if generated else np.zeros(len(out))
    out -= presence * (counts > 0) + frequency * counts
    return out


def processor_cases(rng):
    cases = []
    for case in range(40):
        n_vocab = int(rng.choice([7, 20, 50, 100]))
        n_distinct = min(n_vocab, int(rng.integers(2, 12)))
        pool = rng.choice(n_vocab, size=n_distinct, replace=False)
        prompt = [int(t) for t in rng.choice(pool, size=int(rng.integers(1, 15)))]
        generated = [int(t) for t in rng.choice(pool, size=int(rng.integers(0, 20)))]
        logits = (rng.standard_normal(n_vocab) * 3).astype(np.float32)
        # Some exact zeros and values of both signs on the seen ids.
        if case % 5 == 0:
            logits[pool[0]] = 0.0
        repetition = float(rng.choice([0.5, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0]))
        ngram = int(rng.choice([1, 2, 3, 4]))
        presence = float(rng.choice([0.0, 0.5, -0.25, 1.5]))
        frequency = float(rng.choice([0.0, 0.25, -0.5, 0.75]))

        input_ids = torch.tensor([prompt + generated])
        scores = torch.tensor(logits).unsqueeze(0)  # float32, as generate() sees it
        rep = RepetitionPenaltyLogitsProcessor(penalty=repetition)(input_ids, scores.clone())[0]
        ban = NoRepeatNGramLogitsProcessor(ngram)(input_ids, scores.clone())[0]
        both = NoRepeatNGramLogitsProcessor(ngram)(
            input_ids, RepetitionPenaltyLogitsProcessor(penalty=repetition)(input_ids, scores.clone()))[0]
        all_three = presence_frequency(both.numpy(), generated, presence, frequency)
        cases.append({
            "n_vocab": n_vocab,
            "prompt": prompt,
            "generated": generated,
            "logits": [float(x) for x in logits],
            "repetition_penalty": repetition,
            "no_repeat_ngram": ngram,
            "presence_penalty": presence,
            "frequency_penalty": frequency,
            "repetition_only": nulls(rep.tolist()),
            "ngram_only": nulls(ban.tolist()),
            "presence_frequency_only": nulls(presence_frequency(logits, generated, presence, frequency)),
            "all": nulls(all_three),
        })
    return cases


# ---------------------------------------------------------------------------
# 2. Warpers on random logits
# ---------------------------------------------------------------------------
def warp(scores, params):
    """generate()'s warper chain, in its order (transformers' _get_logits_processor)."""
    ids = torch.zeros((1, 1), dtype=torch.long)  # warpers do not look at the history
    chain = []
    if params["temperature"] != 1.0:
        chain.append(TemperatureLogitsWarper(params["temperature"]))
    if params["top_k"] is not None:
        chain.append(TopKLogitsWarper(top_k=params["top_k"], min_tokens_to_keep=1))
    if params["top_p"] is not None and params["top_p"] < 1.0:
        chain.append(TopPLogitsWarper(top_p=params["top_p"], min_tokens_to_keep=1))
    if params["min_p"] is not None:
        chain.append(MinPLogitsWarper(min_p=params["min_p"], min_tokens_to_keep=1))
    if params["typical_p"] is not None and params["typical_p"] < 1.0:
        chain.append(TypicalLogitsWarper(mass=params["typical_p"], min_tokens_to_keep=1))
    for warper in chain:
        scores = warper(ids, scores)
    return scores[0]


def warper_cases(rng):
    cases, dropped = [], 0
    settings = []
    for min_p in [None, 0.0625, 0.25, 0.5, 1.0]:
        for typical_p in [None, 0.25, 0.5, 0.875, 1.0]:
            if min_p is None and typical_p is None:
                continue
            settings.append((min_p, typical_p))
    while len(cases) < 96:
        min_p, typical_p = settings[len(cases) % len(settings)]
        n_vocab = int(rng.choice([2, 5, 16, 60, 120]))
        logits = (rng.standard_normal(n_vocab) * float(rng.choice([0.5, 2.0, 4.0]))).astype(np.float32)
        assert len(set(logits.tolist())) == n_vocab  # no ties (top-k keeps ties, ours the lower id)
        params = {
            "temperature": float(rng.choice([0.5, 0.75, 1.0, 1.5, 2.0])),
            "top_k": int(rng.choice([2, 5, 30])) if rng.random() < 0.3 else None,
            "top_p": float(rng.choice([0.5, 0.875, 0.9375])) if rng.random() < 0.3 else None,
            "min_p": min_p,
            "typical_p": typical_p,
        }
        wide = warp(torch.tensor(logits, dtype=torch.float64).unsqueeze(0), params)
        narrow = warp(torch.tensor(logits, dtype=torch.float32).unsqueeze(0), params)
        if not torch.equal(torch.isinf(wide), torch.isinf(narrow)):
            dropped += 1  # a token within float32 rounding of a cut-off
            continue
        cases.append({"logits": [float(x) for x in logits], **params, "warped": nulls(wide.tolist())})
    return cases, dropped


# ---------------------------------------------------------------------------
# 3. Greedy generation with penalties on the tiny checkpoint
# ---------------------------------------------------------------------------
PROMPTS = ["The dog", "Hello, my name is", "1, 2, 3,", "a a a a"]
SETTINGS = [
    {"repetition_penalty": 1.3, "no_repeat_ngram": None},
    {"repetition_penalty": 2.5, "no_repeat_ngram": None},
    {"repetition_penalty": 0.7, "no_repeat_ngram": None},
    {"repetition_penalty": 1.0, "no_repeat_ngram": 1},
    {"repetition_penalty": 1.0, "no_repeat_ngram": 2},
    {"repetition_penalty": 1.0, "no_repeat_ngram": 3},
    {"repetition_penalty": 1.5, "no_repeat_ngram": 2},
]
MAX_NEW_TOKENS = 30


def processors(setting):
    chain = []
    if setting["repetition_penalty"] != 1.0:
        chain.append(RepetitionPenaltyLogitsProcessor(penalty=setting["repetition_penalty"]))
    if setting["no_repeat_ngram"] is not None:
        chain.append(NoRepeatNGramLogitsProcessor(setting["no_repeat_ngram"]))
    return chain


@torch.no_grad()
def greedy_cases():
    tokenizer = GPT2TokenizerFast.from_pretrained(str(TINY))
    model = GPT2LMHeadModel.from_pretrained(str(TINY), dtype=torch.float32, attn_implementation="eager").eval()
    cases = []
    for prompt in PROMPTS:
        prompt_ids = tokenizer.encode(prompt)
        assert len(prompt_ids) + MAX_NEW_TOKENS <= model.config.n_positions
        for setting in SETTINGS:
            input_ids = torch.tensor([prompt_ids])
            kwargs = {"repetition_penalty": setting["repetition_penalty"]}
            if setting["no_repeat_ngram"] is not None:
                kwargs["no_repeat_ngram_size"] = setting["no_repeat_ngram"]
            out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                                 max_new_tokens=MAX_NEW_TOKENS, min_new_tokens=MAX_NEW_TOKENS,
                                 do_sample=False, use_cache=True, pad_token_id=512, **kwargs)
            generated = out[0, len(prompt_ids):].tolist()
            assert len(generated) == MAX_NEW_TOKENS
            assert 512 not in generated  # min_new_tokens bans <|endoftext|>; the Rust side never sees it
            gaps = []
            for step, token in enumerate(generated):
                ids = torch.tensor([prompt_ids + generated[:step]])
                scores = model(input_ids=ids, use_cache=False).logits[:, -1, :]
                for p in processors(setting):
                    scores = p(ids, scores)
                scores[0, 512] = float("-inf")  # what min_new_tokens does
                assert int(torch.argmax(scores[0])) == token, (prompt, setting, step)
                top2 = torch.topk(scores[0], 2).values
                gaps.append(float(top2[0] - top2[1]))
            cases.append({"prompt": prompt, "prompt_ids": prompt_ids, **setting,
                          "generated": generated, "top2_gaps": gaps})
    return cases


def main():
    torch.set_num_threads(1)
    rng = np.random.default_rng(2024_12)
    warpers, dropped = warper_cases(rng)
    golden = {
        "generated_by": f"tests/golden/hf_penalties.py (torch {torch.__version__}, "
                        f"transformers {transformers.__version__}, numpy {np.__version__})",
        "processors": processor_cases(rng),
        "warpers": warpers,
        "greedy": greedy_cases(),
    }
    OUT.write_text(json.dumps(golden) + "\n", encoding="utf-8")
    print(f"{len(golden['processors'])} processor cases, {len(warpers)} warper cases "
          f"({dropped} dropped at a float32 cut-off), {len(golden['greedy'])} greedy runs")
    for case in golden["greedy"]:
        print(f"  {case['prompt']!r:22} R={case['repetition_penalty']:<4} N={case['no_repeat_ngram']}: "
              f"{case['generated'][:12]}... min gap {min(case['top2_gaps']):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
