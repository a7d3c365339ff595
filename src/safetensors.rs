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

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::json::{Json, JsonError, Reader};

/// The largest header accepted, in bytes (the reference reader's limit).
pub const MAX_HEADER_SIZE: u64 = 100_000_000;

/// The most dimensions a tensor may have. NumPy 2 allows 64 (`NPY_MAXDIMS`), PyTorch fewer;
/// a header claiming more is corrupt, and refusing it keeps a hostile header from
/// holding millions of dimensions in memory.
pub const MAX_RANK: usize = 64;

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

/// A safetensors file whose header has been read and validated, open for reading tensors.
///
/// The bytes come from any `Read + Seek` source: a [`File`] on disk ([`SafeTensors::open`])
/// or a byte slice in memory (`std::io::Cursor<&[u8]>`, [`SafeTensors::from_reader`]).
/// Both go through the same code, so they accept and refuse the same bytes with the same
/// messages.
#[derive(Debug)]
pub struct SafeTensors<R = File> {
    path: PathBuf,
    source: R,
    data_start: u64,
    tensors: Vec<TensorInfo>,
    /// Each tensor's position in `tensors`, by name.
    index: HashMap<String, usize>,
    metadata: Vec<(String, String)>,
}

impl SafeTensors<File> {
    /// Opens `path` and reads and validates its header (no tensor data is read yet).
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, &e))?;
        Self::from_reader(path, file)
    }
}

impl<R> SafeTensors<R> {
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

    /// The entry for `name` (a hash lookup, so loading is linear in the tensor count).
    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }
}

impl<R: Read + Seek> SafeTensors<R> {
    /// Reads and validates the header of the safetensors bytes in `source`, from its start
    /// to its end (no tensor data is read yet). `path` is the name messages give it.
    ///
    /// ```
    /// use gpt2_edu::safetensors::SafeTensors;
    /// use std::{io::Cursor, path::Path};
    /// let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    /// let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    /// bytes.extend_from_slice(header);
    /// bytes.extend([1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()));
    /// let mut file = SafeTensors::from_reader(Path::new("w.safetensors"), Cursor::new(&bytes[..]))?;
    /// assert_eq!(file.read_f32("w", &[2])?, [1.5, -2.0]);
    /// # Ok::<(), gpt2_edu::Error>(())
    /// ```
    pub fn from_reader(path: &Path, mut source: R) -> Result<Self> {
        let io = |e: std::io::Error| Error::io(path, &e);
        let file_len = source.seek(SeekFrom::End(0)).map_err(io)?;
        source.seek(SeekFrom::Start(0)).map_err(io)?;
        if file_len < 8 {
            return Err(Error::invalid_file(
                path,
                format!(
                    "too short for a safetensors file: {file_len} bytes, expected at least the 8-byte header length"
                ),
            ));
        }
        let mut len_bytes = [0u8; 8];
        source.read_exact(&mut len_bytes).map_err(io)?;
        let header_len = u64::from_le_bytes(len_bytes);
        check_header_len(path, header_len, file_len)?;
        let mut header = vec![0u8; header_len as usize];
        source.read_exact(&mut header).map_err(io)?;
        let Header { tensors, metadata } = parse_header(path, &header, file_len - 8 - header_len)?;
        let index = tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        let path = path.to_path_buf();
        Ok(Self { path, source, data_start: 8 + header_len, tensors, index, metadata })
    }

    /// Reads tensor `name`, checks that its shape is `expected_shape`, and converts it to
    /// f32 (row-major, as stored).
    pub fn read_f32(&mut self, name: &str, expected_shape: &[usize]) -> Result<Vec<f32>> {
        let info = self.entry_with_shape(name, expected_shape)?.clone();
        let element_size = self.element_size(&info)?;
        let mut values = Vec::with_capacity(info.byte_len() / element_size);
        self.read_chunks(&info, element_size, |bytes| {
            append_as_f32(&info.dtype, bytes, &mut values)
        })?;
        Ok(values)
    }

    /// [`read_f32`](Self::read_f32) without keeping the tensor: its values, in order, are
    /// handed to `each` a chunk at a time (at most 1 MiB of the file's bytes each), so
    /// that a tensor can be compared with another, say, without a second copy in memory.
    /// The same checks and errors as `read_f32`.
    pub fn read_f32_chunks(
        &mut self,
        name: &str,
        expected_shape: &[usize],
        mut each: impl FnMut(&[f32]),
    ) -> Result<()> {
        let info = self.entry_with_shape(name, expected_shape)?.clone();
        let element_size = self.element_size(&info)?;
        let mut values = Vec::new();
        self.read_chunks(&info, element_size, |bytes| {
            values.clear();
            append_as_f32(&info.dtype, bytes, &mut values);
            each(&values);
        })
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
    /// elements) through a small buffer, handing each chunk of whole elements to `convert`
    /// as it comes: the bytes never exist in memory all at once, so loading holds the f32
    /// weights plus this buffer.
    fn read_chunks(
        &mut self,
        info: &TensorInfo,
        element_size: usize,
        mut convert: impl FnMut(&[u8]),
    ) -> Result<()> {
        const CHUNK_BYTES: usize = 1 << 20; // a multiple of every element size
        debug_assert_eq!(CHUNK_BYTES % element_size, 0);
        let total = info.byte_len();
        let mut chunk = vec![0u8; CHUNK_BYTES.min(total)];
        let path = &self.path;
        self.source
            .seek(SeekFrom::Start(self.data_start + info.data_offsets.0))
            .map_err(|e| Error::io(path, &e))?;
        let mut done = 0;
        while done < total {
            let bytes = &mut chunk[..CHUNK_BYTES.min(total - done)];
            self.source.read_exact(bytes).map_err(|e| Error::io(path, &e))?;
            convert(bytes);
            done += bytes.len();
        }
        Ok(())
    }
}

impl TensorInfo {
    /// Its bytes in the data part: `end - begin` (the header's checks made it
    /// `product(shape) x element size`, within the file).
    fn byte_len(&self) -> usize {
        (self.data_offsets.1 - self.data_offsets.0) as usize
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

/// Why a header is refused: it is not JSON, or it is JSON that does not describe tensors.
enum HeaderError {
    /// Not JSON (the message gets a `header: ` prefix).
    Json(JsonError),
    /// Valid JSON, wrong contents.
    Invalid(String),
}

impl From<JsonError> for HeaderError {
    fn from(error: JsonError) -> Self {
        HeaderError::Json(error)
    }
}

impl From<String> for HeaderError {
    fn from(message: String) -> Self {
        HeaderError::Invalid(message)
    }
}

/// Parses and validates a header (the `n` bytes after the length) for a file whose data
/// part is `data_len` bytes long.
///
/// It is walked with a [`Reader`], keeping only the entries themselves: a few hundred bytes
/// per tensor, so memory stays within a small multiple of the header's size whatever the
/// header holds (an ignored key's value is skipped, never built).
pub fn parse_header(path: &Path, header: &[u8], data_len: u64) -> Result<Header> {
    let bad = |message: String| Error::invalid_file(path, message);
    let text = std::str::from_utf8(header).map_err(|e| bad(format!("header is not UTF-8: {e}")))?;
    let Header { tensors, metadata } = read_entries(text).map_err(|e| match e {
        HeaderError::Json(e) => bad(format!("header: {e}")),
        HeaderError::Invalid(message) => bad(message),
    })?;
    let data_end = validate_layout(&tensors).map_err(bad)?;
    if data_end != data_len {
        return Err(bad(format!(
            "the tensors' data ends at byte {data_end} of the data part, but the file holds {data_len} bytes of data (truncated or padded file?)"
        )));
    }
    Ok(Header { tensors, metadata })
}

/// The header's entries: every tensor's, in file order, and the `__metadata__` pairs.
fn read_entries(text: &str) -> std::result::Result<Header, HeaderError> {
    let mut reader = Reader::new(text);
    if reader.peek_kind() != Some("object") {
        let found = reader.scalar()?.map_or("array", |v| v.kind());
        return Err(format!("header must be a JSON object, found {found}").into());
    }
    let (mut tensors, mut metadata) = (Vec::new(), Vec::new());
    reader.object(|reader, name| {
        if name == "__metadata__" {
            metadata = read_metadata(reader)?;
        } else {
            tensors.push(read_tensor_info(reader, name)?);
        }
        Ok::<(), HeaderError>(())
    })?;
    reader.finish()?;
    Ok(Header { tensors, metadata })
}

/// The `__metadata__` entry: an object whose values are all strings, as pairs in file order.
fn read_metadata(reader: &mut Reader) -> std::result::Result<Vec<(String, String)>, HeaderError> {
    let kind = reader.peek_kind();
    if kind != Some("object") {
        let found = reader.scalar()?.map_or("array", |v| v.kind());
        return Err(format!("__metadata__ must be an object, found {found}").into());
    }
    let mut pairs = Vec::new();
    reader.object(|reader, key| match reader.scalar()? {
        Some(Json::String(value)) => {
            pairs.push((key, value));
            Ok(())
        }
        other => Err(HeaderError::Invalid(format!(
            "__metadata__ value of \"{key}\" must be a string, found {}",
            other.as_ref().map_or("an array or object", Json::kind)
        ))),
    })?;
    Ok(pairs)
}

/// One tensor's entry, `{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}`,
/// with each field's type checked (where its bytes lie is [`validate_layout`]'s job). Other
/// keys are skipped, as the reference reader ignores them.
fn read_tensor_info(
    reader: &mut Reader,
    name: String,
) -> std::result::Result<TensorInfo, HeaderError> {
    if reader.peek_kind() != Some("object") {
        reader.skip()?;
        return Err(format!(
            "tensor `{name}`: expected an object of dtype, shape and data_offsets"
        )
        .into());
    }
    let (mut dtype, mut shape, mut offsets) = (None, None, None);
    reader.object(|reader, key| {
        match key.as_str() {
            "dtype" => dtype = Some(read_dtype(reader, &name)?),
            "shape" => shape = Some(read_integers(reader, &name, "shape", MAX_RANK)?),
            "data_offsets" => offsets = Some(read_integers(reader, &name, "data_offsets", 2)?),
            _ => reader.skip()?,
        }
        Ok::<(), HeaderError>(())
    })?;
    let missing = |key: &str| HeaderError::Invalid(format!("tensor `{name}`: missing \"{key}\""));
    let dtype = dtype.ok_or_else(|| missing("dtype"))?;
    let shape = shape.ok_or_else(|| missing("shape"))?;
    let data_offsets = match offsets.ok_or_else(|| missing("data_offsets"))?[..] {
        [begin, end] => (begin, end),
        _ => {
            return Err(format!(
                "tensor `{name}`: \"data_offsets\" must be two non-negative integers [begin, end]"
            )
            .into());
        }
    };
    let shape = shape
        .into_iter()
        .map(usize::try_from)
        .collect::<std::result::Result<Vec<usize>, _>>()
        .map_err(|_| format!("tensor `{name}`: a dimension of \"shape\" does not fit in usize"))?;
    Ok(TensorInfo { name, dtype, shape, data_offsets })
}

/// A tensor's `"dtype"`: a string naming a safetensors dtype.
fn read_dtype(reader: &mut Reader, name: &str) -> std::result::Result<String, HeaderError> {
    let Some(Json::String(dtype)) = reader.scalar()? else {
        return Err(format!("tensor `{name}`: \"dtype\" must be a string").into());
    };
    if dtype_bits(&dtype).is_none() {
        return Err(format!("tensor `{name}`: unknown dtype \"{dtype}\"").into());
    }
    Ok(dtype)
}

/// A tensor's `"shape"` or `"data_offsets"`: an array of at most `max` non-negative
/// integers. Reading stops at the first element past `max`, so a hostile array of millions
/// is refused having kept `max` numbers.
fn read_integers(
    reader: &mut Reader,
    name: &str,
    key: &str,
    max: usize,
) -> std::result::Result<Vec<u64>, HeaderError> {
    let not_integers = || format!("tensor `{name}`: \"{key}\" must hold non-negative integers");
    if reader.peek_kind() != Some("array") {
        reader.skip()?;
        return Err(format!("tensor `{name}`: \"{key}\" must be an array").into());
    }
    let mut values = Vec::new();
    reader.array(|reader| {
        if values.len() == max {
            return Err(HeaderError::Invalid(match key {
                "shape" => format!(
                    "tensor `{name}`: \"shape\" has more than {MAX_RANK} dimensions (corrupt header?)"
                ),
                _ => format!(
                    "tensor `{name}`: \"data_offsets\" must be two non-negative integers [begin, end]"
                ),
            }));
        }
        let value = reader.scalar()?.as_ref().and_then(Json::as_u64).ok_or_else(not_integers)?;
        values.push(value);
        Ok(())
    })?;
    Ok(values)
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

    #[test]
    fn a_tensor_read_in_chunks_is_the_tensor_read_whole() {
        // 300,000 F32s (1.2 MB) and 600,000 F16s (1.2 MB): each more than one 1 MiB read.
        let (n32, n16) = (300_000usize, 600_000usize);
        let header = format!(
            r#"{{"a":{{"dtype":"F32","shape":[{n32}],"data_offsets":[0,{}]}},"b":{{"dtype":"F16","shape":[{n16}],"data_offsets":[{},{}]}}}}"#,
            4 * n32,
            4 * n32,
            4 * n32 + 2 * n16
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend((0..n32).flat_map(|i| (i as f32 * 0.5).to_le_bytes()));
        bytes.extend((0..n16).flat_map(|i| (0x3C00u16 + (i % 1000) as u16).to_le_bytes()));
        let mut file =
            SafeTensors::from_reader(Path::new("t"), std::io::Cursor::new(&bytes)).unwrap();
        for (name, n) in [("a", n32), ("b", n16)] {
            let whole = file.read_f32(name, &[n]).unwrap();
            let (mut chunks, mut joined) = (0, Vec::new());
            file.read_f32_chunks(name, &[n], |chunk| {
                chunks += 1;
                joined.extend_from_slice(chunk);
            })
            .unwrap();
            assert_eq!((chunks, joined.len()), (2, n), "{name}");
            assert_eq!(joined, whole, "{name}");
        }
        assert_eq!(file.read_f32("a", &[n32]).unwrap()[..3], [0.0, 0.5, 1.0]);
        let wrong = file.read_f32_chunks("a", &[n32, 1], |_| panic!("nothing is read"));
        assert!(matches!(wrong, Err(Error::ShapeMismatch { .. })));
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
