//! GPT-2's byte-level BPE tokenizer, by hand: the byte-to-unicode table, the
//! pre-tokenization pattern, and merges applied by rank.
//!
//! Encoding text, step by step:
//!
//! 1. **Special tokens.** `<|endoftext|>` written in the text becomes its own id (50256), as in
//!    HuggingFace's tokenizer; the text between is encoded normally.
//! 2. **Pre-tokens.** The text is cut into pieces by GPT-2's pattern, tried in this order
//!    at each position (written out by hand in [`pre_tokenize`]):
//!    ```text
//!    's|'t|'re|'ve|'m|'ll|'d        contractions (lower case only: "DON'T" splits differently)
//!    | ?\p{L}+                      a run of letters, with at most one leading space
//!    | ?\p{N}+                      a run of digits and other numbers, likewise
//!    | ?[^\s\p{L}\p{N}]+            a run of other symbols, likewise
//!    |\s+(?!\S)                     whitespace, leaving its last character to the next word
//!    |\s+                           whatever whitespace is left
//!    ```
//!    so `"Hello  world"` becomes `"Hello"`, `" "`, `" world"`: a word carries its leading space.
//! 3. **Bytes.** Each piece is UTF-8 bytes; each byte starts as its own token. (The vocabulary
//!    writes bytes as printable characters through [`bytes_to_unicode`], which is why
//!    `vocab.json` shows a leading space as `Ġ`.)
//! 4. **Merges.** `merges.txt` lists 50,000 pairs in order of priority (rank). Repeatedly, the
//!    adjacent pair with the lowest rank is merged into one token, until no adjacent pair is
//!    in the list. What remains are the token ids. ([`Bpe::merge_steps`] shows every state
//!    of this loop. Rescanning every pair after every merge is quadratic in the piece's
//!    length, so for long pieces `encode` gets the same tokens from a heap of pairs instead.)
//!
//! Decoding concatenates the tokens' bytes; any invalid UTF-8 becomes U+FFFD.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::path::Path;

use crate::error::{Error, Result};
use crate::json::{self, Json};
use crate::tokenizer::Tokenizer;
use crate::unicode_tables::{LETTERS, NUMBERS};

/// The name of GPT-2's only special token.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// U+FEFF, which some editors write at the start of a UTF-8 file.
const BYTE_ORDER_MARK: char = '\u{feff}';

/// GPT-2's byte-level BPE tokenizer (`vocab.json` + `merges.txt`).
#[derive(Debug, Clone)]
pub struct Bpe {
    /// The bytes each token id stands for.
    token_bytes: Vec<Vec<u8>>,
    /// The id of each single byte's token.
    byte_ids: [u32; 256],
    /// `(left, right)` -> `(rank, merged id)`.
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// `<|endoftext|>`'s id, if the vocabulary has it.
    end_of_text: Option<u32>,
}

/// GPT-2's byte-to-unicode table: every byte gets a printable character. The 188 printable
/// Latin-1 bytes (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) stand for themselves; the other 68 (control
/// characters, space, ...) are mapped in order to U+0100, U+0101, ... So space (0x20) is
/// `Ġ` (U+0120) and newline (0x0A) is `Ċ` (U+010A). From OpenAI's `encoder.py`.
pub fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut next_unprintable = 0;
    for (b, slot) in table.iter_mut().enumerate() {
        let b = b as u32;
        let code = if printable(b) {
            b
        } else {
            next_unprintable += 1;
            0xFF + next_unprintable
        };
        *slot = char::from_u32(code).expect("below U+0200");
    }
    table
}

impl Bpe {
    /// Loads `vocab.json` and `merges.txt`.
    pub fn from_files(vocab_path: &Path, merges_path: &Path) -> Result<Self> {
        let read = |path: &Path| std::fs::read_to_string(path).map_err(|e| Error::io(path, &e));
        Self::from_texts(&read(vocab_path)?, vocab_path, &read(merges_path)?, merges_path)
    }

    /// Builds the tokenizer from the two files' contents (the paths are for messages).
    ///
    /// `merges.txt` lines may end in `\n`, `\r\n` or `\r` (no byte-level token can hold
    /// either character, so this cannot change a token). A UTF-8 byte order mark (U+FEFF,
    /// which some Windows editors write) at the start of either file is refused with how to
    /// fix it, as Python's `json` (so transformers) and HuggingFace's `tokenizers` refuse
    /// it, so that what loads here loads there. Everything that is wrong is an
    /// [`Error::InvalidFile`] naming the file, and the line of `merges.txt`: a merge whose
    /// sides or result are not tokens, a `#version` header or a BOM further down, no
    /// merges at all beside a vocabulary that needs them.
    pub fn from_texts(
        vocab_json: &str,
        vocab_path: &Path,
        merges_txt: &str,
        merges_path: &Path,
    ) -> Result<Self> {
        if merges_txt.starts_with(BYTE_ORDER_MARK) {
            // (vocab.json's is refused by the JSON parser, with the same advice.)
            return Err(Error::invalid_file(
                merges_path,
                "the text starts with a UTF-8 byte-order mark (bytes EF BB BF), which \
                 HuggingFace's tokenizers refuses too: save the file as UTF-8 without BOM",
            ));
        }
        let vocab = parse_vocab(vocab_json, vocab_path)?;
        let id_of: HashMap<&str, u32> =
            vocab.iter().enumerate().map(|(id, t)| (t.as_str(), id as u32)).collect();
        let token_bytes = tokens_as_bytes(&vocab, vocab_path)?;
        let byte_ids = single_byte_ids(&id_of, vocab_path)?;
        let merges = parse_merges(merges_txt, merges_path, &id_of)?;
        check_merges_not_missing(&merges, &vocab, merges_path)?;
        Ok(Self { token_bytes, byte_ids, merges, end_of_text: id_of.get(END_OF_TEXT).copied() })
    }

    /// The BPE merges of one pre-token, the readable way: bytes in, token ids out. The
    /// reference for [`Bpe::merge_fast`], which `encode` uses.
    #[cfg(test)]
    fn merge_reference(&self, piece: &str) -> Vec<u32> {
        self.merge_with(piece, |_| {})
    }

    /// Every state of the merges of one pre-token, for learners: the single bytes first,
    /// then the ids after each merge, ending with the final tokens.
    ///
    /// ```
    /// # use gpt2_edu::bpe::Bpe;
    /// # let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gpt2-tokenizer"));
    /// # let bpe = Bpe::from_files(&dir.join("vocab.json"), &dir.join("merges.txt")).unwrap();
    /// let steps = bpe.merge_steps(" dog");
    /// let tokens = |ids: &[u32]| ids.iter().map(|&id| bpe.token_text(id).unwrap()).collect::<Vec<_>>();
    /// assert_eq!(tokens(&steps[0]), ["Ġ", "d", "o", "g"]);
    /// assert_eq!(tokens(steps.last().unwrap()), ["Ġdog"]);
    /// ```
    pub fn merge_steps(&self, piece: &str) -> Vec<Vec<u32>> {
        let mut steps = Vec::new();
        self.merge_with(piece, |ids| steps.push(ids.to_vec()));
        steps
    }

    /// A token as `vocab.json` writes it, in byte-to-unicode characters (`Ġdog` for " dog").
    pub fn token_text(&self, id: u32) -> Option<String> {
        let table = bytes_to_unicode();
        let bytes = self.token_bytes.get(id as usize)?;
        Some(bytes.iter().map(|&b| table[b as usize]).collect())
    }

    /// The merge loop: starts from one token per byte and repeatedly merges every occurrence
    /// of the lowest-ranked adjacent pair, calling `on_state` with each state.
    fn merge_with(&self, piece: &str, mut on_state: impl FnMut(&[u32])) -> Vec<u32> {
        let mut ids: Vec<u32> = piece.bytes().map(|b| self.byte_ids[b as usize]).collect();
        on_state(&ids);
        while let Some((_, (left, right), merged)) = ids
            .windows(2)
            .filter_map(|pair| {
                let (rank, merged) = *self.merges.get(&(pair[0], pair[1]))?;
                Some((rank, (pair[0], pair[1]), merged))
            })
            .min_by_key(|&(rank, _, _)| rank)
        {
            let mut out = Vec::with_capacity(ids.len());
            let mut i = 0;
            while i < ids.len() {
                if i + 1 < ids.len() && (ids[i], ids[i + 1]) == (left, right) {
                    out.push(merged);
                    i += 2;
                } else {
                    out.push(ids[i]);
                    i += 1;
                }
            }
            ids = out;
            on_state(&ids);
        }
        ids
    }

    /// The BPE merges of one pre-token, as `encode` does them: the readable loop for a short
    /// piece, where it is fastest (ordinary words are a few bytes), and the heap of
    /// [`Bpe::merge_heap`] from [`SHORT_PIECE`] bytes on, where the loop's O(n²) would show.
    fn merge_fast(&self, piece: &str) -> Vec<u32> {
        if piece.len() < SHORT_PIECE {
            self.merge_with(piece, |_| {})
        } else {
            self.merge_heap(piece)
        }
    }

    /// The same merges as [`Bpe::merge_with`], in O(n log n) for a piece of n bytes instead
    /// of O(n²): the reference loop rescans every pair after every merge, which takes seconds
    /// on a 100 KB word with no spaces. As in HuggingFace's `tokenizers` (`word.rs`,
    /// `merge_all`), the symbols form a linked list over their first byte's position, and a
    /// min-heap holds `(rank, position)` of every adjacent pair that is a merge. Popping the
    /// lowest gives the lowest-ranked pair, its leftmost occurrence first, so one rank's
    /// occurrences come out left to right, as the reference merges them. Entries go stale
    /// when a neighbour merges; they are skipped when popped (lazy invalidation).
    ///
    /// One difference from HuggingFace: the pairs a merge forms wait in `formed` until every
    /// occurrence of the current rank is merged, because the reference loop only sees them
    /// in its next step. With GPT-2's own `merges.txt` this changes nothing (a merge that
    /// uses a token always ranks after the merge that makes it), but with a file where one
    /// does not, this keeps the fast path equal to the reference.
    fn merge_heap(&self, piece: &str) -> Vec<u32> {
        let bytes = piece.as_bytes();
        let n = bytes.len();
        if n < 2 {
            return bytes.iter().map(|&b| self.byte_ids[b as usize]).collect();
        }
        // The list: symbol `pos` starts at byte `pos`; a merge absorbs the right symbol.
        let mut symbols: Vec<Symbol> = (0..n)
            .map(|pos| Symbol {
                id: self.byte_ids[bytes[pos] as usize],
                alive: true,
                prev: pos.checked_sub(1),
                next: (pos + 1 < n).then_some(pos + 1),
            })
            .collect();
        let candidate = |pos: usize, left: u32, right: u32| {
            let &(rank, merged) = self.merges.get(&(left, right))?;
            Some(Reverse(Candidate { rank, pos, left, right, merged }))
        };
        let mut queue: BinaryHeap<_> = (0..n - 1)
            .filter_map(|pos| candidate(pos, symbols[pos].id, symbols[pos + 1].id))
            .collect();
        let mut formed = Vec::new(); // pairs made during the current rank's step
        let mut step_rank = None;
        loop {
            let Some(Reverse(top)) = queue.pop() else {
                if formed.is_empty() {
                    break;
                }
                queue.extend(formed.drain(..)); // the step is over: its new pairs compete
                continue;
            };
            if step_rank != Some(top.rank) && !formed.is_empty() {
                queue.push(Reverse(top));
                queue.extend(formed.drain(..));
                continue;
            }
            step_rank = Some(top.rank);
            let symbol = symbols[top.pos];
            let still_there = |&next: &usize| {
                symbol.alive && symbol.id == top.left && symbols[next].id == top.right
            };
            let Some(next) = symbol.next.filter(still_there) else {
                continue; // stale: this symbol or its neighbour has merged since
            };
            let after = symbols[next].next;
            symbols[next].alive = false;
            symbols[top.pos].id = top.merged;
            symbols[top.pos].next = after;
            if let Some(after) = after {
                symbols[after].prev = Some(top.pos);
                formed.extend(candidate(top.pos, top.merged, symbols[after].id));
            }
            if let Some(before) = symbol.prev {
                formed.extend(candidate(before, symbols[before].id, top.merged));
            }
        }
        symbols.iter().filter(|s| s.alive).map(|s| s.id).collect()
    }

    /// A step-by-step account of how `text` is encoded: its pre-tokens, each one's bytes,
    /// every merge with its rank, and the final ids (what `examples/tokenize.rs` prints).
    /// A pre-token longer than 256 bytes shows only its ids: every state of its merges
    /// would take memory and text quadratic in its length.
    pub fn explain(&self, text: &str) -> String {
        let show = |ids: &[u32]| -> String {
            let tokens: Vec<String> = ids.iter().filter_map(|&id| self.token_text(id)).collect();
            tokens.join(" ")
        };
        let mut out = format!("text: {text:?}\npre-tokens: {:?}\n", pre_tokenize(text));
        for piece in pre_tokenize(text) {
            if piece.len() > EXPLAINED_PIECE_BYTES {
                let start: String = piece.chars().take(16).collect();
                out.push_str(&format!(
                    "\n{start:?}... ({} bytes)\n  too long to show every merge (the limit is \
                     {EXPLAINED_PIECE_BYTES} bytes)\n  ids {:?}\n",
                    piece.len(),
                    self.merge_fast(piece)
                ));
                continue;
            }
            out.push_str(&format!("\n{piece:?}  bytes {:02x?}\n", piece.as_bytes()));
            let steps = self.merge_steps(piece);
            out.push_str(&format!("  {:<26} {}\n", "start: one token per byte", show(&steps[0])));
            for pair in steps.windows(2) {
                let rank = pair[0].windows(2).filter_map(|p| self.merge_rank(p[0], p[1])).min();
                let label = format!("merge rank {}", rank.unwrap_or_default());
                out.push_str(&format!("  {label:<26} {}\n", show(&pair[1])));
            }
            out.push_str(&format!("  ids {:?}\n", steps[steps.len() - 1]));
        }
        out.push_str(&format!("\nall ids: {:?}\n", self.encode(text)));
        out
    }

    /// The rank of merging `left` and `right` (lower merges first), if it is a merge.
    pub fn merge_rank(&self, left: u32, right: u32) -> Option<u32> {
        self.merges.get(&(left, right)).map(|&(rank, _)| rank)
    }
}

impl Tokenizer for Bpe {
    /// Encodes as GPT-2 (and HuggingFace's `GPT2TokenizerFast`) does: `<|endoftext|>`
    /// becomes its id wherever it appears; other text is pre-tokenized and merged.
    fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        let mut rest = text;
        loop {
            let (before, after) =
                match self.end_of_text.and_then(|eot| Some((eot, rest.find(END_OF_TEXT)?))) {
                    Some((eot, at)) => (&rest[..at], Some((eot, &rest[at + END_OF_TEXT.len()..]))),
                    None => (rest, None),
                };
            for piece in pre_tokenize(before) {
                ids.extend(self.merge_fast(piece));
            }
            match after {
                Some((eot, remaining)) => {
                    ids.push(eot);
                    rest = remaining;
                }
                None => return ids,
            }
        }
    }

    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        for &id in ids {
            let token = self
                .token_bytes
                .get(id as usize)
                .ok_or(Error::TokenOutOfRange { token: id, n_vocab: self.token_bytes.len() })?;
            bytes.extend_from_slice(token);
        }
        Ok(bytes)
    }

    fn n_vocab(&self) -> usize {
        self.token_bytes.len()
    }

    fn end_of_text(&self) -> Option<u32> {
        self.end_of_text
    }
}

/// The longest pre-token (in bytes) whose every merge [`Bpe::explain`] shows.
const EXPLAINED_PIECE_BYTES: usize = 256;

/// Pieces shorter than this (in bytes) are merged by the readable loop, which is faster than
/// the heap on them: measured with `examples/bpe_timing.rs` on `LEARN.md`, the heap alone
/// took about 7.5 ms against the loop's 5 ms, and this cut-off brought it back to 5 ms.
const SHORT_PIECE: usize = 32;

/// One symbol of [`Bpe::merge_heap`]'s linked list: a token and where its neighbours are.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    id: u32,
    /// False once the symbol on its left has absorbed it.
    alive: bool,
    prev: Option<usize>,
    next: Option<usize>,
}

/// A pair that [`Bpe::merge_heap`] may merge: `left` at `pos` and `right` after it, as they
/// were when it was queued. Ordered by rank, then position, as the heap pops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    rank: u32,
    pos: usize,
    left: u32,
    right: u32,
    merged: u32,
}

/// The bytes each token stands for, in id order: `vocab` is written in [`bytes_to_unicode`]
/// characters, and each character is mapped back to its byte.
fn tokens_as_bytes(vocab: &[String], vocab_path: &Path) -> Result<Vec<Vec<u8>>> {
    let char_to_byte: HashMap<char, u8> =
        bytes_to_unicode().iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();
    let mut token_bytes = Vec::with_capacity(vocab.len());
    for token in vocab {
        let bytes: Option<Vec<u8>> = token.chars().map(|c| char_to_byte.get(&c).copied()).collect();
        token_bytes.push(bytes.ok_or_else(|| {
            Error::invalid_file(
                vocab_path,
                format!("token {token:?} has a character outside GPT-2's byte table"),
            )
        })?);
    }
    Ok(token_bytes)
}

/// The id of each single byte's token (`[256]`, indexed by byte), looked up in `id_of`
/// (token text to id); a byte-level vocabulary must have all 256.
fn single_byte_ids(id_of: &HashMap<&str, u32>, vocab_path: &Path) -> Result<[u32; 256]> {
    let byte_to_char = bytes_to_unicode();
    let mut byte_ids = [0u32; 256];
    for (b, id) in byte_ids.iter_mut().enumerate() {
        let symbol = byte_to_char[b].to_string();
        *id = *id_of.get(symbol.as_str()).ok_or_else(|| {
            Error::invalid_file(
                vocab_path,
                format!(
                    "no token for byte {b:#04x} ({symbol:?}); a byte-level vocabulary needs all 256"
                ),
            )
        })?;
    }
    Ok(byte_ids)
}

/// `vocab.json`: an object from token (in byte-to-unicode characters) to id; the ids must
/// be exactly `0..n`. Returns the tokens in id order.
fn parse_vocab(text: &str, path: &Path) -> Result<Vec<String>> {
    let json = json::parse(text).map_err(|e| Error::invalid_file(path, e.to_string()))?;
    let Json::Object(entries) = json else {
        return Err(Error::invalid_file(
            path,
            format!("expected a JSON object of token: id, found {}", json.kind()),
        ));
    };
    let n = entries.len();
    let mut tokens: Vec<Option<String>> = vec![None; n];
    for (token, id) in entries {
        let slot = id.as_u64().and_then(|id| tokens.get_mut(id as usize)).ok_or_else(|| {
            Error::invalid_file(
                path,
                format!("token {token:?} has id {id:?}; expected a whole number below {n}"),
            )
        })?;
        if slot.is_some() {
            return Err(Error::invalid_file(path, format!("id of token {token:?} is used twice")));
        }
        *slot = Some(token);
    }
    Ok(tokens.into_iter().map(|t| t.expect("n distinct ids in 0..n fill every slot")).collect())
}

/// `merges.txt`: an optional `#version` line, then one `left right` pair per line, highest
/// priority first. Both sides and their concatenation must be tokens.
///
/// Lines may end in `\n`, `\r\n`, or (old Mac files) a lone `\r`: a byte-level token never
/// holds a raw CR or LF (the byte table writes them `č` and `Ċ`), so either can only end a
/// line. A file with no `\n` at all is split at its `\r`s.
fn parse_merges(
    text: &str,
    path: &Path,
    id_of: &HashMap<&str, u32>,
) -> Result<HashMap<(u32, u32), (u32, u32)>> {
    let lines: Vec<&str> =
        if text.contains('\n') { text.lines().collect() } else { text.split('\r').collect() };
    let mut merges = HashMap::new();
    let mut rank = 0;
    for (line_index, &line) in lines.iter().enumerate() {
        if (line_index == 0 && line.starts_with("#version")) || line.is_empty() {
            continue;
        }
        let bad =
            |what: String| Error::invalid_file(path, format!("line {}: {what}", line_index + 1));
        let (left, right) = line
            .split_once(' ')
            .filter(|(l, r)| !l.is_empty() && !r.is_empty() && !r.contains(' '))
            .ok_or_else(|| {
                bad(format!(
                    "expected two tokens separated by one space, found {line:?}{}",
                    misplaced_hint(line)
                ))
            })?;
        let unknown: Vec<String> = [left, right]
            .into_iter()
            .filter(|token| !id_of.contains_key(token))
            .map(|token| format!("{token:?}"))
            .collect();
        if !unknown.is_empty() {
            let (names, verb) =
                (unknown.join(" and "), if unknown.len() == 1 { "is" } else { "are" });
            let hint = match misplaced_hint(line) {
                "" => {
                    "; both sides of a merge must be tokens of the vocabulary: \
                       are merges.txt and vocab.json from the same tokenizer?"
                }
                hint => hint,
            };
            return Err(bad(format!("{names} {verb} not in the vocabulary (in {line:?}){hint}")));
        }
        let merged = format!("{left}{right}");
        let merged_id = *id_of.get(merged.as_str()).ok_or_else(|| {
            bad(format!(
                "merging {left:?} and {right:?} makes {merged:?}, which is not in the \
                 vocabulary; every merge must make a token: are merges.txt and vocab.json \
                 from the same tokenizer?"
            ))
        })?;
        merges.entry((id_of[left], id_of[right])).or_insert((rank, merged_id));
        rank += 1;
    }
    Ok(merges)
}

/// Why a bad `merges.txt` line may be there, if it looks like a known mistake: a `#version`
/// header (allowed on the first line only) or a byte order mark, both typical of two files
/// joined into one. Empty if neither.
fn misplaced_hint(line: &str) -> &'static str {
    if line.starts_with("#version") {
        "; this looks like a `#version` header, which may only be the first line: remove it \
         (were two files joined?)"
    } else if line.contains(BYTE_ORDER_MARK) {
        "; it holds U+FEFF, a byte order mark, which no token can: remove it \
         (were two files joined?)"
    } else {
        ""
    }
}

/// No merges, yet tokens of more than one byte (other than `<|endoftext|>`): only merges
/// make those, so `encode` could never produce them. An empty or wrong `merges.txt`, and
/// without this check every text would silently encode to single bytes.
fn check_merges_not_missing(
    merges: &HashMap<(u32, u32), (u32, u32)>,
    vocab: &[String],
    merges_path: &Path,
) -> Result<()> {
    let needing_merges = vocab.iter().filter(|t| t.chars().count() > 1 && t != &END_OF_TEXT);
    match needing_merges.count() {
        n if n > 0 && merges.is_empty() => Err(Error::invalid_file(
            merges_path,
            format!(
                "no merges found, but the vocabulary has {n} tokens of more than one byte, \
                 which only merges can make; expected one `left right` pair per line \
                 (GPT-2's has 50,000): is this file empty, or the wrong one?"
            ),
        )),
        _ => Ok(()),
    }
}

/// What GPT-2's pattern distinguishes about a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CharClass {
    Letter,
    Number,
    Whitespace,
    Other,
}

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = c as u32;
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

fn class_of(c: char) -> CharClass {
    if c.is_whitespace() {
        CharClass::Whitespace // \s: Unicode White_Space
    } else if in_table(LETTERS, c) {
        CharClass::Letter // \p{L}
    } else if in_table(NUMBERS, c) {
        CharClass::Number // \p{N}
    } else {
        CharClass::Other
    }
}

/// Cuts text into GPT-2's pre-tokens (see the module docs for the pattern).
///
/// ```
/// use gpt2_edu::bpe::pre_tokenize;
/// assert_eq!(pre_tokenize("I'm  here!! 42x"), ["I", "'m", " ", " here", "!!", " 42", "x"]);
/// ```
pub fn pre_tokenize(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let len = next_piece_len(rest);
        pieces.push(&rest[..len]);
        rest = &rest[len..];
    }
    pieces
}

/// Length in bytes of the pre-token at the start of `s` (non-empty).
fn next_piece_len(s: &str) -> usize {
    // 's|'t|'re|'ve|'m|'ll|'d
    for contraction in ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"] {
        if s.starts_with(contraction) {
            return contraction.len();
        }
    }
    //  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ : an optional space, then a run of one class.
    let space = usize::from(s.starts_with(' '));
    if let Some(first) = s[space..].chars().next() {
        let class = class_of(first);
        if class != CharClass::Whitespace {
            let run = s[space..]
                .char_indices()
                .find(|&(_, c)| class_of(c) != class)
                .map_or(s.len() - space, |(i, _)| i);
            return space + run;
        }
    }
    // \s+(?!\S) | \s+ : a whitespace run; if a non-space follows, its last character is left
    // for the next piece (so " world" keeps its space), unless the run is that one character.
    let run = s.char_indices().find(|&(_, c)| !c.is_whitespace()).map_or(s.len(), |(i, _)| i);
    if run == s.len() {
        return run;
    }
    match s[..run].char_indices().last() {
        Some((last_start, _)) if last_start > 0 => last_start,
        _ => run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::XorShift64;

    #[test]
    fn byte_table_matches_openai_encoder_py() {
        let table = bytes_to_unicode();
        assert_eq!(table[b'!' as usize], '!');
        assert_eq!(table[b' ' as usize], 'Ġ'); // U+0120
        assert_eq!(table[b'\n' as usize], 'Ċ'); // U+010A
        assert_eq!(table[0], 'Ā'); // U+0100
        assert_eq!(table[0xAD], 'Ń'); // soft hyphen, the last unprintable Latin-1 byte: U+0143
        let distinct: std::collections::HashSet<char> = table.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
    }

    #[test]
    fn pre_tokens_by_hand() {
        assert_eq!(pre_tokenize("Hello  world"), ["Hello", " ", " world"]);
        assert_eq!(pre_tokenize("a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(pre_tokenize("x   "), ["x", "   "]);
        assert_eq!(pre_tokenize("DON'T don't"), ["DON", "'", "T", " don", "'t"]);
        assert_eq!(pre_tokenize(" 3.14"), [" 3", ".", "14"]);
        assert_eq!(
            pre_tokenize("हिन्दी"),
            ["ह", "ि", "न", "्", "द", "ी"],
            "vowel signs are not letters"
        );
        assert_eq!(pre_tokenize(""), Vec::<&str>::new());
    }

    /// `vocab.json` text: the 256 single bytes (ids 0..256), then `extra` in order.
    fn vocab_with(extra: &[String]) -> String {
        let table = bytes_to_unicode();
        let tokens = table.iter().map(|c| c.to_string()).chain(extra.iter().cloned());
        let entries: Vec<String> =
            tokens.enumerate().map(|(i, t)| format!("{:?}: {i}", t)).collect();
        format!("{{{}}}", entries.join(", "))
    }

    /// A byte vocabulary plus `extra` tokens, with `merges` as the lines of `merges.txt`.
    fn toy_with(extra: &[&str], merges: &[&str]) -> Bpe {
        let extra: Vec<String> = extra.iter().map(|t| t.to_string()).collect();
        let merges = format!("#version: 0.2\n{}\n", merges.join("\n"));
        Bpe::from_texts(&vocab_with(&extra), Path::new("vocab.json"), &merges, Path::new("m.txt"))
            .unwrap()
    }

    /// A byte vocabulary with merges "a b" -> "ab" (rank 0) and "ab c" -> "abc" (rank 1).
    fn toy() -> Bpe {
        toy_with(&["ab", "abc", END_OF_TEXT], &["a b", "ab c"])
    }

    fn gpt2() -> Bpe {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2-tokenizer");
        Bpe::from_files(&dir.join("vocab.json"), &dir.join("merges.txt")).unwrap()
    }

    /// A random string of `len` characters drawn from `alphabet`.
    fn random_text(rng: &mut XorShift64, alphabet: &[char], len: usize) -> String {
        (0..len).map(|_| alphabet[(rng.next_u64() % alphabet.len() as u64) as usize]).collect()
    }

    #[test]
    fn fast_merges_equal_the_reference_on_gpt2_pieces() {
        let bpe = gpt2();
        let corpus = json::parse(include_str!("../tests/golden/tokenizer_corpus.json")).unwrap();
        let mut pieces: Vec<String> = Vec::new();
        for case in corpus.as_array().unwrap() {
            let text = case.get("text").and_then(Json::as_str).unwrap();
            pieces.extend(pre_tokenize(text).into_iter().map(String::from));
        }
        let mut rng = XorShift64::new(11).unwrap();
        let letters: Vec<char> = ('a'..='z').chain('A'..='E').chain(['é', 'ß', '中']).collect();
        for len in [1, 2, 3, 5, 8, 13, 40, 200, 1000, 3000] {
            for _ in 0..8 {
                pieces.push(random_text(&mut rng, &letters, len));
            }
        }
        pieces.extend(["a".repeat(2001), "ab".repeat(700), " the".repeat(300)]);
        assert!(pieces.len() > 500, "{} pieces", pieces.len());
        for piece in &pieces {
            assert_eq!(bpe.merge_heap(piece), bpe.merge_reference(piece), "piece {piece:?}");
            assert_eq!(bpe.merge_fast(piece), bpe.merge_reference(piece), "piece {piece:?}");
        }
    }

    #[test]
    fn fast_merges_equal_the_reference_on_random_vocabularies() {
        // Random merges over a three-letter alphabet, in random rank order: unlike GPT-2's
        // file, a merge that uses a token may rank before the merge that makes it.
        let mut rng = XorShift64::new(5).unwrap();
        for _ in 0..200 {
            let mut tokens: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
            let mut extra: Vec<String> = Vec::new();
            let mut merges: Vec<String> = Vec::new();
            for _ in 0..(rng.next_u64() % 30) {
                let left = tokens[(rng.next_u64() % tokens.len() as u64) as usize].clone();
                let right = tokens[(rng.next_u64() % tokens.len() as u64) as usize].clone();
                let merged = format!("{left}{right}");
                if !tokens.contains(&merged) {
                    tokens.push(merged.clone());
                    extra.push(merged);
                }
                merges.push(format!("{left} {right}"));
            }
            for i in (1..merges.len()).rev() {
                merges.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
            }
            let merges = format!("{}\n", merges.join("\n"));
            let bpe = Bpe::from_texts(&vocab_with(&extra), Path::new("v"), &merges, Path::new("m"))
                .unwrap();
            for len in [2, 5, 17, 60] {
                let word = random_text(&mut rng, &['a', 'b', 'c'], len);
                assert_eq!(bpe.merge_heap(&word), bpe.merge_reference(&word), "{word:?}\n{merges}");
            }
        }
    }

    #[test]
    fn explain_shows_only_the_ids_of_a_very_long_word() {
        let bpe = gpt2();
        let word = "ab".repeat(5_000);
        let text = format!("The {word} end");
        let explained = bpe.explain(&text);
        assert!(explained.contains("\" abababababababa\"... (10001 bytes)\n"), "{explained:.300}");
        assert!(explained.contains("too long to show every merge (the limit is 256 bytes)"));
        assert!(explained.contains(&format!("  ids {:?}\n", bpe.encode(&format!(" {word}")))));
        assert!(explained.contains("merge rank"), "short pieces still show their merges");
        // The text twice and its ids twice: linear in its length (every state: 100s of MB).
        assert!(explained.len() < 100_000, "{} bytes", explained.len());
    }

    #[test]
    fn pairs_formed_by_a_merge_wait_until_every_occurrence_of_its_rank_is_merged() {
        // "abc ab" ranks before the "ab c" that makes "abc". The reference loop merges both
        // "ab c" of "abcabc" in one step; only then could "abc ab" apply, and it does not.
        // (HuggingFace's heap merges "abc ab" as soon as the first "abc" exists.)
        let bpe = toy_with(&["ab", "abc", "abcab"], &["a b", "abc ab", "ab c"]);
        let abc = 257;
        assert_eq!(bpe.merge_reference("abcabc"), vec![abc, abc]);
        assert_eq!(bpe.merge_heap("abcabc"), vec![abc, abc]);
    }

    #[test]
    fn merges_apply_by_rank_and_specials_are_recognised() {
        let bpe = toy();
        let a = bpe.byte_ids[b'a' as usize];
        assert_eq!(bpe.encode("abc"), vec![257]);
        assert_eq!(bpe.encode("abab"), vec![256, 256]);
        assert_eq!(bpe.encode("aab"), vec![a, 256]);
        assert_eq!(bpe.encode("ab<|endoftext|>ab"), vec![256, 258, 256]);
        assert_eq!(bpe.decode(&bpe.encode("ab<|endoftext|>ab")).unwrap(), "ab<|endoftext|>ab");
        assert_eq!(bpe.end_of_text(), Some(258));
        assert!(bpe.decode(&[259]).is_err());
    }

    #[test]
    fn malformed_files_are_named_with_the_line() {
        let vocab = r#"{"a": 0}"#;
        let error =
            Bpe::from_texts(vocab, Path::new("v.json"), "", Path::new("m.txt")).unwrap_err();
        assert!(error.to_string().contains("v.json: no token for byte 0x00"), "{error}");
        let table = bytes_to_unicode();
        let tokens: Vec<String> = table.iter().map(|c| format!("{:?}", c.to_string())).collect();
        let vocab = format!(
            "{{{}}}",
            tokens
                .iter()
                .enumerate()
                .map(|(i, t)| format!("{t}: {i}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let error = Bpe::from_texts(
            &vocab,
            Path::new("v.json"),
            "#version: 0.2\na b\n",
            Path::new("m.txt"),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("m.txt: line 2: merging \"a\" and \"b\" makes \"ab\", which is not"),
            "{error}"
        );
        let error = Bpe::from_texts(r#"{"a": 5}"#, Path::new("v.json"), "", Path::new("m.txt"))
            .unwrap_err();
        assert!(error.to_string().contains("expected a whole number below 1"), "{error}");
    }
}
