//! Just enough of Python's pickle format, in both directions, never executing anything.
//!
//! Reading: [`parse`] runs the pickle machine over the opcodes but, where Python would import and call,
//! records the call instead ([`Value::Global`], [`Value::Call`], [`Value::Build`]). What comes back is
//! the data the pickle describes, from which [`Value::ndarray`] recovers numpy arrays (also inside
//! dill's and TensorFlow's wrappers) and [`Value::number`] numpy scalars. It reads the `_metadata` key
//! of the reference's NPZ files (a pickled 0-d object array holding a JSON string) and the reference
//! bundles' `params.dill`. Opcodes it does not know, text-protocol strings, persistent ids and
//! out-of-band buffers are errors.
//!
//! Writing: a plain pickle (protocol 2) of a dict of strings and lists of strings, so Python tools can
//! read a bundle's `manifest.dill` with `pickle`/`dill`.

use std::collections::HashMap;

use crate::io::FormatError;

/// A pickled value, with every import and call left as data.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer beyond i64, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Set(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// `module.name`, not imported.
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)` (REDUCE, NEWOBJ, OBJ, INST), not called.
    Call {
        callable: Box<Value>,
        args: Box<Value>,
    },
    /// `object.__setstate__(state)` (BUILD), not run.
    Build {
        object: Box<Value>,
        state: Box<Value>,
    },
}

/// A numpy array recovered from a pickle.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// numpy's type string with its byte order, e.g. "<c8", "<f4", "|b1".
    pub dtype: String,
    pub shape: Vec<usize>,
    pub fortran_order: bool,
    pub data: Vec<u8>,
}

/// Nesting beyond this is refused (a self-referencing pickle would otherwise never end).
const MAX_DEPTH: usize = 64;

impl Value {
    /// The value of `key` in a dict with string keys.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A bool, or an int 0 / 1.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }

    /// A Python int or float, or a numpy scalar of a numeric type.
    pub fn number(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Call { callable, args } if is_global(callable, &NUMPY_MULTIARRAY, "scalar") => {
                match args.as_ref() {
                    Value::Tuple(a) if a.len() == 2 => {
                        scalar(&dtype_string(&a[0])?, &raw_bytes(&a[1])?)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The numpy array this value pickles, if it is one: numpy's own reduction, dill's
    /// `_create_array`, numpy's protocol-5 `_frombuffer`, or a TensorFlow tensor wrapping one.
    pub fn ndarray(&self) -> Option<NdArray> {
        match self {
            Value::Build { object, state } => match object.as_ref() {
                Value::Call { callable, .. } if is_reconstruct(callable) => array_state(state),
                _ => None,
            },
            Value::Call { callable, args } => {
                let Value::Tuple(a) = args.as_ref() else {
                    return None;
                };
                if is_global(callable, &["dill._dill"], "_create_array") && a.len() >= 3 {
                    return is_reconstruct(&a[0]).then(|| array_state(&a[2])).flatten();
                }
                if is_global(callable, &NUMPY_NUMERIC, "_frombuffer") && a.len() == 4 {
                    let (Some(data), Some(dtype), Value::Tuple(shape), Value::Str(order)) =
                        (raw_bytes(&a[0]), dtype_string(&a[1]), &a[2], &a[3])
                    else {
                        return None;
                    };
                    return Some(NdArray {
                        dtype,
                        shape: dims(shape)?,
                        fortran_order: order == "F",
                        data,
                    });
                }
                if let Value::Global { module, .. } = callable.as_ref() {
                    if module.starts_with("tensorflow") && a.len() == 1 {
                        return a[0].ndarray();
                    }
                }
                None
            }
            _ => None,
        }
    }

    /// Every text string in the value, depth first.
    pub fn strings(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_strings(&mut out);
        out
    }

    fn collect_strings<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Value::Str(s) => out.push(s),
            Value::List(v) | Value::Tuple(v) | Value::Set(v) => {
                v.iter().for_each(|x| x.collect_strings(out))
            }
            Value::Dict(items) => items.iter().for_each(|(k, v)| {
                k.collect_strings(out);
                v.collect_strings(out);
            }),
            Value::Call { callable, args } => {
                callable.collect_strings(out);
                args.collect_strings(out);
            }
            Value::Build { object, state } => {
                object.collect_strings(out);
                state.collect_strings(out);
            }
            _ => {}
        }
    }
}

const NUMPY_MULTIARRAY: [&str; 2] = ["numpy.core.multiarray", "numpy._core.multiarray"];
const NUMPY_NUMERIC: [&str; 2] = ["numpy.core.numeric", "numpy._core.numeric"];

fn is_global(value: &Value, modules: &[&str], wanted: &str) -> bool {
    matches!(value, Value::Global { module, name } if modules.contains(&module.as_str()) && name == wanted)
}

fn is_reconstruct(value: &Value) -> bool {
    is_global(value, &NUMPY_MULTIARRAY, "_reconstruct")
}

fn dims(shape: &[Value]) -> Option<Vec<usize>> {
    shape
        .iter()
        .map(|d| match d {
            Value::Int(i) => usize::try_from(*i).ok(),
            _ => None,
        })
        .collect()
}

/// "<c8" from a pickled `numpy.dtype('c8', False, True)` with its BUILD state `(3, '<', ...)`.
fn dtype_string(value: &Value) -> Option<String> {
    let Value::Build { object, state } = value else {
        return None;
    };
    let Value::Call { callable, args } = object.as_ref() else {
        return None;
    };
    if !matches!(callable.as_ref(), Value::Global { module, name } if module == "numpy" && name == "dtype")
    {
        return None;
    }
    let (Value::Tuple(args), Value::Tuple(state)) = (args.as_ref(), state.as_ref()) else {
        return None;
    };
    let code = args.first()?.as_str()?;
    let order = state.get(1)?.as_str()?;
    Some(format!("{order}{code}"))
}

/// numpy's `__setstate__` tuple `(version, shape, dtype, is_fortran, raw bytes)`.
fn array_state(state: &Value) -> Option<NdArray> {
    let Value::Tuple(s) = state else { return None };
    let [_, Value::Tuple(shape), dtype, fortran, data] = s.as_slice() else {
        return None;
    };
    Some(NdArray {
        dtype: dtype_string(dtype)?,
        shape: dims(shape)?,
        fortran_order: fortran.as_bool()?,
        data: raw_bytes(data)?,
    })
}

/// Bytes, or protocol 2's spelling of them: `_codecs.encode(text, 'latin1')`.
fn raw_bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::Bytes(b) => Some(b.clone()),
        Value::Call { callable, args } if is_global(callable, &["_codecs"], "encode") => {
            match args.as_ref() {
                Value::Tuple(a) if a.len() == 2 && a[1].as_str() == Some("latin1") => a[0]
                    .as_str()?
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).ok())
                    .collect(),
                _ => None,
            }
        }
        _ => None,
    }
}

fn scalar(dtype: &str, bytes: &[u8]) -> Option<f64> {
    let little = !dtype.starts_with('>');
    let fixed = |n: usize| -> Option<[u8; 8]> {
        if bytes.len() != n {
            return None;
        }
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(bytes);
        if !little {
            b[..n].reverse();
        }
        Some(b)
    };
    match dtype.trim_start_matches(['<', '>', '=', '|']) {
        "f8" => fixed(8).map(f64::from_le_bytes),
        "f4" => fixed(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
        "i8" => fixed(8).map(|b| i64::from_le_bytes(b) as f64),
        "i4" => fixed(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
        "u8" => fixed(8).map(|b| u64::from_le_bytes(b) as f64),
        "u4" => fixed(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64),
        "b1" => fixed(1).map(|b| f64::from(b[0])),
        _ => None,
    }
}

/// Every text string in the pickle, depth first (the strings of a pickled object array).
pub fn strings(bytes: &[u8]) -> Result<Vec<String>, FormatError> {
    Ok(parse(bytes)?
        .strings()
        .into_iter()
        .map(String::from)
        .collect())
}

/// A value under construction: containers hold arena indices, so that a memoised container that is
/// filled later (EMPTY_DICT, MEMOIZE, ..., SETITEMS) is seen filled wherever it is referenced.
enum Node {
    Leaf(Value),
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Set(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Call(usize, usize),
    Build(usize, usize),
}

enum Slot {
    Mark,
    Node(usize),
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    arena: Vec<Node>,
    stack: Vec<Slot>,
    memo: HashMap<usize, usize>,
}

fn little_endian(b: &[u8]) -> usize {
    b.iter().rev().fold(0usize, |acc, &x| {
        acc.saturating_mul(256).saturating_add(x as usize)
    })
}

impl<'a> Machine<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| FormatError::from("pickle is truncated"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn line(&mut self) -> Result<&'a str, FormatError> {
        let rest = &self.bytes[self.pos..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| FormatError::from("pickle is truncated"))?;
        self.pos += nl + 1;
        std::str::from_utf8(&rest[..nl]).map_err(|_| "pickle text line is not UTF-8".into())
    }

    fn sized(&mut self, width: usize) -> Result<&'a [u8], FormatError> {
        let n = little_endian(self.take(width)?);
        self.take(n)
    }

    fn push(&mut self, node: Node) {
        self.arena.push(node);
        self.stack.push(Slot::Node(self.arena.len() - 1));
    }

    fn leaf(&mut self, value: Value) {
        self.push(Node::Leaf(value));
    }

    fn pop(&mut self) -> Result<usize, FormatError> {
        match self.stack.pop() {
            Some(Slot::Node(i)) => Ok(i),
            Some(Slot::Mark) => Err("pickle pops a mark where a value belongs".into()),
            None => Err("pickle pops an empty stack".into()),
        }
    }

    fn top(&self) -> Result<usize, FormatError> {
        match self.stack.last() {
            Some(Slot::Node(i)) => Ok(*i),
            _ => Err("pickle needs a value on the stack".into()),
        }
    }

    /// The values above the topmost mark, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<usize>, FormatError> {
        let mark = self
            .stack
            .iter()
            .rposition(|s| matches!(s, Slot::Mark))
            .ok_or_else(|| FormatError::from("pickle has no mark to pop to"))?;
        let items = self
            .stack
            .drain(mark + 1..)
            .map(|s| match s {
                Slot::Node(i) => i,
                Slot::Mark => unreachable!("the topmost mark is at `mark`"),
            })
            .collect();
        self.stack.pop();
        Ok(items)
    }

    fn text(&mut self, width: usize) -> Result<(), FormatError> {
        let raw = self.sized(width)?;
        let s = String::from_utf8(raw.to_vec()).map_err(|_| "pickle string is not UTF-8")?;
        self.leaf(Value::Str(s));
        Ok(())
    }

    fn bytes_leaf(&mut self, width: usize) -> Result<(), FormatError> {
        let raw = self.sized(width)?.to_vec();
        self.leaf(Value::Bytes(raw));
        Ok(())
    }

    fn tuple_of(&mut self, n: usize) -> Result<(), FormatError> {
        let mut items = (0..n).map(|_| self.pop()).collect::<Result<Vec<_>, _>>()?;
        items.reverse();
        self.push(Node::Tuple(items));
        Ok(())
    }

    fn extend_list(&mut self, items: Vec<usize>) -> Result<(), FormatError> {
        let target = self.top()?;
        match &mut self.arena[target] {
            Node::List(v) | Node::Set(v) => {
                v.extend(items);
                Ok(())
            }
            _ => Err("pickle appends to something that is not a list or set".into()),
        }
    }

    fn set_items(&mut self, items: Vec<usize>) -> Result<(), FormatError> {
        if !items.len().is_multiple_of(2) {
            return Err("pickle sets a dict item without a value".into());
        }
        let target = self.top()?;
        match &mut self.arena[target] {
            Node::Dict(d) => {
                d.extend(items.chunks_exact(2).map(|kv| (kv[0], kv[1])));
                Ok(())
            }
            _ => Err("pickle sets items of something that is not a dict".into()),
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.leaf(Value::Global {
            module: module.to_string(),
            name: name.to_string(),
        });
    }

    fn memo_put(&mut self, key: usize) -> Result<(), FormatError> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: usize) -> Result<(), FormatError> {
        let i = *self.memo.get(&key).ok_or_else(|| {
            FormatError::from(format!("pickle refers to memo {key}, never stored"))
        })?;
        self.stack.push(Slot::Node(i));
        Ok(())
    }

    fn step(&mut self, op: u8) -> Result<bool, FormatError> {
        match op {
            b'.' => return Ok(true),
            0x80 => {
                self.take(1)?;
            }
            0x95 => {
                self.take(8)?;
            }
            b'(' => self.stack.push(Slot::Mark),
            b'0' => {
                self.stack.pop();
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let top = self.top()?;
                self.stack.push(Slot::Node(top));
            }
            b'N' => self.leaf(Value::None),
            0x88 => self.leaf(Value::Bool(true)),
            0x89 => self.leaf(Value::Bool(false)),
            b'K' => {
                let v = self.take(1)?[0];
                self.leaf(Value::Int(v.into()));
            }
            b'M' => {
                let b = self.take(2)?;
                self.leaf(Value::Int(u16::from_le_bytes([b[0], b[1]]).into()));
            }
            b'J' => {
                let b = self.take(4)?;
                self.leaf(Value::Int(
                    i32::from_le_bytes([b[0], b[1], b[2], b[3]]).into(),
                ));
            }
            0x8a | 0x8b => {
                let raw = self.sized(if op == 0x8a { 1 } else { 4 })?;
                let value = if raw.len() <= 8 {
                    let fill = if raw.last().is_some_and(|b| b & 0x80 != 0) {
                        0xff
                    } else {
                        0
                    };
                    let mut b = [fill; 8];
                    b[..raw.len()].copy_from_slice(raw);
                    Value::Int(i64::from_le_bytes(b))
                } else {
                    Value::BigInt(raw.to_vec())
                };
                self.leaf(value);
            }
            b'I' | b'L' => {
                let line = self.line()?;
                let digits = line.trim_end_matches('L');
                let value = match digits {
                    "01" if op == b'I' => Value::Bool(true),
                    "00" if op == b'I' => Value::Bool(false),
                    _ => Value::Int(digits.parse().map_err(|_| {
                        FormatError::from(format!("pickle integer '{line}' is not an i64"))
                    })?),
                };
                self.leaf(value);
            }
            b'G' => {
                let b = self.take(8)?;
                self.leaf(Value::Float(f64::from_be_bytes(
                    b.try_into().expect("8 bytes"),
                )));
            }
            b'F' => {
                let line = self.line()?;
                let v = line.parse().map_err(|_| {
                    FormatError::from(format!("pickle float '{line}' is not a number"))
                })?;
                self.leaf(Value::Float(v));
            }
            0x8c => self.text(1)?,
            b'X' => self.text(4)?,
            0x8d => self.text(8)?,
            b'U' | b'C' => self.bytes_leaf(1)?,
            b'T' | b'B' => self.bytes_leaf(4)?,
            0x8e | 0x96 => self.bytes_leaf(8)?,
            b']' => self.push(Node::List(Vec::new())),
            b')' => self.push(Node::Tuple(Vec::new())),
            b'}' => self.push(Node::Dict(Vec::new())),
            0x8f => self.push(Node::Set(Vec::new())),
            b'l' => {
                let items = self.pop_mark()?;
                self.push(Node::List(items));
            }
            b't' => {
                let items = self.pop_mark()?;
                self.push(Node::Tuple(items));
            }
            0x91 => {
                let items = self.pop_mark()?;
                self.push(Node::Set(items));
            }
            b'd' => {
                let items = self.pop_mark()?;
                self.push(Node::Dict(Vec::new()));
                self.set_items(items)?;
            }
            0x85 => self.tuple_of(1)?,
            0x86 => self.tuple_of(2)?,
            0x87 => self.tuple_of(3)?,
            b'a' => {
                let item = self.pop()?;
                self.extend_list(vec![item])?;
            }
            b'e' | 0x90 => {
                let items = self.pop_mark()?;
                self.extend_list(items)?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.set_items(vec![key, value])?;
            }
            b'u' => {
                let items = self.pop_mark()?;
                self.set_items(items)?;
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.global(module, name);
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (&self.arena[module], &self.arena[name]) {
                    (Node::Leaf(Value::Str(m)), Node::Leaf(Value::Str(n))) => {
                        let (m, n) = (m.clone(), n.clone());
                        self.global(&m, &n);
                    }
                    _ => return Err("pickle STACK_GLOBAL needs two strings".into()),
                }
            }
            b'R' | 0x81 => {
                let args = self.pop()?;
                let callable = self.pop()?;
                self.push(Node::Call(callable, args));
            }
            0x92 => {
                let _kwargs = self.pop()?;
                let args = self.pop()?;
                let callable = self.pop()?;
                self.push(Node::Call(callable, args));
            }
            b'o' => {
                let items = self.pop_mark()?;
                let (&callable, args) = items
                    .split_first()
                    .ok_or_else(|| FormatError::from("pickle OBJ without a class"))?;
                let args = args.to_vec();
                self.arena.push(Node::Tuple(args));
                let args = self.arena.len() - 1;
                self.push(Node::Call(callable, args));
            }
            b'i' => {
                let module = self.line()?;
                let name = self.line()?;
                let args = self.pop_mark()?;
                self.global(module, name);
                let callable = self.pop()?;
                self.arena.push(Node::Tuple(args));
                let args = self.arena.len() - 1;
                self.push(Node::Call(callable, args));
            }
            b'b' => {
                // In place, so that memo references to the object see it built.
                let state = self.pop()?;
                let object = self.top()?;
                let moved = std::mem::replace(&mut self.arena[object], Node::Tuple(Vec::new()));
                self.arena.push(moved);
                let inner = self.arena.len() - 1;
                self.arena[object] = Node::Build(inner, state);
            }
            b'p' => {
                let key = self
                    .line()?
                    .parse()
                    .map_err(|_| "pickle PUT key is not a number")?;
                self.memo_put(key)?;
            }
            b'q' => {
                let key = self.take(1)?[0] as usize;
                self.memo_put(key)?;
            }
            b'r' => {
                let key = little_endian(self.take(4)?);
                self.memo_put(key)?;
            }
            0x94 => {
                let key = self.memo.len();
                self.memo_put(key)?;
            }
            b'g' => {
                let key = self
                    .line()?
                    .parse()
                    .map_err(|_| "pickle GET key is not a number")?;
                self.memo_get(key)?;
            }
            b'h' => {
                let key = self.take(1)?[0] as usize;
                self.memo_get(key)?;
            }
            b'j' => {
                let key = little_endian(self.take(4)?);
                self.memo_get(key)?;
            }
            b'S' | b'V' => return Err("text-protocol pickle strings are not supported".into()),
            b'P' | b'Q' => return Err("pickle persistent ids are not supported".into()),
            0x97 | 0x98 => return Err("pickle out-of-band buffers are not supported".into()),
            other => {
                return Err(FormatError::from(format!(
                    "unsupported pickle opcode 0x{other:02x} at byte {}",
                    self.pos - 1
                )))
            }
        }
        Ok(false)
    }

    fn value(&self, i: usize, depth: usize) -> Result<Value, FormatError> {
        if depth > MAX_DEPTH {
            return Err(format!("pickle nests deeper than {MAX_DEPTH} levels (a cycle?)").into());
        }
        let all = |v: &[usize]| -> Result<Vec<Value>, FormatError> {
            v.iter().map(|&j| self.value(j, depth + 1)).collect()
        };
        Ok(match &self.arena[i] {
            Node::Leaf(v) => v.clone(),
            Node::List(v) => Value::List(all(v)?),
            Node::Tuple(v) => Value::Tuple(all(v)?),
            Node::Set(v) => Value::Set(all(v)?),
            Node::Dict(items) => Value::Dict(
                items
                    .iter()
                    .map(|&(k, v)| Ok((self.value(k, depth + 1)?, self.value(v, depth + 1)?)))
                    .collect::<Result<_, FormatError>>()?,
            ),
            Node::Call(c, a) => Value::Call {
                callable: Box::new(self.value(*c, depth + 1)?),
                args: Box::new(self.value(*a, depth + 1)?),
            },
            Node::Build(o, s) => Value::Build {
                object: Box::new(self.value(*o, depth + 1)?),
                state: Box::new(self.value(*s, depth + 1)?),
            },
        })
    }
}

/// The value a pickle describes, without importing or calling anything.
pub fn parse(bytes: &[u8]) -> Result<Value, FormatError> {
    let mut m = Machine {
        bytes,
        pos: 0,
        arena: Vec::new(),
        stack: Vec::new(),
        memo: HashMap::new(),
    };
    loop {
        let op = m.take(1)?[0];
        if m.step(op)? {
            let top = m.pop()?;
            return m.value(top, 0);
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
    use super::*;

    /// Bytes from a Python string literal of `\xNN` escapes.
    fn hex(s: &str) -> Vec<u8> {
        s.split("\\x")
            .filter(|h| !h.is_empty())
            .map(|h| u8::from_str_radix(h, 16).expect("hex"))
            .collect()
    }

    #[test]
    fn reads_a_dill_params_dict_with_a_tensorflow_tensor_without_running_it() {
        // dill.dumps({'N': 64, 'probe': tf.constant(np.array([[1+2j, 3-4j]], np.complex64)),
        //   'path': pathlib.PosixPath('/tmp/a'), 'scale': np.float64(2.5), 'big': True, 'none': None,
        //   'a': shared, 'b': shared, 'huge': 2**70, 'f': -1.25}) with shared = [1, 2].
        let p = hex(concat!(
            r"\x80\x04\x95\xc2\x01\x00\x00\x00\x00\x00\x00\x7d\x94\x28\x8c\x01\x4e\x94\x4b\x40\x8c\x05\x70\x72",
            r"\x6f\x62\x65\x94\x8c\x1f\x74\x65\x6e\x73\x6f\x72\x66\x6c\x6f\x77\x2e\x70\x79\x74\x68\x6f\x6e\x2e",
            r"\x66\x72\x61\x6d\x65\x77\x6f\x72\x6b\x2e\x6f\x70\x73\x94\x8c\x11\x63\x6f\x6e\x76\x65\x72\x74\x5f",
            r"\x74\x6f\x5f\x74\x65\x6e\x73\x6f\x72\x94\x93\x94\x8c\x0a\x64\x69\x6c\x6c\x2e\x5f\x64\x69\x6c\x6c",
            r"\x94\x8c\x0d\x5f\x63\x72\x65\x61\x74\x65\x5f\x61\x72\x72\x61\x79\x94\x93\x94\x28\x8c\x16\x6e\x75",
            r"\x6d\x70\x79\x2e\x5f\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x94\x8c\x0c\x5f",
            r"\x72\x65\x63\x6f\x6e\x73\x74\x72\x75\x63\x74\x94\x93\x94\x8c\x05\x6e\x75\x6d\x70\x79\x94\x8c\x07",
            r"\x6e\x64\x61\x72\x72\x61\x79\x94\x93\x94\x4b\x00\x85\x94\x43\x01\x62\x94\x87\x94\x28\x4b\x01\x4b",
            r"\x01\x4b\x02\x86\x94\x68\x0c\x8c\x05\x64\x74\x79\x70\x65\x94\x93\x94\x8c\x02\x63\x38\x94\x89\x88",
            r"\x87\x94\x52\x94\x28\x4b\x03\x8c\x01\x3c\x94\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff",
            r"\x4b\x00\x74\x94\x62\x89\x43\x10\x00\x00\x80\x3f\x00\x00\x00\x40\x00\x00\x40\x40\x00\x00\x80\xc0",
            r"\x94\x74\x94\x4e\x74\x94\x52\x94\x85\x94\x52\x94\x8c\x04\x70\x61\x74\x68\x94\x8c\x07\x70\x61\x74",
            r"\x68\x6c\x69\x62\x94\x8c\x09\x50\x6f\x73\x69\x78\x50\x61\x74\x68\x94\x93\x94\x8c\x01\x2f\x94\x8c",
            r"\x03\x74\x6d\x70\x94\x8c\x01\x61\x94\x87\x94\x52\x94\x8c\x05\x73\x63\x61\x6c\x65\x94\x68\x09\x8c",
            r"\x06\x73\x63\x61\x6c\x61\x72\x94\x93\x94\x68\x14\x8c\x02\x66\x38\x94\x89\x88\x87\x94\x52\x94\x28",
            r"\x4b\x03\x68\x18\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff\x4b\x00\x74\x94\x62\x43\x08",
            r"\x00\x00\x00\x00\x00\x00\x04\x40\x94\x86\x94\x52\x94\x8c\x03\x62\x69\x67\x94\x88\x8c\x04\x6e\x6f",
            r"\x6e\x65\x94\x4e\x68\x26\x5d\x94\x28\x4b\x01\x4b\x02\x65\x8c\x01\x62\x94\x68\x35\x8c\x04\x68\x75",
            r"\x67\x65\x94\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x40\x8c\x01\x66\x94\x47\xbf\xf4\x00\x00\x00",
            r"\x00\x00\x00\x75\x2e",
        ));
        let v = parse(&p).unwrap();
        assert_eq!(v.get("N").and_then(Value::number), Some(64.0));
        assert_eq!(v.get("scale").and_then(Value::number), Some(2.5));
        assert_eq!(v.get("f").and_then(Value::number), Some(-1.25));
        assert_eq!(v.get("big").and_then(Value::as_bool), Some(true));
        assert_eq!(v.get("none"), Some(&Value::None));
        let shared = Value::List(vec![Value::Int(1), Value::Int(2)]);
        assert_eq!(v.get("a"), Some(&shared));
        assert_eq!(v.get("b"), Some(&shared));
        assert!(matches!(v.get("huge"), Some(Value::BigInt(b)) if b.len() == 9));
        assert!(matches!(v.get("path"), Some(Value::Call { callable, .. })
            if **callable == Value::Global { module: "pathlib".into(), name: "PosixPath".into() }));
        let probe = v.get("probe").and_then(Value::ndarray).unwrap();
        assert_eq!(probe.dtype, "<c8");
        assert_eq!(probe.shape, vec![1, 2]);
        assert!(!probe.fortran_order);
        let floats: Vec<f32> = probe
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(floats, vec![1.0, 2.0, 3.0, -4.0]);
    }

    #[test]
    fn reads_a_protocol_2_numpy_array() {
        // pickle.dumps(np.array([1.5, -2.0], '<f4'), protocol=2): the bytes come as _codecs.encode.
        let p = hex(concat!(
            r"\x80\x02\x63\x6e\x75\x6d\x70\x79\x2e\x5f\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61",
            r"\x79\x0a\x5f\x72\x65\x63\x6f\x6e\x73\x74\x72\x75\x63\x74\x0a\x71\x00\x63\x6e\x75\x6d\x70\x79\x0a",
            r"\x6e\x64\x61\x72\x72\x61\x79\x0a\x71\x01\x4b\x00\x85\x71\x02\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a",
            r"\x65\x6e\x63\x6f\x64\x65\x0a\x71\x03\x58\x01\x00\x00\x00\x62\x71\x04\x58\x06\x00\x00\x00\x6c\x61",
            r"\x74\x69\x6e\x31\x71\x05\x86\x71\x06\x52\x71\x07\x87\x71\x08\x52\x71\x09\x28\x4b\x01\x4b\x02\x85",
            r"\x71\x0a\x63\x6e\x75\x6d\x70\x79\x0a\x64\x74\x79\x70\x65\x0a\x71\x0b\x58\x02\x00\x00\x00\x66\x34",
            r"\x71\x0c\x89\x88\x87\x71\x0d\x52\x71\x0e\x28\x4b\x03\x58\x01\x00\x00\x00\x3c\x71\x0f\x4e\x4e\x4e",
            r"\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff\x4b\x00\x74\x71\x10\x62\x89\x68\x03\x58\x0a\x00\x00\x00",
            r"\x00\x00\xc3\x80\x3f\x00\x00\x00\xc3\x80\x71\x11\x68\x05\x86\x71\x12\x52\x71\x13\x74\x71\x14\x62",
            r"\x2e",
        ));
        let a = parse(&p).unwrap().ndarray().unwrap();
        assert_eq!(
            (a.dtype.as_str(), a.shape.as_slice()),
            ("<f4", &[2usize][..])
        );
        assert_eq!(
            a.data,
            [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat()
        );
    }

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
