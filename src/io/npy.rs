//! The .npy format (versions 1, 2 and 3): header parsing and writing, dtype descriptors, and decoding of
//! element bytes of any supported dtype and byte order into f32/f64/complex values.

use crate::io::FormatError;

const MAGIC: &[u8] = b"\x93NUMPY";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Float,
    Complex,
    Int,
    UInt,
    Bool,
    Unicode,
    Object,
}

/// A numpy dtype descriptor such as `<f4`, `>c16`, `|b1`, `<U12`, `|O`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyDtype {
    pub kind: Kind,
    /// Bytes per element.
    pub size: usize,
    pub big_endian: bool,
    pub descr: String,
}

impl NpyDtype {
    pub fn parse(descr: &str) -> Result<Self, FormatError> {
        let mut chars = descr.chars();
        let (order, rest) = match chars.next() {
            Some(c @ ('<' | '>' | '|' | '=')) => (c, chars.as_str()),
            _ => ('|', descr),
        };
        let mut rest_chars = rest.chars();
        let kind_char = rest_chars
            .next()
            .ok_or_else(|| FormatError::from(format!("empty dtype '{descr}'")))?;
        let digits = rest_chars.as_str();
        let count: usize = if digits.is_empty() && kind_char == 'O' {
            8
        } else {
            digits
                .parse()
                .map_err(|_| FormatError::from(format!("unsupported dtype '{descr}'")))?
        };
        let (kind, size) = match kind_char {
            'f' if matches!(count, 2 | 4 | 8) => (Kind::Float, count),
            'c' if matches!(count, 8 | 16) => (Kind::Complex, count),
            'i' if matches!(count, 1 | 2 | 4 | 8) => (Kind::Int, count),
            'u' if matches!(count, 1 | 2 | 4 | 8) => (Kind::UInt, count),
            'b' if count == 1 => (Kind::Bool, 1),
            'U' => (
                Kind::Unicode,
                count
                    .checked_mul(4)
                    .ok_or_else(|| FormatError::from("absurd unicode width".to_string()))?,
            ),
            'O' => (Kind::Object, 8),
            _ => return Err(FormatError::from(format!("unsupported dtype '{descr}'"))),
        };
        Ok(Self {
            kind,
            size,
            big_endian: order == '>',
            descr: descr.to_string(),
        })
    }

    pub fn little(kind: Kind, size: usize) -> Self {
        let code = match kind {
            Kind::Float => 'f',
            Kind::Complex => 'c',
            Kind::Int => 'i',
            Kind::UInt => 'u',
            Kind::Bool => 'b',
            Kind::Unicode => 'U',
            Kind::Object => 'O',
        };
        let count = if kind == Kind::Unicode {
            size / 4
        } else {
            size
        };
        let order = if size == 1 { '|' } else { '<' };
        Self {
            kind,
            size,
            big_endian: false,
            descr: format!("{order}{code}{count}"),
        }
    }

    pub fn is_real_number(&self) -> bool {
        matches!(self.kind, Kind::Float | Kind::Int | Kind::UInt | Kind::Bool)
    }
}

/// A parsed .npy header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    pub dtype: NpyDtype,
    pub shape: Vec<usize>,
    pub fortran_order: bool,
    /// Bytes from the start of the .npy to the first data byte.
    pub data_offset: usize,
}

impl NpyHeader {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of array data, or an error when the shape overflows.
    pub fn data_bytes(&self) -> Result<u64, FormatError> {
        self.shape
            .iter()
            .try_fold(self.dtype.size as u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| FormatError::from(format!("shape {:?} overflows", self.shape)))
    }

    /// Parse the header at the start of `bytes` (at least the whole header must be present).
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < 10 || &bytes[..6] != MAGIC {
            return Err("not a .npy array (bad magic)".into());
        }
        let major = bytes[6];
        let (len_bytes, start) = match major {
            1 => (2, 10),
            2 | 3 => (4, 12),
            v => {
                return Err(FormatError::from(format!(
                    ".npy format version {v} is not supported"
                )))
            }
        };
        if bytes.len() < start {
            return Err("truncated .npy header".into());
        }
        let header_len = if len_bytes == 2 {
            u16::from_le_bytes([bytes[8], bytes[9]]) as usize
        } else {
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
        };
        let end = start
            .checked_add(header_len)
            .ok_or_else(|| FormatError::from("absurd header length".to_string()))?;
        if bytes.len() < end {
            return Err(FormatError::from(format!(
                "truncated .npy header: needs {end} bytes, has {}",
                bytes.len()
            )));
        }
        let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
        let descr = dict_value(text, "descr")?;
        let descr = descr
            .strip_prefix('\'')
            .and_then(|d| d.strip_suffix('\''))
            .ok_or_else(|| {
                FormatError::from(format!("structured dtype {descr} is not supported"))
            })?;
        let dtype = NpyDtype::parse(descr)?;
        let fortran_order = match dict_value(text, "fortran_order")?.as_str() {
            "True" => true,
            "False" => false,
            other => return Err(FormatError::from(format!("bad fortran_order '{other}'"))),
        };
        let shape_text = dict_value(text, "shape")?;
        let inner = shape_text
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| FormatError::from(format!("bad shape '{shape_text}'")))?;
        let shape = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.trim_end_matches('L')
                    .parse::<usize>()
                    .map_err(|_| FormatError::from(format!("bad shape '{shape_text}'")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let header = Self {
            dtype,
            shape,
            fortran_order,
            data_offset: end,
        };
        header.data_bytes()?;
        Ok(header)
    }

    /// The header bytes numpy would write for this array (version 1 when it fits, else 2), padded so that
    /// the data starts at a multiple of 64 bytes.
    pub fn encode(dtype: &NpyDtype, shape: &[usize]) -> Vec<u8> {
        let shape_text = match shape {
            [d] => format!("({d},)"),
            _ => format!(
                "({})",
                shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let dict = format!(
            "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
            dtype.descr
        );
        for (major, prefix) in [(1u8, 10usize), (2, 12)] {
            let total = (prefix + dict.len() + 1).div_ceil(64) * 64;
            let header_len = total - prefix;
            if major == 1 && header_len > u16::MAX as usize {
                continue;
            }
            let mut out = Vec::with_capacity(total);
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&[major, 0]);
            if major == 1 {
                out.extend_from_slice(&(header_len as u16).to_le_bytes());
            } else {
                out.extend_from_slice(&(header_len as u32).to_le_bytes());
            }
            out.extend_from_slice(dict.as_bytes());
            out.resize(total - 1, b' ');
            out.push(b'\n');
            return out;
        }
        unreachable!("version 2 headers hold 4 GiB")
    }
}

/// The raw text of `key`'s value in a python dict literal (strings keep their quotes).
fn dict_value(text: &str, key: &str) -> Result<String, FormatError> {
    let needle_a = format!("'{key}'");
    let needle_b = format!("\"{key}\"");
    let pos = text
        .find(&needle_a)
        .or_else(|| text.find(&needle_b))
        .ok_or_else(|| FormatError::from(format!("header has no '{key}'")))?;
    let after = text[pos + key.len() + 2..].trim_start();
    let after = after
        .strip_prefix(':')
        .ok_or_else(|| FormatError::from(format!("bad header near '{key}'")))?
        .trim_start();
    let end = match after.chars().next() {
        Some('(') => after.find(')').map(|i| i + 1),
        Some('[') => after.find(']').map(|i| i + 1),
        Some(q @ ('\'' | '"')) => after[1..].find(q).map(|i| i + 2),
        _ => after.find([',', '}']),
    }
    .ok_or_else(|| FormatError::from(format!("bad header value for '{key}'")))?;
    Ok(after[..end].trim().to_string())
}

fn word<const W: usize>(bytes: &[u8], big: bool) -> [u8; W] {
    let mut w = [0u8; W];
    w.copy_from_slice(&bytes[..W]);
    if big {
        w.reverse();
    }
    w
}

/// One real element as f64 (floats, integers, booleans).
pub fn real_at(dtype: &NpyDtype, b: &[u8]) -> f64 {
    let big = dtype.big_endian;
    match (dtype.kind, dtype.size) {
        (Kind::Float, 2) => f16_to_f64(u16::from_le_bytes(word(b, big))),
        (Kind::Float, 4) => f32::from_le_bytes(word(b, big)) as f64,
        (Kind::Float, 8) => f64::from_le_bytes(word(b, big)),
        (Kind::Int, 1) => b[0] as i8 as f64,
        (Kind::Int, 2) => i16::from_le_bytes(word(b, big)) as f64,
        (Kind::Int, 4) => i32::from_le_bytes(word(b, big)) as f64,
        (Kind::Int, 8) => i64::from_le_bytes(word(b, big)) as f64,
        (Kind::UInt, 1) | (Kind::Bool, 1) => b[0] as f64,
        (Kind::UInt, 2) => u16::from_le_bytes(word(b, big)) as f64,
        (Kind::UInt, 4) => u32::from_le_bytes(word(b, big)) as f64,
        (Kind::UInt, 8) => u64::from_le_bytes(word(b, big)) as f64,
        _ => f64::NAN,
    }
}

/// One complex element as (re, im) in f64; real dtypes give im = 0.
pub fn complex_at(dtype: &NpyDtype, b: &[u8]) -> (f64, f64) {
    let big = dtype.big_endian;
    match (dtype.kind, dtype.size) {
        (Kind::Complex, 8) => (
            f32::from_le_bytes(word(b, big)) as f64,
            f32::from_le_bytes(word(&b[4..], big)) as f64,
        ),
        (Kind::Complex, 16) => (
            f64::from_le_bytes(word(b, big)),
            f64::from_le_bytes(word(&b[8..], big)),
        ),
        _ => (real_at(dtype, b), 0.0),
    }
}

fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    match exp {
        0 => sign * frac * 2f64.powi(-24),
        31 if frac == 0.0 => sign * f64::INFINITY,
        31 => f64::NAN,
        _ => sign * (1.0 + frac / 1024.0) * 2f64.powi(exp - 15),
    }
}

/// Decode little-endian f32 quickly, anything else element by element, into `out` (C order as stored).
pub fn decode_f32(dtype: &NpyDtype, src: &[u8], out: &mut [f32]) {
    if dtype.kind == Kind::Float && dtype.size == 4 && !dtype.big_endian {
        for (o, c) in out.iter_mut().zip(src.chunks_exact(4)) {
            *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
    } else {
        for (o, c) in out.iter_mut().zip(src.chunks_exact(dtype.size)) {
            *o = real_at(dtype, c) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_parse() {
        assert_eq!(
            NpyDtype::parse("<f4").unwrap(),
            NpyDtype::little(Kind::Float, 4)
        );
        assert!(NpyDtype::parse(">c16").unwrap().big_endian);
        assert_eq!(NpyDtype::parse("<U5").unwrap().size, 20);
        assert_eq!(NpyDtype::parse("|O").unwrap().kind, Kind::Object);
        assert!(NpyDtype::parse("<V8").is_err());
    }

    #[test]
    fn header_round_trips() {
        let dtype = NpyDtype::little(Kind::Complex, 8);
        let bytes = NpyHeader::encode(&dtype, &[3, 64, 64]);
        assert_eq!(bytes.len() % 64, 0);
        let h = NpyHeader::parse(&bytes).unwrap();
        assert_eq!(
            (h.dtype, h.shape, h.fortran_order, h.data_offset),
            (dtype, vec![3, 64, 64], false, bytes.len())
        );
        let scalar =
            NpyHeader::parse(&NpyHeader::encode(&NpyDtype::little(Kind::Unicode, 8), &[])).unwrap();
        assert!(scalar.shape.is_empty() && scalar.len() == 1);
    }

    #[test]
    fn absurd_and_broken_headers_are_errors() {
        let bytes = NpyHeader::encode(
            &NpyDtype::little(Kind::Float, 8),
            &[99_999_999_999, 99_999_999_999],
        );
        assert!(NpyHeader::parse(&bytes)
            .unwrap_err()
            .0
            .contains("overflows"));
        assert!(NpyHeader::parse(b"\x93NUMPY\x01\x00\xff\x00{")
            .unwrap_err()
            .0
            .contains("truncated"));
        assert!(NpyHeader::parse(b"PK\x03\x04")
            .unwrap_err()
            .0
            .contains("magic"));
    }

    #[test]
    fn half_floats_decode() {
        assert_eq!(f16_to_f64(0x3c00), 1.0);
        assert_eq!(f16_to_f64(0xc000), -2.0);
        assert!(f16_to_f64(0x7e00).is_nan());
    }
}
