//! A small, strict JSON parser (RFC 8259), written by hand so the crate needs no
//! dependency to read `config.json`, `vocab.json` and the safetensors header.
//!
//! ```text
//! value  = object | array | string | number | true | false | null
//! object = { } | { string : value (, string : value)* }
//! array  = [ ] | [ value (, value)* ]
//! ```
//!
//! Strict means: no trailing commas, no comments, no leading zeros, no `NaN`, no
//! unescaped control characters in strings, no lone surrogates, no duplicate keys in an
//! object, nothing after the value but whitespace, no byte-order mark before it, and
//! nesting at most [`MAX_DEPTH`] deep (so hostile input cannot overflow the stack). Errors
//! give the byte offset. Numbers keep their text, so that `as_u64` is exact for integers
//! beyond 2^53 (safetensors offsets).
//!
//! Two ways to read: [`parse`] builds a [`Json`] tree (for small files), and [`Reader`]
//! walks the text value by value (for the safetensors header, whose tree would take about
//! 30 times the text's size).

use std::collections::HashSet;
use std::fmt;

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 128;

/// `{`, which begins an object (RFC 8259 names the brackets: this is `begin-object`).
const BEGIN_OBJECT: u8 = b'{';
/// `}`, which ends an object (`end-object`).
const END_OBJECT: u8 = b'}';
/// `[`, which begins an array (`begin-array`).
const BEGIN_ARRAY: u8 = b'[';
/// `]`, which ends an array (`end-array`).
const END_ARRAY: u8 = b']';
/// U+FEFF, which some editors write at the start of a UTF-8 file. RFC 8259 forbids it in
/// JSON text, and Python's `json` (so transformers) refuses it too; so does this parser, with
/// a message that says how to fix the file.
const BYTE_ORDER_MARK: char = '\u{feff}';

/// A parsed JSON value. Objects keep their keys in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, as written (validated against the JSON grammar).
    Number(String),
    /// A string, unescaped.
    String(String),
    /// `[...]`
    Array(Vec<Json>),
    /// `{...}`, keys unique, in file order.
    Object(Vec<(String, Json)>),
}

/// Why a text is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON at byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for JsonError {}

impl Json {
    /// The value under `key`, if this is an object that has it.
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.as_object()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The string, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as a `u64`, if it is written as a non-negative integer (no fraction, no
    /// exponent) that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
            _ => None,
        }
    }

    /// The number as an `f64` (nearest), if this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The key-value pairs, if this is an object.
    pub fn as_object(&self) -> Option<&[(String, Json)]> {
        match self {
            Json::Object(pairs) => Some(pairs),
            _ => None,
        }
    }

    /// What kind of value this is, for error messages: `"object"`, `"string"`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }
}

/// Parses one JSON value, surrounded by optional whitespace.
///
/// ```
/// use gpt2_edu::json::{parse, Json};
/// let config = parse(r#"{"n_layer": 12, "name": "gpt2\u00e9"}"#).unwrap();
/// assert_eq!(config.get("n_layer").and_then(Json::as_u64), Some(12));
/// assert_eq!(config.get("name").and_then(Json::as_str), Some("gpt2é"));
/// assert!(parse("[1, 2,]").is_err());
/// ```
///
/// The tree costs memory: about 30 bytes for every value, however short its text (`1,` is
/// two bytes), so it is for small texts (`config.json`, `vocab.json`); walk a large one
/// with a [`Reader`] instead.
pub fn parse(text: &str) -> Result<Json, JsonError> {
    let mut reader = Reader::new(text);
    let value = reader.value(0)?;
    reader.finish()?;
    Ok(value)
}

/// A pull reader: walks one JSON text value by value, so that the caller keeps only what
/// it needs and memory stays proportional to that, not to the text (the safetensors
/// header, up to 100 MB, is read this way). The grammar, the strictness and the messages
/// are [`parse`]'s.
///
/// ```
/// use gpt2_edu::json::{Json, JsonError, Reader};
/// let mut reader = Reader::new(r#"{"shape": [2, 3], "comment": {"ignored": [true]}}"#);
/// let mut shape = Vec::new();
/// reader.object(|reader, key| match key.as_str() {
///     "shape" => reader.array(|reader| {
///         shape.push(reader.scalar()?.and_then(|d| d.as_u64()));
///         Ok::<(), JsonError>(())
///     }),
///     _ => reader.skip(),
/// })?;
/// reader.finish()?;
/// assert_eq!(shape, [Some(2), Some(3)]);
/// # Ok::<(), JsonError>(())
/// ```
pub struct Reader<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
    /// How many arrays and objects the pull methods are inside.
    depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`.
    pub fn new(text: &'a str) -> Self {
        Reader { bytes: text.as_bytes(), text, at: 0, depth: 0 }
    }

    /// Reads an object, calling `entry(self, key)` for each key in file order; `entry`
    /// must read (or [`skip`](Self::skip)) exactly that key's value. Duplicate keys are
    /// refused, as [`parse`] refuses them.
    pub fn object<E: From<JsonError>>(
        &mut self,
        mut entry: impl FnMut(&mut Self, String) -> Result<(), E>,
    ) -> Result<(), E> {
        self.nested(|reader| {
            let mut keys = HashSet::new();
            reader.skip_whitespace();
            reader.sequence(BEGIN_OBJECT, END_OBJECT, "object", |reader| {
                let key = reader.key(&mut keys)?;
                reader.skip_whitespace();
                reader.expect(b':')?;
                entry(reader, key)
            })
        })
    }

    /// Reads an array, calling `item(self)` for each element, which must read (or
    /// [`skip`](Self::skip)) exactly that element.
    pub fn array<E: From<JsonError>>(
        &mut self,
        item: impl FnMut(&mut Self) -> Result<(), E>,
    ) -> Result<(), E> {
        self.nested(|reader| {
            reader.skip_whitespace();
            reader.sequence(BEGIN_ARRAY, END_ARRAY, "array", item)
        })
    }

    /// Reads the next value if it is a string, number, boolean or null; an array or object
    /// is skipped instead (never built) and gives `None`.
    pub fn scalar(&mut self) -> Result<Option<Json>, JsonError> {
        self.skip_whitespace();
        match self.peek() {
            Some(BEGIN_OBJECT | BEGIN_ARRAY) => self.skip().map(|()| None),
            _ => self.value(self.depth).map(Some),
        }
    }

    /// Reads the next value, whatever it is, and forgets it: nothing is built but the
    /// strings of its keys (to refuse duplicates).
    pub fn skip(&mut self) -> Result<(), JsonError> {
        self.skip_whitespace();
        match self.peek() {
            Some(BEGIN_OBJECT) => self.object(|reader, _| reader.skip()),
            Some(BEGIN_ARRAY) => self.array(Self::skip),
            _ => self.value(self.depth).map(drop),
        }
    }

    /// The kind of the next value, told by its first byte (after whitespace) without
    /// reading it: `"object"`, `"array"`, `"string"`, `"number"`, `"boolean"` or `"null"`;
    /// `None` where no value can start.
    pub fn peek_kind(&mut self) -> Option<&'static str> {
        self.skip_whitespace();
        Some(match self.peek()? {
            BEGIN_OBJECT => "object",
            BEGIN_ARRAY => "array",
            b'"' => "string",
            b'-' | b'0'..=b'9' => "number",
            b't' | b'f' => "boolean",
            b'n' => "null",
            _ => return None,
        })
    }

    /// Checks that nothing but whitespace follows the value read.
    pub fn finish(mut self) -> Result<(), JsonError> {
        self.skip_whitespace();
        if self.at != self.bytes.len() {
            return Err(self.error("unexpected text after the JSON value"));
        }
        Ok(())
    }

    /// Runs `read` one level deeper, refusing to go past [`MAX_DEPTH`].
    fn nested<T, E: From<JsonError>>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")).into());
        }
        self.depth += 1;
        let result = read(self);
        self.depth -= 1;
        result
    }
}

impl Reader<'_> {
    /// An error at the current offset. At offset 0 of a text that starts with a byte-order
    /// mark, the mark is what is wrong, and the message says so.
    fn error(&self, message: impl Into<String>) -> JsonError {
        let message = if self.at == 0 && self.text.starts_with(BYTE_ORDER_MARK) {
            "the text starts with a UTF-8 byte-order mark (bytes EF BB BF), which JSON does \
             not allow (RFC 8259, section 8.1): save the file as UTF-8 without BOM"
                .to_string()
        } else {
            message.into()
        };
        JsonError { offset: self.at, message }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), JsonError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(format!("expected '{}'", byte as char)))
        }
    }

    /// Parses any value at `depth` levels of nesting (after optional whitespace), choosing
    /// the kind by its first byte.
    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.skip_whitespace();
        match self.peek() {
            Some(BEGIN_OBJECT) => self.object_tree(depth),
            Some(BEGIN_ARRAY) => self.array_tree(depth),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of input, expected a value")),
        }
    }

    /// Parses the keyword `word` (`true`, `false` or `null`), which stands for `value`.
    fn literal(&mut self, word: &str, value: Json) -> Result<Json, JsonError> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    /// Parses `{ }` or `{ string : value (, string : value)* }`, refusing duplicate keys.
    fn object_tree(&mut self, depth: usize) -> Result<Json, JsonError> {
        let mut pairs: Vec<(String, Json)> = Vec::new();
        let mut keys = HashSet::new();
        self.sequence(BEGIN_OBJECT, END_OBJECT, "object", |reader| {
            let key = reader.key(&mut keys)?;
            reader.skip_whitespace();
            reader.expect(b':')?;
            pairs.push((key, reader.value(depth + 1)?));
            Ok(())
        })?;
        Ok(Json::Object(pairs))
    }

    /// Parses an object's key (after optional whitespace): a string not already in `seen`,
    /// which it is then added to. A duplicate is reported at the key's opening quote.
    fn key(&mut self, seen: &mut HashSet<String>) -> Result<String, JsonError> {
        self.skip_whitespace();
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string key"));
        }
        let key_at = self.at;
        let key = self.string()?;
        if !seen.insert(key.clone()) {
            return Err(JsonError { offset: key_at, message: format!("duplicate key \"{key}\"") });
        }
        Ok(key)
    }

    /// Parses `[ ]` or `[ value (, value)* ]`.
    fn array_tree(&mut self, depth: usize) -> Result<Json, JsonError> {
        let mut items = Vec::new();
        self.sequence(BEGIN_ARRAY, END_ARRAY, "array", |reader| {
            items.push(reader.value(depth + 1)?);
            Ok(())
        })?;
        Ok(Json::Array(items))
    }

    /// The shape objects and arrays share: `open`, then nothing or `element (, element)*`,
    /// then `close`. `element` parses one element (a key-value pair, or a value); `what`
    /// names the container in the error for a missing `,` or `close`.
    fn sequence<E: From<JsonError>>(
        &mut self,
        open: u8,
        close: u8,
        what: &str,
        mut element: impl FnMut(&mut Self) -> Result<(), E>,
    ) -> Result<(), E> {
        self.expect(open)?;
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            element(self)?;
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b) if b == close => {
                    self.at += 1;
                    return Ok(());
                }
                _ => {
                    let expected = format!("expected ',' or '{}' in {what}", close as char);
                    return Err(self.error(expected).into());
                }
            }
        }
    }

    /// Parses `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, keeping the text as written.
    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.at;
        self.integer_part()?;
        self.fraction()?;
        self.exponent()?;
        Ok(Json::Number(self.text[start..self.at].to_string()))
    }

    /// Skips `-?(0|[1-9][0-9]*)`: an optional minus, then `0` alone or digits that do not
    /// start with `0`.
    fn integer_part(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error("leading zeros are not allowed"));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("expected a digit")),
        }
        Ok(())
    }

    /// Skips `(\.[0-9]+)?`: nothing, or a point and at least one digit.
    fn fraction(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.error("expected a digit after '.'"));
            }
        }
        Ok(())
    }

    /// Skips `([eE][+-]?[0-9]+)?`: nothing, or `e`, an optional sign and at least one digit.
    fn exponent(&mut self) -> Result<(), JsonError> {
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("expected a digit in the exponent"));
            }
        }
        Ok(())
    }

    /// Skips `[0-9]*` and returns how many digits there were.
    fn digits(&mut self) -> usize {
        let from = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - from
    }

    /// Parses a string from its opening quote to its closing one, unescaping it.
    fn string(&mut self) -> Result<String, JsonError> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            // Copy the run up to the next quote, backslash or control character at once.
            let run_start = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.push_str(&self.text[run_start..self.at]);
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    out.push(self.escape()?);
                }
                Some(_) => return Err(self.error("control character in string (escape it)")),
                None => return Err(self.error("unterminated string")),
            }
        }
    }

    /// Parses what follows a backslash in a string: one of `"\/bfnrt`, or `u` and four hex
    /// digits, and returns the character it stands for.
    fn escape(&mut self) -> Result<char, JsonError> {
        let Some(b) = self.peek() else {
            return Err(self.error("unterminated escape"));
        };
        self.at += 1;
        Ok(match b {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => self.unicode_escape()?,
            _ => {
                self.at -= 1;
                return Err(self.error("unknown escape"));
            }
        })
    }

    /// Parses the four hex digits after `\u` (a UTF-16 code unit), and for a high surrogate
    /// the `\uXXXX` low surrogate that must follow it; returns the character they encode.
    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        let unit = self.hex4()?;
        match unit {
            0xD800..=0xDBFF => {
                // A high surrogate must be followed by \u and a low surrogate.
                if !self.bytes[self.at..].starts_with(b"\\u") {
                    return Err(self.error("lone high surrogate in \\u escape"));
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error("high surrogate not followed by a low one"));
                }
                let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                Ok(char::from_u32(code).expect("a surrogate pair is a valid scalar"))
            }
            0xDC00..=0xDFFF => Err(self.error("lone low surrogate in \\u escape")),
            _ => Ok(char::from_u32(unit).expect("not a surrogate, so valid")),
        }
    }

    /// Parses exactly four hex digits (of a `\u` escape) into their value, `0..=0xFFFF`.
    fn hex4(&mut self) -> Result<u32, JsonError> {
        let hex = self
            .bytes
            .get(self.at..self.at + 4)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .ok_or_else(|| self.error("expected four hex digits after \\u"))?;
        let value = hex.iter().fold(0, |v, &h| v * 16 + (h as char).to_digit(16).unwrap_or(0));
        self.at += 4;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_every_kind() {
        let json =
            parse(r#" {"a": [1, -2.5e3, 0], "b": {"c": null}, "d": true, "e": false, "f": ""} "#)
                .unwrap();
        assert_eq!(json.get("a").unwrap().as_array().unwrap().len(), 3);
        assert_eq!(json.get("a").unwrap().as_array().unwrap()[1].as_f64(), Some(-2500.0));
        assert_eq!(json.get("b").unwrap().get("c"), Some(&Json::Null));
        assert_eq!(json.get("d"), Some(&Json::Bool(true)));
        assert_eq!(json.get("f").and_then(Json::as_str), Some(""));
        let keys: Vec<&str> = json.as_object().unwrap().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "b", "d", "e", "f"], "file order is kept");
    }

    #[test]
    fn escapes_and_surrogate_pairs() {
        let json = parse(r#""\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00Ā""#).unwrap();
        assert_eq!(json.as_str(), Some("\"\\/\u{8}\u{c}\n\r\tAé😀Ā"));
    }

    #[test]
    fn integers_are_exact_beyond_f64() {
        let big = parse("18446744073709551615").unwrap();
        assert_eq!(big.as_u64(), Some(u64::MAX));
        assert_eq!(parse("18446744073709551616").unwrap().as_u64(), None, "overflow");
        assert_eq!(parse("1.0").unwrap().as_u64(), None, "not written as an integer");
        assert_eq!(parse("-1").unwrap().as_u64(), None);
    }

    #[test]
    fn malformed_inputs_are_errors_with_offsets() {
        for (text, offset) in [
            ("", 0),
            ("[1, 2,]", 6),
            ("{\"a\": 1,}", 8),
            ("01", 1),
            ("1.", 2),
            ("1e", 2),
            ("-", 1),
            ("+1", 0),
            ("NaN", 0),
            ("tru", 0),
            ("\"abc", 4),
            ("\"a\nb\"", 2),
            ("\"\\x\"", 2),
            ("\"\\ud800\"", 7),
            ("\"\\udc00\"", 7),
            ("\"\\u12\"", 3),
            ("{\"a\": 1, \"a\": 2}", 9),
            ("{a: 1}", 1),
            ("[1] [2]", 4),
            ("// comment\n1", 0),
            ("[1 2]", 3),
        ] {
            let error = parse(text).expect_err(text);
            assert_eq!(error.offset, offset, "{text:?}: {error}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn a_byte_order_mark_gets_a_message_that_says_how_to_fix_the_file() {
        for text in ["\u{feff}{}", "\u{feff}[1]", "\u{feff}"] {
            let error = parse(text).unwrap_err();
            assert_eq!(error.offset, 0, "{text:?}");
            assert!(error.message.contains("byte-order mark"), "{error}");
            assert!(error.message.contains("save the file as UTF-8 without BOM"), "{error}");
        }
        let mut reader = Reader::new("\u{feff}{}");
        let error = reader.object(|reader, _| reader.skip()).unwrap_err();
        assert!(error.message.contains("byte-order mark"), "{error}");
        // Anywhere else, U+FEFF is an ordinary character.
        assert_eq!(parse("\"\u{feff}\"").unwrap().as_str(), Some("\u{feff}"));
    }

    /// Whether the reader accepts `text` when it skips the whole value.
    fn reader_accepts(text: &str) -> std::result::Result<(), JsonError> {
        let mut reader = Reader::new(text);
        reader.skip()?;
        reader.finish()
    }

    #[test]
    fn the_reader_keeps_what_it_is_asked_for_and_skips_the_rest() {
        let text = r#"{"a": {"shape": [2, 3], "x": [[{}], "s", null]}, "b": 7}"#;
        let mut reader = Reader::new(text);
        let mut seen = Vec::new();
        reader
            .object(|reader, key| {
                if key == "b" {
                    seen.push((key, reader.scalar()?));
                    return Ok::<(), JsonError>(());
                }
                reader.object(|reader, inner| match inner.as_str() {
                    "shape" => reader.array(|reader| {
                        seen.push((inner.clone(), reader.scalar()?));
                        Ok(())
                    }),
                    _ => reader.scalar().map(|v| seen.push((inner.clone(), v))),
                })
            })
            .unwrap();
        reader.finish().unwrap();
        let number = |n: &str| Some(Json::Number(n.into()));
        let expected =
            [("shape", number("2")), ("shape", number("3")), ("x", None), ("b", number("7"))];
        let expected: Vec<(String, Option<Json>)> =
            expected.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        assert_eq!(seen, expected, "arrays and objects come back as None, skipped");
    }

    #[test]
    fn the_reader_refuses_exactly_what_parse_refuses_at_the_same_offset() {
        for text in ["[1, 2,]", "{\"a\": 1, \"a\": 2}", "[1] [2]", "{\"a\" 1}", "[[[]]", "\"\\x\""]
        {
            let (tree, pulled) = (parse(text).unwrap_err(), reader_accepts(text).unwrap_err());
            assert_eq!(tree, pulled, "{text}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert!(reader_accepts(&deep).unwrap_err().message.contains("nested deeper"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(reader_accepts(&ok).is_ok());
    }

    #[test]
    fn never_panics_on_any_prefix_or_byte_flip() {
        let text = r#"{"dtype":"F32","shape":[2,3],"data_offsets":[0,24],"s":"\u00e9\n"}"#;
        for end in 0..=text.len() {
            if let Some(prefix) = text.get(..end) {
                assert_eq!(parse(prefix).err(), reader_accepts(prefix).err(), "{prefix}");
            }
        }
        for i in 0..text.len() {
            for bit in 0..8 {
                let mut bytes = text.as_bytes().to_vec();
                bytes[i] ^= 1 << bit;
                if let Ok(flipped) = std::str::from_utf8(&bytes) {
                    assert_eq!(parse(flipped).err(), reader_accepts(flipped).err(), "{flipped}");
                }
            }
        }
    }
}
