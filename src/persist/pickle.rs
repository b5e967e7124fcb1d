//! A plain pickle (protocol 2) of a dict of strings and lists of strings, so Python tools can read a
//! bundle's `manifest.dill` with `pickle`/`dill` without executing anything of ours.

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
