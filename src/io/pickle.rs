//! Just enough of Python's pickle format, in both directions, never executing anything.
//!
//! Reading: the `_metadata` key of the reference's NPZ files is a 0-d object array, which numpy stores
//! as a pickle, holding a JSON string. We walk the opcodes, collecting the text strings, and reject any
//! opcode we do not know.
//!
//! Writing: a plain pickle (protocol 2) of a dict of strings and lists of strings, so Python tools can
//! read a bundle's `manifest.dill` with `pickle`/`dill`.

use crate::io::FormatError;

/// Every text string in the pickle stream, in order.
pub fn strings(bytes: &[u8]) -> Result<Vec<String>, FormatError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    let take = |pos: &mut usize, n: usize| -> Result<&[u8], FormatError> {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| FormatError::from("pickle is truncated".to_string()))?;
        let slice = &bytes[*pos..end];
        *pos = end;
        Ok(slice)
    };
    let len_le = |b: &[u8]| -> usize {
        b.iter().rev().fold(0usize, |acc, &x| {
            acc.saturating_mul(256).saturating_add(x as usize)
        })
    };
    loop {
        let op = *take(&mut pos, 1)?.first().expect("one byte");
        match op {
            b'.' => return Ok(out),
            // No argument.
            b'(' | b't' | 0x85 | 0x86 | 0x87 | b')' | b']' | b'}' | b'a' | b'e' | b's' | b'u'
            | 0x88 | 0x89 | b'N' | b'R' | b'b' | 0x81 | 0x93 | 0x94 | b'0' | b'2' | b'l' | b'd' => {
            }
            0x80 | b'q' | b'h' | b'K' => {
                take(&mut pos, 1)?;
            }
            b'M' => {
                take(&mut pos, 2)?;
            }
            b'r' | b'j' | b'J' => {
                take(&mut pos, 4)?;
            }
            0x95 | b'G' => {
                take(&mut pos, 8)?;
            }
            0x8a => {
                let n = take(&mut pos, 1)?[0] as usize;
                take(&mut pos, n)?;
            }
            // GLOBAL: module and name, each ending in a newline.
            b'c' => {
                for _ in 0..2 {
                    let rest = &bytes[pos..];
                    let nl = rest
                        .iter()
                        .position(|&b| b == b'\n')
                        .ok_or_else(|| FormatError::from("pickle is truncated".to_string()))?;
                    pos += nl + 1;
                }
            }
            0x8c | b'X' | 0x8d => {
                let width = match op {
                    0x8c => 1,
                    b'X' => 4,
                    _ => 8,
                };
                let n = len_le(take(&mut pos, width)?);
                let text = take(&mut pos, n)?;
                out.push(
                    String::from_utf8(text.to_vec()).map_err(|_| "pickle string is not UTF-8")?,
                );
            }
            b'C' | b'U' | b'B' | b'T' | 0x8e => {
                let width = match op {
                    b'C' | b'U' => 1,
                    b'B' | b'T' => 4,
                    _ => 8,
                };
                let n = len_le(take(&mut pos, width)?);
                take(&mut pos, n)?;
            }
            other => {
                return Err(FormatError::from(format!(
                    "unsupported pickle opcode 0x{other:02x} at byte {}",
                    pos - 1
                )))
            }
        }
    }
}

pub enum PickleValue {
    Str(String),
    List(Vec<String>),
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'X'); // BINUNICODE: 4-byte little-endian length, UTF-8
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The pickle of `{key: value, ...}` in the given order.
pub fn dict(entries: &[(&str, PickleValue)]) -> Vec<u8> {
    let mut out = vec![0x80, 2, b'}']; // PROTO 2, EMPTY_DICT
    if !entries.is_empty() {
        out.push(b'('); // MARK
        for (key, value) in entries {
            push_str(&mut out, key);
            match value {
                PickleValue::Str(s) => push_str(&mut out, s),
                PickleValue::List(items) => {
                    out.push(b']'); // EMPTY_LIST
                    if !items.is_empty() {
                        out.push(b'(');
                        for item in items {
                            push_str(&mut out, item);
                        }
                        out.push(b'e'); // APPENDS
                    }
                }
            }
        }
        out.push(b'u'); // SETITEMS
    }
    out.push(b'.'); // STOP
    out
}

#[cfg(test)]
mod tests {
    use super::strings;

    #[test]
    fn walks_a_numpy_object_array_pickle() {
        // pickle.dumps(np.array('{"a": 1}', dtype=object), protocol=3) has this shape.
        let mut p = vec![0x80, 3, b'c'];
        p.extend_from_slice(b"numpy.core.multiarray\n_reconstruct\nq\x00");
        p.extend_from_slice(
            b"cnumpy\nndarray\nq\x01K\x00\x85q\x02C\x01bq\x03\x87q\x04Rq\x05(K\x01)",
        );
        p.extend_from_slice(b"cnumpy\ndtype\nq\x06X\x02\x00\x00\x00O8q\x07\x89\x88\x87q\x08Rq\x09(K\x03X\x01\x00\x00\x00|q\x0aNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tq\x0bb\x89]q\x0c");
        p.extend_from_slice(b"X\x08\x00\x00\x00{\"a\": 1}q\x0da");
        p.extend_from_slice(b"tq\x0eb.");
        assert_eq!(strings(&p).unwrap(), vec!["O8", "|", "{\"a\": 1}"]);
    }

    #[test]
    fn truncated_and_unknown_pickles_are_errors() {
        assert!(strings(&[0x80, 3, b'X', 9, 0, 0, 0, b'a'])
            .unwrap_err()
            .0
            .contains("truncated"));
        assert!(strings(&[0x80, 3, 0xff])
            .unwrap_err()
            .0
            .contains("unsupported pickle opcode"));
    }
}
