//! The tokenizer interface: text to token ids and back. Two implementations: the dummy
//! model's [`WordEncoder`](crate::dummy::WordEncoder) and GPT-2's byte-level
//! [`Bpe`](crate::bpe::Bpe).
//!
//! Token ids stand for *bytes*, not characters: one GPT-2 token can hold half of an emoji.
//! So decoding goes through bytes, and [`TextStream`] turns generated tokens into text
//! piece by piece without ever printing half a UTF-8 character.

use crate::error::Result;

/// Turns text into token ids and token ids back into bytes.
pub trait Tokenizer {
    /// Text to token ids.
    fn encode(&self, text: &str) -> Vec<u32>;

    /// The bytes `ids` stand for. An id outside the vocabulary is an error.
    fn decode_bytes(&self, ids: &[u32]) -> Result<Vec<u8>>;

    /// Number of token ids (`0..n_vocab`).
    fn n_vocab(&self) -> usize;

    /// The end-of-text token, if the vocabulary has one (GPT-2: `<|endoftext|>` = 50256).
    fn end_of_text(&self) -> Option<u32> {
        None
    }

    /// The text `ids` stand for; bytes that are not valid UTF-8 become U+FFFD, as in
    /// HuggingFace's decoder.
    fn decode(&self, ids: &[u32]) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.decode_bytes(ids)?).into_owned())
    }

    /// The bytes `id` adds to a text whose last token is `previous` (`None`: the text is
    /// empty): `decode_bytes([previous, id])` minus `decode_bytes([previous])`, which is
    /// right for tokenizers whose tokens' bytes depend at most on the token before them
    /// (a word tokenizer's separating space; GPT-2's bytes depend on nothing). What
    /// [`TextStream`] uses, so that streaming costs the same at every step.
    fn decode_next(&self, previous: Option<u32>, id: u32) -> Result<Vec<u8>> {
        let Some(previous) = previous else {
            return self.decode_bytes(&[id]);
        };
        let before = self.decode_bytes(&[previous])?.len();
        let mut both = self.decode_bytes(&[previous, id])?;
        both.drain(..before.min(both.len()));
        Ok(both)
    }
}

/// Streams the text of generated tokens, one token at a time, never splitting a UTF-8
/// character: bytes of an unfinished character wait for the next token. Each token is
/// decoded on its own ([`Tokenizer::decode_next`]), so a step's cost does not grow with the
/// text.
///
/// ```
/// use gpt2_edu::tokenizer::{TextStream, Tokenizer};
/// use gpt2_edu::dummy::WordEncoder;
/// let encoder = WordEncoder::new();
/// let mut stream = TextStream::new(&encoder, &encoder.encode("hello"));
/// assert_eq!(stream.push(1).unwrap(), " world");
/// assert_eq!(stream.finish(), "");
/// ```
#[derive(Debug)]
pub struct TextStream<'t, T: Tokenizer + ?Sized> {
    tokenizer: &'t T,
    /// The last token so far (of the context or streamed).
    last: Option<u32>,
    /// Bytes of an unfinished character.
    pending: Vec<u8>,
}

impl<'t, T: Tokenizer + ?Sized> TextStream<'t, T> {
    /// A stream that continues after `context` (the prompt), whose text is not repeated.
    pub fn new(tokenizer: &'t T, context: &[u32]) -> Self {
        Self { tokenizer, last: context.last().copied(), pending: Vec::new() }
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &'t T {
        self.tokenizer
    }

    /// Adds one token and returns the text that is now complete (possibly empty). An id
    /// outside the vocabulary is an error, and changes nothing.
    pub fn push(&mut self, id: u32) -> Result<String> {
        let bytes = self.tokenizer.decode_next(self.last, id)?;
        self.last = Some(id);
        self.pending.extend_from_slice(&bytes);
        Ok(take_complete_utf8(&mut self.pending))
    }

    /// Moves past `context` tokens that are not streamed (text fed in between): returns
    /// what was pending ([`finish`](Self::finish)), and continues after them.
    pub fn skip(&mut self, context: &[u32]) -> String {
        let rest = self.finish();
        if let Some(&last) = context.last() {
            self.last = Some(last);
        }
        rest
    }

    /// Ends the stream: bytes of an unfinished character become U+FFFD.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// Removes and returns the longest prefix of `bytes` that can be printed now: valid
/// characters, with each invalid sequence replaced by U+FFFD (as `from_utf8_lossy` does),
/// leaving only an incomplete final character behind.
pub fn take_complete_utf8(bytes: &mut Vec<u8>) -> String {
    let mut text = String::new();
    let mut start = 0;
    loop {
        match std::str::from_utf8(&bytes[start..]) {
            Ok(valid) => {
                text.push_str(valid);
                start = bytes.len();
                break;
            }
            Err(error) => {
                let valid_end = start + error.valid_up_to();
                text.push_str(std::str::from_utf8(&bytes[start..valid_end]).unwrap_or_default());
                match error.error_len() {
                    Some(invalid) => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        start = valid_end + invalid;
                    }
                    None => {
                        start = valid_end; // an unfinished character: wait for more bytes
                        break;
                    }
                }
            }
        }
    }
    bytes.drain(..start);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_token_by_token_equals_decoding_the_whole_text() {
        let encoder = crate::dummy::WordEncoder::new();
        let ids = [0, 1, 1, 2, 3, 0];
        for split in 1..ids.len() {
            let mut stream = TextStream::new(&encoder, &ids[..split]);
            let streamed: String =
                ids[split..].iter().map(|&id| stream.push(id).unwrap()).collect();
            let whole = encoder.decode(&ids).unwrap();
            let before = encoder.decode(&ids[..split]).unwrap();
            assert_eq!(format!("{before}{streamed}"), whole, "split at {split}");
        }
        let mut stream = TextStream::new(&encoder, &[]);
        assert_eq!(stream.push(2).unwrap(), "the", "no context: no leading space");
        assert!(stream.push(9).is_err());
        assert_eq!(stream.push(1).unwrap(), " world", "the failed push changed nothing");
    }

    #[test]
    fn an_emoji_split_over_tokens_waits_until_complete() {
        let mut pending = "a😀".as_bytes()[..3].to_vec(); // 'a' + 2 of the emoji's 4 bytes
        assert_eq!(take_complete_utf8(&mut pending), "a");
        assert_eq!(pending.len(), 2);
        pending.extend_from_slice(&"😀".as_bytes()[2..]);
        assert_eq!(take_complete_utf8(&mut pending), "😀");
        assert!(pending.is_empty());
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_like_lossy_decoding() {
        let bytes = b"ok\xff\xfe then \xe2\x82".to_vec();
        let mut pending = bytes.clone();
        let streamed = take_complete_utf8(&mut pending) + &String::from_utf8_lossy(&pending);
        assert_eq!(streamed, String::from_utf8_lossy(&bytes));
    }
}
