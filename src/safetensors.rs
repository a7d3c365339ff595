//! The safetensors checkpoint format, read by hand.
//!
//! ```text
//! [8 bytes]  n, the header length, u64 little-endian
//! [n bytes]  the header: a JSON object, UTF-8
//!              { "wte.weight": {"dtype": "F32", "shape": [50257, 768], "data_offsets": [0, 154389504]},
//!                ...,
//!                "__metadata__": {"format": "pt"} }            (optional, string values only)
//! [rest]     the tensor data, back to back; offsets are relative to the start of this part
//! ```
//!
//! The header is validated as the reference reader (the `safetensors` crate) validates it:
//! the header is at most [`MAX_HEADER_SIZE`] bytes and fits in the file; it is UTF-8 JSON;
//! sorted by offset, the tensors tile the data part exactly (each starts where the previous
//! ended, starting at 0); every tensor's byte length equals `product(shape) x element size`,
//! computed with checked arithmetic; and the data part ends exactly at the end of the file.
//!
//! Loading reads the header, then each tensor on its own, through a 1 MiB buffer that is
//! converted as it is read, so it holds the f32 weights plus that buffer, nothing more. F32, F16 and BF16 tensors convert to
//! f32; the bytes are decoded with `from_le_bytes`, never by casting pointers.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::json::{self, Json};

/// The largest header accepted, in bytes (the reference reader's limit).
pub const MAX_HEADER_SIZE: u64 = 100_000_000;

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Its name, such as `h.0.attn.c_attn.weight`.
    pub name: String,
    /// Its dtype as written (`F32`, `F16`, `BF16`, `I64`, ...).
    pub dtype: String,
    /// Its shape, outermost first (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// Where its bytes are, relative to the start of the data part: `begin..end`.
    pub data_offsets: (u64, u64),
}

/// A parsed and validated header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Every tensor entry, in file order.
    pub tensors: Vec<TensorInfo>,
    /// The `__metadata__` pairs, if any.
    pub metadata: Vec<(String, String)>,
}

/// An open safetensors file whose header has been read and validated.
#[derive(Debug)]
pub struct SafeTensors {
    path: PathBuf,
    file: File,
    data_start: u64,
    tensors: Vec<TensorInfo>,
    metadata: Vec<(String, String)>,
}

impl SafeTensors {
    /// Opens `path` and reads and validates its header (no tensor data is read yet).
    pub fn open(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| Error::io(path, &e))?;
        let file_len = file.metadata().map_err(|e| Error::io(path, &e))?.len();
        let mut len_bytes = [0u8; 8];
        if file_len < 8 {
            return Err(Error::invalid_file(
                path,
                format!(
                    "too short for a safetensors file: {file_len} bytes, expected at least the 8-byte header length"
                ),
            ));
        }
        file.read_exact(&mut len_bytes).map_err(|e| Error::io(path, &e))?;
        let header_len = u64::from_le_bytes(len_bytes);
        check_header_len(path, header_len, file_len)?;
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(|e| Error::io(path, &e))?;
        let Header { tensors, metadata } = parse_header(path, &header, file_len - 8 - header_len)?;
        Ok(Self { path: path.to_path_buf(), file, data_start: 8 + header_len, tensors, metadata })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every tensor in the header, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The `__metadata__` entries, if any.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// The entry for `name`.
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Reads tensor `name`, checks that its shape is `expected_shape`, and converts it to
    /// f32 (row-major, as stored).
    pub fn read_f32(&self, name: &str, expected_shape: &[usize]) -> Result<Vec<f32>> {
        let info = self.entry_with_shape(name, expected_shape)?;
        let element_size = self.element_size(info)?;
        self.read_converted(info, element_size)
    }

    /// The entry for `name`, if it exists and its shape is `expected_shape`.
    fn entry_with_shape(&self, name: &str, expected_shape: &[usize]) -> Result<&TensorInfo> {
        let info = self.get(name).ok_or_else(|| Error::MissingTensor {
            path: self.path.display().to_string(),
            tensor: name.to_string(),
        })?;
        if info.shape != expected_shape {
            return Err(Error::ShapeMismatch {
                tensor: name.to_string(),
                expected: expected_shape.to_vec(),
                found: info.shape.clone(),
            });
        }
        Ok(info)
    }

    /// Bytes per element of a tensor that converts to f32: 4 for F32, 2 for F16 and BF16;
    /// any other dtype is an error.
    fn element_size(&self, info: &TensorInfo) -> Result<usize> {
        match info.dtype.as_str() {
            "F32" => Ok(4),
            "F16" | "BF16" => Ok(2),
            other => Err(Error::UnsupportedDtype {
                path: self.path.display().to_string(),
                tensor: info.name.clone(),
                dtype: other.to_string(),
            }),
        }
    }

    /// Reads the bytes of `info` (an F32, F16 or BF16 tensor of `element_size`-byte
    /// elements) through a small buffer and converts them as it goes: the bytes never exist
    /// in memory all at once, so loading holds the f32 weights plus this buffer.
    fn read_converted(&self, info: &TensorInfo, element_size: usize) -> Result<Vec<f32>> {
        const CHUNK_BYTES: usize = 1 << 20; // a multiple of every element size
        let (begin, end) = info.data_offsets;
        let total = (end - begin) as usize;
        let mut values = Vec::with_capacity(total / element_size);
        let mut chunk = vec![0u8; CHUNK_BYTES.min(total)];
        let mut file = &self.file;
        file.seek(SeekFrom::Start(self.data_start + begin))
            .map_err(|e| Error::io(&self.path, &e))?;
        let mut done = 0;
        while done < total {
            let bytes = &mut chunk[..CHUNK_BYTES.min(total - done)];
            file.read_exact(bytes).map_err(|e| Error::io(&self.path, &e))?;
            append_as_f32(&info.dtype, bytes, &mut values);
            done += bytes.len();
        }
        Ok(values)
    }
}

/// Decodes `bytes` (whole little-endian elements of `dtype`: F32, F16 or BF16) and appends
/// them to `values` as f32.
fn append_as_f32(dtype: &str, bytes: &[u8], values: &mut Vec<f32>) {
    match dtype {
        "F32" => values
            .extend(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        "F16" => values
            .extend(bytes.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))),
        // BF16, the one other dtype `element_size` lets through.
        _ => values
            .extend(bytes.chunks_exact(2).map(|b| bf16_to_f32(u16::from_le_bytes([b[0], b[1]])))),
    }
}

/// Checks the header length read from the file's first 8 bytes: at most
/// [`MAX_HEADER_SIZE`], and short enough to fit in the `file_len`-byte file.
fn check_header_len(path: &Path, header_len: u64, file_len: u64) -> Result<()> {
    if header_len > MAX_HEADER_SIZE {
        return Err(Error::invalid_file(
            path,
            format!(
                "header length {header_len} bytes is over the {MAX_HEADER_SIZE}-byte limit (corrupt file?)"
            ),
        ));
    }
    if 8 + header_len > file_len {
        return Err(Error::invalid_file(
            path,
            format!(
                "header length {header_len} bytes runs past the end of the {file_len}-byte file (truncated?)"
            ),
        ));
    }
    Ok(())
}

/// Parses and validates a header (the `n` bytes after the length) for a file whose data
/// part is `data_len` bytes long.
pub fn parse_header(path: &Path, header: &[u8], data_len: u64) -> Result<Header> {
    let bad = |message: String| Error::invalid_file(path, message);
    let text = std::str::from_utf8(header).map_err(|e| bad(format!("header is not UTF-8: {e}")))?;
    let json = json::parse(text).map_err(|e| bad(format!("header: {e}")))?;
    let Json::Object(entries) = json else {
        return Err(bad(format!("header must be a JSON object, found {}", json.kind())));
    };
    let mut tensors = Vec::with_capacity(entries.len());
    let mut metadata = Vec::new();
    for (name, value) in &entries {
        if name == "__metadata__" {
            metadata = parse_metadata(value).map_err(bad)?;
        } else {
            tensors.push(parse_tensor_info(name, value).map_err(bad)?);
        }
    }
    let data_end = validate_layout(&tensors).map_err(bad)?;
    if data_end != data_len {
        return Err(bad(format!(
            "the tensors' data ends at byte {data_end} of the data part, but the file holds {data_len} bytes of data (truncated or padded file?)"
        )));
    }
    Ok(Header { tensors, metadata })
}

/// The `__metadata__` entry: an object whose values are all strings, as pairs in file order.
fn parse_metadata(value: &Json) -> std::result::Result<Vec<(String, String)>, String> {
    let pairs = value
        .as_object()
        .ok_or_else(|| format!("__metadata__ must be an object, found {}", value.kind()))?;
    pairs
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_string())),
            None => {
                Err(format!("__metadata__ value of \"{k}\" must be a string, found {}", v.kind()))
            }
        })
        .collect()
}

/// One tensor's entry, `{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}`,
/// with each field's type checked (where its bytes lie is [`validate_layout`]'s job).
fn parse_tensor_info(name: &str, value: &Json) -> std::result::Result<TensorInfo, String> {
    let field =
        |key: &str| value.get(key).ok_or_else(|| format!("tensor `{name}`: missing \"{key}\""));
    let dtype = field("dtype")?
        .as_str()
        .ok_or_else(|| format!("tensor `{name}`: \"dtype\" must be a string"))?;
    if dtype_bits(dtype).is_none() {
        return Err(format!("tensor `{name}`: unknown dtype \"{dtype}\""));
    }
    let shape = field("shape")?
        .as_array()
        .ok_or_else(|| format!("tensor `{name}`: \"shape\" must be an array"))?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| format!("tensor `{name}`: \"shape\" must hold non-negative integers"))?;
    let offsets = field("data_offsets")?
        .as_array()
        .ok_or_else(|| format!("tensor `{name}`: \"data_offsets\" must be an array"))?;
    let data_offsets = match offsets {
        [begin, end] => begin.as_u64().zip(end.as_u64()),
        _ => None,
    }
    .ok_or_else(|| {
        format!("tensor `{name}`: \"data_offsets\" must be two non-negative integers [begin, end]")
    })?;
    Ok(TensorInfo { name: name.to_string(), dtype: dtype.to_string(), shape, data_offsets })
}

/// Bits per element of every dtype the format defines (`None`: not a safetensors dtype).
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        _ => return None,
    })
}

/// The reference reader's layout check: sorted by offset, the tensors tile the data part
/// from byte 0 with no gap or overlap, and each one's length is `product(shape) x size`.
/// Returns where the data ends.
fn validate_layout(tensors: &[TensorInfo]) -> std::result::Result<u64, String> {
    let mut by_offset: Vec<&TensorInfo> = tensors.iter().collect();
    by_offset.sort_by_key(|t| t.data_offsets);
    let mut expected_begin = 0u64;
    for info in by_offset {
        let (begin, end) = info.data_offsets;
        if begin != expected_begin || end < begin {
            return Err(format!(
                "tensor `{}`: data_offsets [{begin}, {end}] should start at {expected_begin} (tensors must be contiguous)",
                info.name
            ));
        }
        check_byte_length(info)?;
        expected_begin = end;
    }
    Ok(expected_begin)
}

/// Checks that a tensor's `data_offsets` (with `begin <= end`) hold exactly
/// `product(shape) x element size` bytes, computed with checked arithmetic in bits (a
/// dtype's elements may be smaller than a byte).
fn check_byte_length(info: &TensorInfo) -> std::result::Result<(), String> {
    let (begin, end) = info.data_offsets;
    let overflow = || format!("tensor `{}`: shape {:?} is too large", info.name, info.shape);
    let elements =
        info.shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64)).ok_or_else(overflow)?;
    let bits = elements.checked_mul(dtype_bits(&info.dtype).unwrap_or(0)).ok_or_else(overflow)?;
    if bits % 8 != 0 || bits / 8 != end - begin {
        return Err(format!(
            "tensor `{}`: {} x {:?} needs {} bytes but data_offsets [{begin}, {end}] hold {}",
            info.name,
            info.dtype,
            info.shape,
            bits as f64 / 8.0,
            end - begin
        ));
    }
    Ok(())
}

/// IEEE 754 half precision (1 sign, 5 exponent, 10 mantissa bits) to f32, exactly.
///
/// ```
/// use gpt2_edu::safetensors::f16_to_f32;
/// assert_eq!(f16_to_f32(0x3C00), 1.0);
/// assert_eq!(f16_to_f32(0xC000), -2.0);
/// assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24)); // smallest subnormal
/// ```
pub fn f16_to_f32(half: u16) -> f32 {
    let sign = (half as u32 & 0x8000) << 16;
    let exponent = (half >> 10) & 0x1f;
    let mantissa = half as u32 & 0x3ff;
    let bits = match exponent {
        // Zero and subnormals: mantissa x 2^-24, exact in f32.
        0 => {
            let magnitude = mantissa as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -magnitude } else { magnitude };
        }
        // Infinities and NaNs keep their payload.
        0x1f => sign | 0x7f80_0000 | (mantissa << 13),
        // Normal numbers: rebias the exponent from 15 to 127.
        _ => sign | ((exponent as u32 + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(bits)
}

/// bfloat16 (the top half of an f32) to f32, exactly.
pub fn bf16_to_f32(bits: u16) -> f32 {
    f32::from_bits((bits as u32) << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_f16_converts_to_its_value() {
        for half in 0..=u16::MAX {
            let sign = if half & 0x8000 != 0 { -1.0 } else { 1.0 };
            let exponent = ((half >> 10) & 0x1f) as i32;
            let mantissa = (half & 0x3ff) as f64;
            let expected = match exponent {
                0 => sign * mantissa * 2f64.powi(-24),
                0x1f if mantissa == 0.0 => sign * f64::INFINITY,
                0x1f => f64::NAN,
                _ => sign * (1.0 + mantissa / 1024.0) * 2f64.powi(exponent - 15),
            };
            let got = f16_to_f32(half);
            if expected.is_nan() {
                assert!(got.is_nan(), "{half:#06x}");
            } else {
                assert_eq!(got as f64, expected, "{half:#06x}");
                assert_eq!(got.is_sign_negative(), sign < 0.0, "{half:#06x}");
            }
        }
    }

    #[test]
    fn bf16_is_the_top_half_of_f32() {
        assert_eq!(bf16_to_f32(0x3F80), 1.0);
        assert_eq!(bf16_to_f32(0xC049), -3.140625);
        for x in [0.5f32, -1e30, 3.0e-38] {
            let top = (x.to_bits() >> 16) as u16;
            assert_eq!(bf16_to_f32(top).to_bits(), x.to_bits() & 0xFFFF_0000);
        }
    }

    fn header(json: &str, data_len: u64) -> Result<Header> {
        parse_header(Path::new("t.safetensors"), json.as_bytes(), data_len)
    }

    #[test]
    fn a_valid_header_in_any_key_order() {
        let Header { tensors, metadata } = header(
            r#"{"b": {"dtype": "F16", "shape": [3], "data_offsets": [8, 14]},
                "__metadata__": {"format": "pt"},
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "s": {"dtype": "I64", "shape": [], "data_offsets": [14, 22]}}  "#,
            22,
        )
        .unwrap();
        assert_eq!(tensors.len(), 3);
        assert_eq!(tensors[2].shape, Vec::<usize>::new());
        assert_eq!(metadata, vec![("format".to_string(), "pt".to_string())]);
    }

    #[test]
    fn invalid_layouts_are_named() {
        let t = |dtype: &str, shape: &str, offsets: &str| {
            format!(
                r#"{{"w": {{"dtype": "{dtype}", "shape": {shape}, "data_offsets": {offsets}}}}}"#
            )
        };
        for (json, data_len, needle) in [
            (t("F32", "[2]", "[0, 8]"), 9, "truncated or padded"),
            (t("F32", "[2]", "[4, 12]"), 12, "should start at 0"),
            (t("F32", "[3]", "[0, 8]"), 8, "needs 12 bytes"),
            (t("F32", "[2]", "[8, 0]"), 8, "should start at 0"),
            (t("Q4", "[2]", "[0, 8]"), 8, "unknown dtype"),
            (t("F32", "[-2]", "[0, 8]"), 8, "non-negative integers"),
            (t("F32", "[4294967296, 4294967296, 4294967296]", "[0, 8]"), 8, "too large"),
            (t("F32", "[2]", "[0]"), 8, "two non-negative integers"),
            ("[1]".to_string(), 0, "must be a JSON object"),
            (r#"{"__metadata__": {"a": 1}}"#.to_string(), 0, "must be a string"),
            (
                r#"{"w": {"shape": [1], "data_offsets": [0, 4]}}"#.to_string(),
                4,
                "missing \"dtype\"",
            ),
        ] {
            let error = header(&json, data_len).unwrap_err().to_string();
            assert!(error.contains(needle), "{json}: {error}");
            assert!(error.starts_with("t.safetensors: "), "{error}");
        }
        let overlapping = r#"{"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                              "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}"#;
        assert!(header(overlapping, 6).unwrap_err().to_string().contains("contiguous"));
    }
}
