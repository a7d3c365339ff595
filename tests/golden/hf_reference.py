#!/usr/bin/env python3
"""Golden fixtures for the GPT-2 crate, produced with HuggingFace transformers.

CI never runs this script. It is committed so that anyone can regenerate the
files below and see exactly how they were made. Everything is built locally
(nothing is fetched from the HuggingFace hub) and the output is deterministic
(fixed seeds, fixed inputs).

How to run
----------
From the repository root:

    /tmp/ref/bin/python3 tests/golden/hf_reference.py

The environment used was a virtualenv with torch 2.15 (CPU), transformers 5.23,
safetensors and numpy. The exact torch/transformers versions are recorded in
`tests/golden/tiny_gpt2.json` under "generated_by". The real GPT-2 tokenizer
files are read from /work/shared/data/gpt2-tokenizer/ (override with the
environment variable GPT2_TOKENIZER_DIR).

What it writes (paths relative to the repository root)
------------------------------------------------------
tests/fixtures/gpt2-tokenizer/{vocab.json,merges.txt,SOURCE.md}
    Byte-for-byte copies of OpenAI's GPT-2 tokenizer files (50257 tokens,
    50000 merges).

tests/fixtures/tiny-gpt2/          float32, written by save_pretrained
tests/fixtures/tiny-gpt2-f16/      the same weights cast to float16
tests/fixtures/tiny-gpt2-bf16/     the same weights cast to bfloat16
tests/fixtures/tiny-gpt2-legacy/   float32, OpenAI-style tensor names (no
                                   "transformer." prefix, old attn.bias /
                                   attn.masked_bias buffers, explicit
                                   lm_head.weight) and an old-style config.json
                                   using n_ctx.
    Each folder holds config.json, model.safetensors and a truncated GPT-2
    tokenizer (vocab.json: ids 0..511 of GPT-2 plus <|endoftext|> = 512;
    merges.txt: the first 256 merges). The model is a random 3-layer GPT-2
    with vocab 513, 64 positions, width 32 and 4 heads.

tests/golden/tiny_gpt2.json
    For each of the four checkpoints: full-sequence logits for a fixed list of
    24 token ids, and greedy generations (12 new tokens) for six prompts, with
    the gap between the two largest logits at every generated step. The
    reference model is always float32, holding exactly the weights stored in
    the file (half-precision weights are upcast to float32).

tests/golden/tokenizer_corpus.json
    A list of {"text", "ids"} pairs: tricky strings encoded with
    GPT2TokenizerFast built on the real GPT-2 files.
"""

import copy
import hashlib
import json
import os
import shutil
import sys
import unicodedata
from pathlib import Path

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast
from transformers.pytorch_utils import Conv1D

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
FIXTURES = REPO / "tests" / "fixtures"
SOURCE_TOKENIZER = Path(os.environ.get("GPT2_TOKENIZER_DIR", "/work/shared/data/gpt2-tokenizer"))
REAL_TOKENIZER = FIXTURES / "gpt2-tokenizer"

SEED = 1234
EOT = "<|endoftext|>"
TINY_VOCAB = 513          # 512 byte-level/merged tokens + <|endoftext|>
TINY_MERGES = 256         # merges 0..255 create exactly the tokens 256..511
TINY_EOT_ID = 512
N_CTX = 64

VARIANTS = {              # name -> (folder, dtype stored in model.safetensors)
    "f32": ("tiny-gpt2", torch.float32),
    "f16": ("tiny-gpt2-f16", torch.float16),
    "bf16": ("tiny-gpt2-bf16", torch.bfloat16),
    "legacy": ("tiny-gpt2-legacy", torch.float32),
}

# 24 fixed token ids for the logits golden: single bytes (0..255), merged
# tokens (256..511) and <|endoftext|> (512) once, in the middle.
LOGITS_TOKENS = [
    40, 101, 257, 9, 351, 511, 0, 198, 220, 290, 15, 262,
    TINY_EOT_ID, 32, 464, 256, 13, 318, 78, 471, 255, 383, 11, 300,
]
assert len(LOGITS_TOKENS) == 24 and LOGITS_TOKENS.count(TINY_EOT_ID) == 1
assert all(0 <= i < TINY_VOCAB for i in LOGITS_TOKENS)

GREEDY_PROMPTS = [
    "Hello",
    "The quick brown fox",
    " 123 + 456 =",
    "a\n\nb",
    "Once upon a time, there was",
    "<|endoftext|>The",
]
MAX_NEW_TOKENS = 12


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def escape_invisible(json_text):
    """Write invisible/ambiguous characters (controls, format characters such as
    ZWJ or BOM, non-ASCII spaces, line/paragraph separators) as \\uXXXX escapes
    so that the file survives editors and diff tools; all else stays readable."""
    out = []
    for ch in json_text:
        if ch != " " and unicodedata.category(ch) in ("Cc", "Cf", "Zs", "Zl", "Zp", "Co", "Cn"):
            out.append(json.dumps(ch)[1:-1])  # "\u200d", or a surrogate pair
        else:
            out.append(ch)
    return "".join(out)


def write_json_lines(path, items):
    """A JSON list with one compact item per line."""
    lines = [escape_invisible(json.dumps(item, ensure_ascii=False)) for item in items]
    path.write_text("[\n" + ",\n".join(lines) + "\n]\n", encoding="utf-8")


# ---------------------------------------------------------------------------
# 1. Copy of the real GPT-2 tokenizer
# ---------------------------------------------------------------------------
def copy_real_tokenizer():
    REAL_TOKENIZER.mkdir(parents=True, exist_ok=True)
    for name in ["vocab.json", "merges.txt", "SOURCE.md"]:
        shutil.copyfile(SOURCE_TOKENIZER / name, REAL_TOKENIZER / name)
        assert sha256(SOURCE_TOKENIZER / name) == sha256(REAL_TOKENIZER / name)


# ---------------------------------------------------------------------------
# 2. Truncated tokenizer (513 tokens, 256 merges) for the tiny model
# ---------------------------------------------------------------------------
def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def build_truncated_tokenizer():
    """Return (vocab.json text, merges.txt text) of the truncated tokenizer."""
    vocab = json.loads((REAL_TOKENIZER / "vocab.json").read_text(encoding="utf-8"))
    merge_lines = (REAL_TOKENIZER / "merges.txt").read_text(encoding="utf-8").split("\n")
    header, merges = merge_lines[0], [m for m in merge_lines[1:] if m]
    assert header == "#version: 0.2" and len(merges) == 50000 and len(vocab) == 50257
    assert vocab[EOT] == 50256

    id_to_token = {i: t for t, i in vocab.items()}
    assert len(id_to_token) == len(vocab)

    # ids 0..255 are exactly the 256 single byte-level symbols
    byte_symbols = set(bytes_to_unicode().values())
    assert len(byte_symbols) == 256
    assert {id_to_token[i] for i in range(256)} == byte_symbols

    # merge rank r < 256 joins "a b" into "ab", and "ab" has id 256 + r;
    # both parts already exist with smaller ids, so the truncation is closed.
    for r in range(TINY_MERGES):
        a, b = merges[r].split(" ")
        assert vocab[a + b] == 256 + r, (r, merges[r])
        assert vocab[a] < 256 + r and vocab[b] < 256 + r, (r, merges[r])

    tiny_vocab = {id_to_token[i]: i for i in range(256 + TINY_MERGES)}
    tiny_vocab[EOT] = TINY_EOT_ID
    assert len(tiny_vocab) == TINY_VOCAB
    # same style as OpenAI's encoder.json: json.dumps defaults, no trailing newline
    assert json.dumps(vocab) == (REAL_TOKENIZER / "vocab.json").read_text(encoding="utf-8")
    vocab_text = json.dumps(tiny_vocab)
    merges_text = "\n".join([header] + merges[:TINY_MERGES]) + "\n"
    return vocab_text, merges_text


def write_truncated_tokenizer(folder, vocab_text, merges_text):
    (folder / "vocab.json").write_text(vocab_text, encoding="utf-8")
    (folder / "merges.txt").write_text(merges_text, encoding="utf-8")


def load_tokenizer(folder):
    return GPT2TokenizerFast.from_pretrained(str(folder))


# ---------------------------------------------------------------------------
# 3. Tiny random GPT-2 checkpoints
# ---------------------------------------------------------------------------
def tiny_config():
    return GPT2Config(
        vocab_size=TINY_VOCAB, n_positions=N_CTX, n_embd=32, n_layer=3, n_head=4,
        activation_function="gelu_new", layer_norm_epsilon=1e-5,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=TINY_EOT_ID, eos_token_id=TINY_EOT_ID,
    )


@torch.no_grad()
def build_tiny_model():
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(tiny_config()).eval().to(torch.float32)
    assert model.lm_head.weight is model.transformer.wte.weight  # tied
    # Re-initialise with larger values so that logits are far from zero.
    # Modules are visited in a fixed order; lm_head shares wte's weight and
    # is skipped so that the tied tensor is drawn only once.
    for name, module in model.named_modules():
        if name == "lm_head":
            continue
        if isinstance(module, (torch.nn.Linear, Conv1D)):
            module.weight.normal_(0.0, 0.25)
            if module.bias is not None:
                module.bias.normal_(0.0, 0.1)
        elif isinstance(module, torch.nn.Embedding):
            module.weight.normal_(0.0, 0.25)
        elif isinstance(module, torch.nn.LayerNorm):
            module.weight.copy_(1.0 + 0.1 * torch.randn_like(module.weight))
            module.bias.normal_(0.0, 0.1)
    assert model.lm_head.weight is model.transformer.wte.weight
    return model


def save_hf_variant(model, folder, dtype, vocab_text, merges_text):
    m = copy.deepcopy(model).to(dtype)
    m.save_pretrained(str(folder), safe_serialization=True)
    # save_pretrained also writes generation_config.json; the fixture folders
    # contain only config.json, model.safetensors, vocab.json and merges.txt.
    (folder / "generation_config.json").unlink(missing_ok=True)
    write_truncated_tokenizer(folder, vocab_text, merges_text)


def save_legacy_variant(model, folder, vocab_text, merges_text):
    """float32 weights named like OpenAI's original `gpt2` checkpoint."""
    cfg = model.config
    state = {}
    for name, tensor in model.state_dict().items():
        if name.startswith("transformer."):
            state[name[len("transformer."):]] = tensor.detach().clone().contiguous()
    for i in range(cfg.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(N_CTX, N_CTX)).view(1, 1, N_CTX, N_CTX)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    state["lm_head.weight"] = model.transformer.wte.weight.detach().clone()
    assert all(t.dtype == torch.float32 for t in state.values())
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})

    old_config = {
        "activation_function": cfg.activation_function,
        "layer_norm_epsilon": cfg.layer_norm_epsilon,
        "model_type": "gpt2",
        "n_ctx": N_CTX,
        "n_embd": cfg.n_embd,
        "n_head": cfg.n_head,
        "n_layer": cfg.n_layer,
        "vocab_size": cfg.vocab_size,
    }
    (folder / "config.json").write_text(json.dumps(old_config, indent=2) + "\n", encoding="utf-8")
    write_truncated_tokenizer(folder, vocab_text, merges_text)


def describe_safetensors(path):
    with safe_open(str(path), framework="pt") as f:
        tensors = {}
        for key in f.keys():
            t = f.get_slice(key)
            tensors[key] = (t.get_dtype(), t.get_shape())
        return tensors, f.metadata()


# ---------------------------------------------------------------------------
# 4. Golden logits and greedy generations
# ---------------------------------------------------------------------------
def reference_model_from_file(variant, folder):
    """A float32 eager-attention model holding exactly the stored weights."""
    stored = load_file(str(folder / "model.safetensors"))
    weights = {}
    if variant == "legacy":
        for name, t in stored.items():
            if name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
                continue
            if name == "lm_head.weight":
                assert torch.equal(t, stored["wte.weight"])
                continue
            weights["transformer." + name] = t
    else:
        assert "lm_head.weight" not in stored
        weights = stored
    weights = {k: v.to(torch.float32) for k, v in weights.items()}

    config = tiny_config()
    config._attn_implementation = "eager"
    model = GPT2LMHeadModel(config).eval()
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert missing == ["lm_head.weight"] and unexpected == [], (missing, unexpected)
    assert model.lm_head.weight is model.transformer.wte.weight
    return model


@torch.no_grad()
def full_logits(model, ids):
    out = model(input_ids=torch.tensor([ids]), use_cache=False)
    return out.logits[0]


@torch.no_grad()
def greedy(model, tokenizer, prompt):
    prompt_ids = tokenizer.encode(prompt)
    assert len(prompt_ids) + MAX_NEW_TOKENS <= N_CTX
    assert all(0 <= i < TINY_VOCAB for i in prompt_ids)
    input_ids = torch.tensor([prompt_ids])
    out = model.generate(input_ids, attention_mask=torch.ones_like(input_ids),
                         max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                         use_cache=True, pad_token_id=TINY_EOT_ID)
    generated = out[0, len(prompt_ids):].tolist()
    assert len(generated) == MAX_NEW_TOKENS  # <|endoftext|> was never generated
    gaps = []
    for step, token in enumerate(generated):
        last = full_logits(model, prompt_ids + generated[:step])[-1]
        top2 = torch.topk(last, 2).values
        assert int(torch.argmax(last)) == token, (prompt, step)
        gaps.append(float(top2[0] - top2[1]))
    return {"prompt": prompt, "prompt_ids": prompt_ids, "generated": generated, "top2_gaps": gaps}


def golden_for_variant(variant, folder, tokenizer):
    model = reference_model_from_file(variant, folder)
    logits = full_logits(model, LOGITS_TOKENS)
    assert logits.shape == (len(LOGITS_TOKENS), TINY_VOCAB) and logits.dtype == torch.float32
    if variant != "legacy":
        # cross-check: transformers' own loader (default attention) agrees
        hf = GPT2LMHeadModel.from_pretrained(str(folder), dtype=torch.float32).eval()
        diff = (full_logits(hf, LOGITS_TOKENS) - logits).abs().max().item()
        assert diff < 1e-4, (variant, diff)
    return {
        "dir": str(folder.relative_to(REPO)),
        "logits": logits.tolist(),
        "greedy": [greedy(model, tokenizer, p) for p in GREEDY_PROMPTS],
    }, logits


# ---------------------------------------------------------------------------
# 5. Tokenizer parity corpus (real GPT-2 tokenizer)
# ---------------------------------------------------------------------------
LONG_PARAGRAPH = (
    "In 2023, the café on Rue de l'Église served 1,234 croissants—each one €2.50 "
    "(about $2.70). “Isn't it wonderful?” she asked; he replied: 'Yes!!!' 🥐🥐 "
    "Meanwhile, 東京 had 37.4 million people, and Москва about 12.6M. "
    "Code: `x = f(y) // 2;` — see https://example.com/path?q=1&r=2#frag.\n\n"
    "  Indented line\twith tab.   Trailing spaces   \n"
)

CORPUS = [
    # --- contractions, lower and UPPER case
    "don't", "DON'T", "Don't", "I'm", "I'M", "we'll", "WE'LL", "they've", "THEY'VE",
    "she'd", "SHE'D", "it's", "IT'S", "'s", "'S", "'t", "'re", "'ll", "'ve", "'m", "'d",
    "O'Neil", "rock 'n' roll", "you're", "YOU'RE", "can't won't shouldn't've",
    "'tis the season", "the dog's bone", "James' book", "it''s", "don’t (curly apostrophe)",
    # --- numbers
    "3.14159", "1,000,000", "2024-01-01", "42nd", "0x1F", "1e-10", "-273.15", "+1 (555) 010-9999",
    "12345678901234567890", "v1.2.3", "50%", "1/2 + 3/4", "007", "1st 2nd 3rd 4th", "x²+y²=z²",
    # --- runs of spaces
    "a  b", "a   b", "a          b", "  leading two", "   leading three",
    "          ten leading", "trailing two  ", "trailing three   ", "trailing ten          ",
    " ", "  ", "   ", "          ",
    # --- tabs and newlines
    "\t", "a\tb", "\t\tdouble tab", "col1\tcol2\tcol3\n", "\n", "\n\n", "\n\n\n", "\r\n", "a\r\nb",
    "line1\nline2", "para1\n\npara2", " \n \t", "  \n\n  \t\t \n", "end with newline\n",
    "\n start with newline", "\r", "mixed\r\n\n\r", "a \nb", "a\n b",
    # --- leading/trailing whitespace
    " hello", "hello ", " hello ", "\thello\t", "\nhello\n", "   hello world   ",
    # --- accented Latin
    "café", "naïve", "Ångström", "Zürich", "ñandú", "São Paulo", "Œuvre façade déjà vu", "Dvořák Łódź",
    "CAFÉ NAÏVE", "İstanbul ıi",
    # --- other scripts
    "Ελληνικά γλώσσα", "Привет, мир!", "ПРИВЕТ", "مرحبا بالعالم", "שלום עולם", "हिन्दी",
    "नमस्ते दुनिया", "क्षत्रिय", "สวัสดีครับ", "안녕하세요 세계", "한국어", "こんにちは世界", "カタカナとひらがな、漢字。",
    "東京タワー", "你好，世界！", "中文字符测试", "ᐊᐃᑦᓯᐊᖅ", "ქართული",
    # --- emoji
    "👍", "👍🏽", "👍🏿 thumbs", "👨‍👩‍👧‍👦", "family: 👨‍👩‍👧‍👦!", "🇫🇷", "🇫🇷🇩🇪🇯🇵", "1️⃣", "#️⃣ *️⃣",
    "❤️", "❤", "☺️ ☺︎", "🏳️‍🌈", "🧑🏽‍💻", "😀😃😄😁", "hello🌍world",
    # --- combining marks, zalgo, zero-width characters
    "e\u0301", "cafe\u0301", "Z\u0324\u0354\u0367\u0311\u0313", "H\u0335\u0321e\u0337\u0322l\u0336\u0328l\u0334o\u0338",
    "\u0301", "\u200d", "\u200c", "a\u200db", "a\u200cb", "\u200b", "\ufeffBOM", "\u2060word joiner",
    # --- code
    "fn main() {\n    println!(\"Hello, world!\");\n}\n",
    "impl<T: Clone> Foo<T> for Vec<T> where T: Send + 'static {}",
    "let x: &mut [u8; 4] = &mut buf[..4]; // comment",
    "def f(x):\n    if x > 0:\n        return x ** 2\n    return -x\n",
    "class A:\n\tpass\n",
    "import numpy as np\nprint(np.arange(10)[::2])",
    "{\"key\": \"value\", \"n\": [1, 2.5, null, true], \"nested\": {\"a\": {}}}",
    "<!DOCTYPE html><html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "<div>\n  <span id='a'>text</span>\n</div>",
    r"^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+)@\d{1,3}\.\w+$",
    "cat file.txt | grep -v '^#' | sort | uniq -c | sort -rn > out.txt 2>&1",
    "for i in $(seq 1 10); do echo \"$i\"; done",
    "x+=1;y-=2;z*=3;w/=4;a%=5;b&&c||!d",
    "SELECT * FROM users WHERE name = 'O''Brien';",
    # --- URLs, e-mails, markdown
    "https://www.example.com/path/to/page?query=1&foo=bar#section",
    "http://localhost:8080/api/v1",
    "ftp://user:pass@host.example.org:21/file",
    "john.doe+tag@example.co.uk",
    "Contact: <admin@example.com>",
    "# Heading\n\n## Sub-heading\n\n- item 1\n- item 2\n\n**bold** and _italic_ and `code`",
    "[link](https://example.com) ![img](a.png)",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "> quote\n>> nested quote",
    "```rust\nlet a = 1;\n```",
    # --- math, currency
    "∑_{i=1}^{n} i = n(n+1)/2", "∫₀^∞ e^{-x²} dx = √π/2", "a ≤ b ≥ c ≠ d ≈ e", "π ≈ 3.14",
    "∀x ∈ ℝ, ∃y: x < y", "€100", "¥5000", "£9.99", "$1.00 ₹50 ₿0.001 ¢", "100€",
    # --- punctuation
    "!!!", "...", "?!", "—", "–", "“quoted”", "«guillemets»", "‘single’", "Wait... what?!",
    "a—b–c-d", "…", "¿Qué? ¡Sí!", "(parens) [brackets] {braces}", "---", "___", "***", "~~~",
    "\"\"\"docstring\"\"\"", "''", "\"\"",
    # --- <|endoftext|> inside text, and lookalikes
    "<|endoftext|>", "<|endoftext|>Hello", "Hello<|endoftext|>", "Hello<|endoftext|>World",
    "Hello <|endoftext|> World", " <|endoftext|> ", "<|endoftext|><|endoftext|>",
    "a<|endoftext|>b<|endoftext|>c", "\n<|endoftext|>\n", "<|endoftext|>The",
    "<|endoftext|", "<|endoftext>", "<|ENDOFTEXT|>", "|endoftext|", "< |endoftext| >",
    "<|endoftext|>>", "<<|endoftext|>", "endoftext",
    # --- edge cases
    "", "a", "A", "\u00a0", "a\u00a0b", "\u3000", "日本\u3000語", "a\u2003b", "1\u202f000", "a\u0085b",
    "\u2028line sep", "\u2029para sep", "\x00", "\x7f", "\x1b[31mred\x1b[0m",
    "x" * 200, "abc" * 70, "Pneumonoultramicroscopicsilicovolcanoconiosis",
    "Ⅻ", "ⅫⅣ chapter", "²", "x² y³ ¹", "½ ¼ ¾", "①②③", "٣٤٥", "१२३",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝕏", "𝐁𝐨𝐥𝐝", "𐍈", "\ufffd", "a\ufffdb",
    LONG_PARAGRAPH,
]


def tokenizer_corpus():
    tokenizer = load_tokenizer(REAL_TOKENIZER)
    assert len(CORPUS) == len(set(CORPUS)), "duplicate corpus entries"
    entries, not_roundtrip = [], []
    for text in CORPUS:
        ids = tokenizer.encode(text)
        entries.append({"text": text, "ids": ids})
        if tokenizer.decode(ids) != text:
            not_roundtrip.append(text)
    return entries, not_roundtrip


# ---------------------------------------------------------------------------
def main():
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")

    copy_real_tokenizer()

    vocab_text, merges_text = build_truncated_tokenizer()
    print(f"truncation check held: ids 0..255 are bytes, merges 0..{TINY_MERGES - 1} -> ids 256..511")

    model = build_tiny_model()
    for variant, (dirname, dtype) in VARIANTS.items():
        folder = FIXTURES / dirname
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        if variant == "legacy":
            save_legacy_variant(model, folder, vocab_text, merges_text)
        else:
            save_hf_variant(model, folder, dtype, vocab_text, merges_text)
        tensors, metadata = describe_safetensors(folder / "model.safetensors")
        print(f"\n{folder.relative_to(REPO)}/model.safetensors  metadata={metadata}")
        for key, (dt, shape) in tensors.items():
            print(f"  {key:32s} {dt:5s} {shape}")

    tiny_tokenizer = load_tokenizer(FIXTURES / VARIANTS["f32"][0])
    assert len(tiny_tokenizer) == TINY_VOCAB
    assert tiny_tokenizer.encode(EOT) == [TINY_EOT_ID]
    assert tiny_tokenizer.eos_token_id == TINY_EOT_ID

    golden = {
        "generated_by": f"tests/golden/hf_reference.py (torch {torch.__version__}, "
                        f"transformers {transformers.__version__})",
        "logits_tokens": LOGITS_TOKENS,
        "variants": {},
    }
    all_logits = {}
    for variant, (dirname, _) in VARIANTS.items():
        golden["variants"][variant], all_logits[variant] = golden_for_variant(
            variant, FIXTURES / dirname, tiny_tokenizer)

    print()
    for variant in ["f16", "bf16", "legacy"]:
        d = (all_logits[variant] - all_logits["f32"]).abs().max().item()
        print(f"max |logits[{variant}] - logits[f32]| = {d:.3g}")
    for variant, g in golden["variants"].items():
        for item in g["greedy"]:
            print(f"  {variant:6s} {item['prompt']!r:32s} {item['prompt_ids']} -> {item['generated']} "
                  f"min gap {min(item['top2_gaps']):.3g}")
    for variant in ["f16", "bf16", "legacy"]:
        same = golden["variants"][variant]["greedy"] == golden["variants"]["f32"]["greedy"]
        print(f"greedy[{variant}] identical to greedy[f32]: {same}")

    (GOLDEN / "tiny_gpt2.json").write_text(json.dumps(golden) + "\n", encoding="utf-8")

    entries, not_roundtrip = tokenizer_corpus()
    write_json_lines(GOLDEN / "tokenizer_corpus.json", entries)
    assert json.loads((GOLDEN / "tokenizer_corpus.json").read_text(encoding="utf-8")) == entries
    print(f"\ntokenizer corpus: {len(entries)} strings; decode(encode(s)) != s for {len(not_roundtrip)}:")
    for text in not_roundtrip:
        print(f"  {text!r}")
    eot = [e for e in entries if "endoftext" in e["text"].lower()]
    for e in eot:
        print(f"  {e['text']!r:36s} -> {e['ids']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
