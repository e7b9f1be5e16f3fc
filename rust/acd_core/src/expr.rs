//! Skill expressions (expressions.py), compiled: which agents may take an interaction, or
//! belong to a queue.
//!
//! A port of `src/sparklecomm/acd/expressions.py` that must behave exactly like it: the same
//! tokens, the same parse, the same error messages (with 1-based positions in characters and
//! Python's `repr` of the source), the same results of `matches` for every skill and attribute
//! (Python's comparison rules included: `True == 1` inside lists, ints compared exactly with
//! floats, a list never equal to a tuple at the top level). See expressions.py for the
//! language; this file keeps its structure and names where it can.
//!
//! An expression compiles to a tree of [`Node`]s. Evaluating it resolves each identifier at
//! most once (a skill, else an attribute, else missing) and allocates nothing for expressions
//! with up to [`INLINE_NAMES`] distinct identifiers.
//!
//! Known differences from the Python reference:
//! - a str with lone surrogates (JSON's "\ud800" decodes to one) cannot become a Rust `&str`:
//!   such a source or attribute string fails in `to_str` (UnicodeEncodeError) where Python
//!   would compile or compare it; callers should fall back to expressions.py for those;
//! - values whose type is a *subclass* of str/list/tuple/dict (model.check_attributes accepts
//!   them from Python callers; JSON never makes them) compare here like the base type, where
//!   Python's `type(a) is type(b)` tells them apart at the top level of `==` and `in`;
//! - NaN (model.check_attributes rejects it) is never equal to itself here, even inside a list
//!   where Python's identity shortcut makes `[nan] == [nan]` true for the same object.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyFrozenSet, PyList, PyLong, PyString, PyTuple};

#[path = "expr_unicode.rs"]
mod unicode;

/// expressions.py `MAX_LENGTH`: the longest source, in characters.
pub const MAX_LENGTH: usize = 4096;
/// expressions.py `MAX_DEPTH`: the deepest nesting of parentheses and `not`s.
pub const MAX_DEPTH: usize = 64;
/// Expressions with at most this many distinct identifiers evaluate without allocating.
pub const INLINE_NAMES: usize = 8;

// --- values ---------------------------------------------------------------------------------

/// A JSON-like value: an agent's attribute, an expression's literal, or what a part of an
/// expression evaluates to. Tuples stay tuples: Python's `==` tells them from lists.
#[derive(Clone, Debug)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An int outside i64's range (never one inside it: those are `Int`).
    BigInt(Box<BigInt>),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// A dict, keys in insertion order (unique: it comes from a Python dict).
    Dict(Vec<(String, Value)>),
}

static TRUE: Value = Value::Bool(true);
static FALSE: Value = Value::Bool(false);
static NONE: Value = Value::None;

impl Value {
    /// Python's `bool(value)`.
    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::BigInt(_) => true,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(v) | Value::Tuple(v) => !v.is_empty(),
            Value::Dict(d) => !d.is_empty(),
        }
    }

    /// expressions.py `_is_number`: an int or a float, not a bool.
    fn number(&self) -> Option<Num<'_>> {
        match self {
            Value::Int(i) => Some(Num::I(*i as i128)),
            Value::BigInt(b) => Some(Num::B(b)),
            Value::Float(f) => Some(Num::F(*f)),
            _ => None,
        }
    }

    /// A number for Python's `==`, where a bool is the int 0 or 1.
    fn number_or_bool(&self) -> Option<Num<'_>> {
        match self {
            Value::Bool(b) => Some(Num::I(*b as i128)),
            _ => self.number(),
        }
    }

    fn from_int_digits(negative: bool, digits: &[u8]) -> Value {
        let big = BigInt::from_decimal(negative, digits);
        match big.to_i128() {
            Some(i) if i64::try_from(i).is_ok() => Value::Int(i as i64),
            _ => Value::BigInt(Box::new(big)),
        }
    }
}

/// Python's `==` between two values (nested containers compare like Python's).
pub fn py_eq(a: &Value, b: &Value) -> bool {
    match (a.number_or_bool(), b.number_or_bool()) {
        (Some(x), Some(y)) => return num_cmp(x, y) == Some(Ordering::Equal),
        (Some(_), None) | (None, Some(_)) => return false,
        (None, None) => {}
    }
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) | (Value::Tuple(x), Value::Tuple(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| match y.iter().find(|(k2, _)| k2 == k) {
                        Some((_, w)) => py_eq(v, w),
                        None => false,
                    })
        }
        _ => false,
    }
}

// --- numbers --------------------------------------------------------------------------------

/// An int of any size: sign and magnitude, base 2^32, least significant limb first, no
/// leading zero limbs (Python ints outside i64's range).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BigInt {
    negative: bool,
    mag: Vec<u32>,
}

impl BigInt {
    fn normalize(mut self) -> BigInt {
        while self.mag.last() == Some(&0) {
            self.mag.pop();
        }
        if self.mag.is_empty() {
            self.negative = false;
        }
        self
    }

    fn mul_add(&mut self, mul: u32, add: u32) {
        let mut carry = add as u64;
        for limb in self.mag.iter_mut() {
            let x = (*limb as u64) * (mul as u64) + carry;
            *limb = x as u32;
            carry = x >> 32;
        }
        if carry != 0 {
            self.mag.push(carry as u32);
        }
    }

    /// From ASCII decimal digits.
    pub fn from_decimal(negative: bool, digits: &[u8]) -> BigInt {
        let mut big = BigInt {
            negative,
            mag: Vec::new(),
        };
        for chunk in digits.chunks(9) {
            let mut add = 0u32;
            for d in chunk {
                add = add * 10 + (d - b'0') as u32;
            }
            big.mul_add(10u32.pow(chunk.len() as u32), add);
        }
        big.normalize()
    }

    /// From hexadecimal digits (Python's `format(n, "x")`, with its "-").
    pub fn from_hex(text: &str) -> Option<BigInt> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut big = BigInt {
            negative,
            mag: Vec::new(),
        };
        for c in digits.chars() {
            big.mul_add(16, c.to_digit(16)?);
        }
        Some(big.normalize())
    }

    pub fn to_hex(&self) -> String {
        let mut out = String::new();
        if self.negative {
            out.push('-');
        }
        match self.mag.split_last() {
            None => out.push('0'),
            Some((top, rest)) => {
                let _ = write!(out, "{:x}", top);
                for limb in rest.iter().rev() {
                    let _ = write!(out, "{:08x}", limb);
                }
            }
        }
        out
    }

    /// A finite float's exact integer value (for integral floats; the fraction is dropped).
    fn from_f64(f: f64) -> BigInt {
        let bits = f.to_bits();
        let exp = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1u64 << 52) - 1);
        let (mant, exp) = if exp == 0 {
            (frac, -1074)
        } else {
            (frac | (1u64 << 52), exp - 1075)
        };
        let mut big = if exp >= 0 {
            let mut big = BigInt {
                negative: false,
                mag: vec![mant as u32, (mant >> 32) as u32],
            };
            let shift = exp as usize;
            let (limbs, bits) = (shift / 32, shift % 32);
            if bits != 0 {
                big.mul_add(1u32 << bits, 0);
            }
            let mut mag = vec![0u32; limbs];
            mag.extend_from_slice(&big.mag);
            BigInt {
                negative: false,
                mag,
            }
        } else if exp > -64 {
            let m = mant >> (-exp);
            BigInt {
                negative: false,
                mag: vec![m as u32, (m >> 32) as u32],
            }
        } else {
            BigInt {
                negative: false,
                mag: Vec::new(),
            }
        };
        big.negative = f < 0.0;
        big.normalize()
    }

    pub fn to_i128(&self) -> Option<i128> {
        if self.mag.len() > 4 {
            return None;
        }
        let mut m: u128 = 0;
        for limb in self.mag.iter().rev() {
            m = (m << 32) | *limb as u128;
        }
        if self.negative {
            if m <= 1u128 << 127 {
                Some((m as i128).wrapping_neg())
            } else {
                None
            }
        } else {
            i128::try_from(m).ok()
        }
    }

    fn cmp_big(&self, other: &BigInt) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => return Ordering::Greater,
            (true, false) => return Ordering::Less,
            _ => {}
        }
        let mag = self
            .mag
            .len()
            .cmp(&other.mag.len())
            .then_with(|| self.mag.iter().rev().cmp(other.mag.iter().rev()));
        if self.negative {
            mag.reverse()
        } else {
            mag
        }
    }

    fn sign(&self) -> Ordering {
        if self.negative {
            Ordering::Less
        } else {
            Ordering::Greater
        }
    }
}

/// A number, borrowed: an int in i128 (every i64, and i64 arithmetic), a big int or a float.
#[derive(Clone, Copy, Debug)]
enum Num<'a> {
    I(i128),
    B(&'a BigInt),
    F(f64),
}

/// Python's comparison of two numbers: exact between ints and floats, `None` with NaN.
#[inline]
fn num_cmp(a: Num<'_>, b: Num<'_>) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        _ => num_cmp_mixed(a, b),
    }
}

fn num_cmp_mixed(a: Num<'_>, b: Num<'_>) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::F(x), Num::F(y)) => x.partial_cmp(&y),
        (Num::I(x), Num::F(y)) => int_float_cmp(x, y),
        (Num::F(x), Num::I(y)) => int_float_cmp(y, x).map(Ordering::reverse),
        (Num::B(x), _) if x.to_i128().is_some() => num_cmp(Num::I(x.to_i128().unwrap()), b),
        (_, Num::B(y)) if y.to_i128().is_some() => num_cmp(a, Num::I(y.to_i128().unwrap())),
        // From here on a big int is beyond i128's range.
        (Num::B(x), Num::B(y)) => Some(x.cmp_big(y)),
        (Num::B(x), Num::I(_)) => Some(x.sign()),
        (Num::I(_), Num::B(y)) => Some(y.sign().reverse()),
        (Num::B(x), Num::F(y)) => big_float_cmp(x, y),
        (Num::F(x), Num::B(y)) => big_float_cmp(y, x).map(Ordering::reverse),
    }
}

const TWO_127: f64 = 170141183460469231731687303715884105728.0;

fn int_float_cmp(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f >= TWO_127 {
        return Some(Ordering::Less);
    }
    if f < -TWO_127 {
        return Some(Ordering::Greater);
    }
    let t = f.trunc();
    match i.cmp(&(t as i128)) {
        Ordering::Equal => (0.0).partial_cmp(&(f - t)),
        o => Some(o),
    }
}

/// `x` beyond i128's range against a float.
fn big_float_cmp(x: &BigInt, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f.is_infinite() {
        return Some(if f > 0.0 {
            Ordering::Less
        } else {
            Ordering::Greater
        });
    }
    if f.abs() < TWO_127 {
        return Some(x.sign());
    }
    // Floats this large are integers.
    Some(x.cmp_big(&BigInt::from_f64(f)))
}

// --- expressions.py's comparisons -----------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
}

/// expressions.py `_same_kind`.
fn same_kind(left: &Value, right: &Value) -> bool {
    if matches!(left, Value::None) || matches!(right, Value::None) {
        return false;
    }
    if left.number().is_some() && right.number().is_some() {
        return true;
    }
    std::mem::discriminant(left) == std::mem::discriminant(right)
}

/// expressions.py `_compare`.
fn compare(op: Op, left: &Value, right: &Value) -> bool {
    // The common cases first: equal kinds compare like Rust's.
    match (op, left, right) {
        (Op::Eq, Value::Str(a), Value::Str(b)) => return a == b,
        (Op::Ne, Value::Str(a), Value::Str(b)) => return a != b,
        (Op::Eq, Value::Int(a), Value::Int(b)) => return a == b,
        (Op::Ne, Value::Int(a), Value::Int(b)) => return a != b,
        _ => {}
    }
    match op {
        Op::Eq => return same_kind(left, right) && py_eq(left, right),
        Op::Ne => return !(same_kind(left, right) && py_eq(left, right)),
        _ => {}
    }
    let ord = match (left, right) {
        (Value::Str(a), Value::Str(b)) => Some(a.as_str().cmp(b.as_str())),
        _ => match (left.number(), right.number()) {
            (Some(a), Some(b)) => num_cmp(a, b),
            _ => return false,
        },
    };
    match ord {
        None => false,
        Some(o) => match op {
            Op::Lt => o == Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            _ => o != Ordering::Less,
        },
    }
}

/// expressions.py `_contains`.
fn contains(left: &Value, right: &Value) -> bool {
    match right {
        Value::Str(haystack) => match left {
            Value::Str(needle) => haystack.contains(needle.as_str()),
            _ => false,
        },
        Value::List(items) | Value::Tuple(items) => match left {
            Value::List(wanted) | Value::Tuple(wanted) => wanted.iter().any(|w| member(w, items)),
            _ => member(left, items),
        },
        _ => false,
    }
}

/// expressions.py `_member`.
fn member(item: &Value, collection: &[Value]) -> bool {
    if let Value::Str(wanted) = item {
        // The common case: only strings are of its kind.
        return collection.iter().any(|x| match x {
            Value::Str(s) => s == wanted,
            _ => false,
        });
    }
    !matches!(item, Value::None)
        && collection
            .iter()
            .any(|x| same_kind(item, x) && py_eq(item, x))
}

// --- skills and attributes ------------------------------------------------------------------

/// A name's first 24 bytes (zero-padded) and its length: names are found by comparing keys
/// (a few word compares, no call), and names longer than 24 bytes are then compared in full.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Key {
    head: [u64; 3],
    len: usize,
}

const KEY_BYTES: usize = 24;

impl Key {
    fn new(name: &str) -> Key {
        let mut bytes = [0u8; KEY_BYTES];
        let n = name.len().min(KEY_BYTES);
        bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
        let mut head = [0u64; 3];
        for (i, word) in head.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            *word = u64::from_le_bytes(w);
        }
        Key {
            head,
            len: name.len(),
        }
    }
}

impl Key {
    /// One word standing for the key, for a first, dense scan.
    #[inline]
    fn word(&self) -> u64 {
        self.head[0] ^ (self.len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// The key's bit in a table's `bloom`.
    #[inline]
    fn bit(&self) -> u64 {
        1 << (self.word().wrapping_mul(0xff51_afd7_ed55_8ccd) >> 58)
    }
}

/// Names and values, in insertion order (few entries: a linear scan is fastest). Lookups check
/// `bloom` (most names absent from a table stop there), scan `words` (one u64 a name), then
/// check the whole key and, past 24 bytes, the name.
#[derive(Clone, Debug, Default)]
struct Table {
    bloom: u64,
    words: Vec<u64>,
    keys: Vec<Key>,
    names: Vec<Box<str>>,
    values: Vec<Value>,
}

impl Table {
    #[inline]
    fn position(&self, key: &Key, name: &str) -> Option<usize> {
        if self.bloom & key.bit() == 0 {
            return None;
        }
        let word = key.word();
        for (i, w) in self.words.iter().enumerate() {
            if *w == word
                && self.keys[i] == *key
                && (key.len <= KEY_BYTES || *self.names[i] == *name)
            {
                return Some(i);
            }
        }
        None
    }

    #[inline]
    fn find(&self, key: &Key, name: &str) -> Option<&Value> {
        self.position(key, name).map(|i| &self.values[i])
    }

    fn insert(&mut self, name: String, value: Value) {
        let key = Key::new(&name);
        match self.position(&key, &name) {
            Some(i) => self.values[i] = value,
            None => {
                self.bloom |= key.bit();
                self.words.push(key.word());
                self.keys.push(key);
                self.names.push(name.into_boxed_str());
                self.values.push(value);
            }
        }
    }
}

/// An agent's skills: name -> proficiency (an int; 1 to 5 in the engine).
#[derive(Clone, Debug, Default)]
pub struct Skills {
    table: Table, // values are all Value::Int
}

impl Skills {
    pub fn new<S: Into<String>, I: IntoIterator<Item = (S, i64)>>(items: I) -> Skills {
        let mut out = Skills::default();
        for (name, level) in items {
            out.insert(name.into(), level);
        }
        out
    }

    /// Adds or replaces a skill.
    pub fn insert(&mut self, name: String, level: i64) {
        self.table.insert(name, Value::Int(level));
    }

    pub fn get(&self, name: &str) -> Option<i64> {
        match self.table.find(&Key::new(name), name) {
            Some(Value::Int(level)) => Some(*level),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.table.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.keys.is_empty()
    }

    /// From a Python mapping of str to int (an agent config's checked `skills`).
    pub fn from_py(obj: &PyAny) -> PyResult<Skills> {
        let mut out = Skills::default();
        for (key, value) in mapping_items(obj)? {
            let name: String = key.extract()?;
            if value.is_instance_of::<PyBool>()? {
                return Err(pyo3::exceptions::PyTypeError::new_err(
                    "a skill's proficiency must be an int",
                ));
            }
            out.insert(name, value.extract::<i64>()?);
        }
        Ok(out)
    }
}

/// An agent's attributes: name -> JSON-like value.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    table: Table,
}

impl Attributes {
    pub fn new<S: Into<String>, I: IntoIterator<Item = (S, Value)>>(items: I) -> Attributes {
        let mut out = Attributes::default();
        for (name, value) in items {
            out.insert(name.into(), value);
        }
        out
    }

    /// Adds or replaces an attribute.
    pub fn insert(&mut self, name: String, value: Value) {
        self.table.insert(name, value);
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.table.find(&Key::new(name), name)
    }

    pub fn len(&self) -> usize {
        self.table.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.keys.is_empty()
    }

    /// From a Python mapping of str to JSON data (model.check_attributes' output).
    pub fn from_py(obj: &PyAny) -> PyResult<Attributes> {
        let mut out = Attributes::default();
        for (key, value) in mapping_items(obj)? {
            out.insert(key.extract()?, value_from_py(value)?);
        }
        Ok(out)
    }
}

fn mapping_items(obj: &PyAny) -> PyResult<Vec<(&PyAny, &PyAny)>> {
    if let Ok(dict) = obj.downcast::<PyDict>() {
        return Ok(dict.iter().collect());
    }
    let mut out = Vec::new();
    for item in obj.call_method0("items")?.iter()? {
        out.push(item?.extract::<(&PyAny, &PyAny)>()?);
    }
    Ok(out)
}

/// A Python value (None, bool, int, float, str, list, tuple, dict with str keys) as a Value.
pub fn value_from_py(obj: &PyAny) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::None);
    }
    if let Ok(b) = obj.downcast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.downcast::<PyLong>().is_ok() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::Int(i));
        }
        let hex: &str = obj.call_method1("__format__", ("x",))?.extract()?;
        let big = BigInt::from_hex(hex)
            .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("bad int"))?;
        return Ok(Value::BigInt(Box::new(big)));
    }
    if let Ok(f) = obj.downcast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if let Ok(s) = obj.downcast::<PyString>() {
        return Ok(Value::Str(s.to_str()?.to_owned()));
    }
    if let Ok(list) = obj.downcast::<PyList>() {
        return Ok(Value::List(
            list.iter().map(value_from_py).collect::<PyResult<_>>()?,
        ));
    }
    if let Ok(tuple) = obj.downcast::<PyTuple>() {
        return Ok(Value::Tuple(
            tuple.iter().map(value_from_py).collect::<PyResult<_>>()?,
        ));
    }
    if let Ok(dict) = obj.downcast::<PyDict>() {
        let mut items = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            items.push((k.extract::<String>()?, value_from_py(v)?));
        }
        return Ok(Value::Dict(items));
    }
    Err(pyo3::exceptions::PyTypeError::new_err(format!(
        "Attribute values must be JSON data, not {}.",
        obj.get_type().name()?
    )))
}

/// A Value as the equal Python object (tuples stay tuples).
pub fn value_to_py(py: Python<'_>, value: &Value) -> PyObject {
    match value {
        Value::None => py.None(),
        Value::Bool(b) => b.into_py(py),
        Value::Int(i) => i.into_py(py),
        Value::BigInt(b) => py
            .import("builtins")
            .and_then(|m| m.getattr("int"))
            .and_then(|int| int.call1((b.to_hex(), 16)))
            .expect("int() of a hexadecimal string")
            .into_py(py),
        Value::Float(f) => f.into_py(py),
        Value::Str(s) => s.into_py(py),
        Value::List(items) => PyList::new(py, items.iter().map(|v| value_to_py(py, v))).into_py(py),
        Value::Tuple(items) => {
            PyTuple::new(py, items.iter().map(|v| value_to_py(py, v))).into_py(py)
        }
        Value::Dict(items) => {
            let dict = PyDict::new(py);
            for (k, v) in items {
                dict.set_item(k, value_to_py(py, v)).expect("a str key");
            }
            dict.into_py(py)
        }
    }
}

// --- compiled expressions -------------------------------------------------------------------

/// A compiled expression's tree. Identifiers are slots in [`ExprInner::names`].
#[derive(Debug)]
enum Node {
    Const(Value),
    Name(usize),
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    Cmp(Op, Box<Node>, Box<Node>),
    /// `skill >= N` / `skill > N` (or `N <= skill` / `N < skill`): lowered by `relax` for a
    /// skill (expressions.py `_threshold`). `threshold` is an Int, a BigInt or a Float.
    Threshold {
        slot: usize,
        strict: bool,
        threshold: Value,
    },
}

#[derive(Debug)]
struct Name {
    text: String,
    key: Key,
}

#[derive(Debug)]
struct ExprInner {
    source: String,
    names: Vec<Name>,
    root: Option<Node>, // None: the empty expression, which every agent satisfies
}

/// A compiled skill expression; immutable, cheap to clone and share between threads.
/// Equal (and hashed) by its source, like expressions.py's `SkillExpression`.
#[derive(Clone, Debug)]
pub struct Expr(Arc<ExprInner>);

impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        self.0.source == other.0.source
    }
}

impl Eq for Expr {}

impl Hash for Expr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.source.hash(state)
    }
}

struct Eval<'a, 's> {
    skills: &'a Skills,
    attributes: &'a Attributes,
    relax: i64,
    names: &'a [Name],
    /// What each identifier resolved to in this evaluation (None: not looked up yet): a
    /// skill's level (a Value::Int in `skills`), an attribute, or NONE for a missing name
    /// (expressions.py's `_MISSING` is None too).
    slots: &'s mut [Option<&'a Value>],
}

impl<'a, 's> Eval<'a, 's> {
    #[inline]
    fn resolve(&mut self, i: usize) -> &'a Value {
        if let Some(v) = self.slots[i] {
            return v;
        }
        let name = &self.names[i];
        let v = match self.skills.table.find(&name.key, &name.text) {
            Some(v) => v,
            None => match self.attributes.table.find(&name.key, &name.text) {
                Some(v) => v,
                None => &NONE,
            },
        };
        self.slots[i] = Some(v);
        v
    }

    /// The skill's level, where `value` (from `resolve`) is one of the agent's skills.
    #[inline]
    fn skill_level(&self, value: &'a Value) -> Option<i64> {
        let range = self.skills.table.values.as_ptr_range();
        match value {
            Value::Int(level) if range.contains(&(value as *const Value)) => Some(*level),
            _ => None,
        }
    }

    /// The node's value (expressions.py's closures' results).
    fn value(&mut self, node: &'a Node) -> &'a Value {
        match node {
            Node::Const(v) => v,
            Node::Name(i) => self.resolve(*i),
            _ => {
                if self.truth(node) {
                    &TRUE
                } else {
                    &FALSE
                }
            }
        }
    }

    /// `bool()` of the node's value.
    fn truth(&mut self, node: &'a Node) -> bool {
        match node {
            Node::Const(v) => v.truthy(),
            Node::Name(i) => self.resolve(*i).truthy(),
            Node::Or(parts) => parts.iter().any(|p| self.truth(p)),
            Node::And(parts) => parts.iter().all(|p| self.truth(p)),
            Node::Not(inner) => !self.truth(inner),
            Node::Cmp(op, left, right) => {
                let l = self.value(left);
                let r = self.value(right);
                match op {
                    Op::In => contains(l, r),
                    Op::NotIn => !contains(l, r),
                    _ => compare(*op, l, r),
                }
            }
            Node::Threshold {
                slot,
                strict,
                threshold,
            } => self.threshold(*slot, *strict, threshold),
        }
    }

    /// expressions.py `_threshold`'s check.
    fn threshold(&mut self, slot: usize, strict: bool, threshold: &'a Value) -> bool {
        let t = match threshold.number() {
            Some(t) => t,
            None => return false, // never: the parser only puts numbers here
        };
        let wanted = |o: Option<Ordering>| match o {
            Some(Ordering::Greater) => true,
            Some(Ordering::Equal) => !strict,
            _ => false,
        };
        let value = self.resolve(slot);
        let level = match self.skill_level(value) {
            Some(level) => level,
            None => {
                return match value.number() {
                    Some(v) => wanted(num_cmp(v, t)),
                    None => false,
                };
            }
        };
        if let Value::Int(t) = threshold {
            // The common case, in i128 (exact for any i64 threshold and relax).
            let (t, floor) = (*t as i128, if strict { 0 } else { 1 });
            let mut limit = t;
            if self.relax != 0 && t > floor {
                limit = (t - self.relax as i128).max(floor);
            }
            return if strict {
                level as i128 > limit
            } else {
                level as i128 >= limit
            };
        }
        let floor = Num::I(if strict { 0 } else { 1 });
        let mut limit = t;
        let relax = self.relax;
        if relax != 0 && num_cmp(t, floor) == Some(Ordering::Greater) {
            let lowered = match t {
                Num::I(i) => Num::I(i - relax as i128),
                Num::F(f) => Num::F(f - relax as f64),
                // Beyond i128, subtracting an i64 changes no comparison with one.
                Num::B(b) => match b.to_i128().and_then(|i| i.checked_sub(relax as i128)) {
                    Some(i) => Num::I(i),
                    None => t,
                },
            };
            limit = if num_cmp(lowered, floor) == Some(Ordering::Greater) {
                lowered
            } else {
                floor
            };
        }
        wanted(num_cmp(Num::I(level as i128), limit))
    }
}

impl Expr {
    pub fn source(&self) -> &str {
        &self.0.source
    }

    /// The names the expression reads (each once, in order of first appearance).
    pub fn identifiers(&self) -> impl Iterator<Item = &str> {
        self.0.names.iter().map(|n| n.text.as_str())
    }

    /// The empty expression, which every agent satisfies.
    pub fn is_empty(&self) -> bool {
        self.0.root.is_none()
    }

    /// Does an agent with these skills and attributes satisfy the expression?
    pub fn matches(&self, skills: &Skills, attributes: &Attributes, relax: i64) -> bool {
        let inner = &*self.0;
        let root = match &inner.root {
            None => return true,
            Some(root) => root,
        };
        let n = inner.names.len();
        if n <= INLINE_NAMES {
            let mut slots = [None; INLINE_NAMES];
            Eval {
                skills,
                attributes,
                relax,
                names: &inner.names,
                slots: &mut slots[..n],
            }
            .truth(root)
        } else {
            let mut slots = vec![None; n];
            Eval {
                skills,
                attributes,
                relax,
                names: &inner.names,
                slots: &mut slots,
            }
            .truth(root)
        }
    }
}

// --- errors ---------------------------------------------------------------------------------

/// A compile error: the message and field of the `InvalidInput` Python raises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    pub message: String,
    pub field: String,
}

impl ExprError {
    /// As `sparklecomm.core.errors.InvalidInput(message, field=field)`.
    pub fn to_py(&self, py: Python<'_>) -> PyErr {
        invalid_input(py, &self.message, &self.field)
    }
}

impl std::fmt::Display for ExprError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ExprError {}

/// `sparklecomm.core.errors.InvalidInput(message, field=field)` as a PyErr.
pub fn invalid_input(py: Python<'_>, message: &str, field: &str) -> PyErr {
    let make = || -> PyResult<PyErr> {
        let class = py
            .import("sparklecomm.core.errors")?
            .getattr("InvalidInput")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("field", field)?;
        Ok(PyErr::from_value(class.call((message,), Some(kwargs))?))
    };
    match make() {
        Ok(err) | Err(err) => err,
    }
}

/// expressions.py `_error`.
fn syntax_error(source: &str, pos: usize, message: &str, field: &str) -> ExprError {
    ExprError {
        message: format!(
            "Syntax error in skill expression at position {}: {} (in {}).",
            pos + 1,
            message,
            py_repr(source)
        ),
        field: field.to_owned(),
    }
}

// --- characters (Python's str methods) ------------------------------------------------------

fn classes(c: char) -> u8 {
    let cp = c as u32;
    if cp < 0x80 {
        let b = cp as u8;
        let mut k = 0;
        if b == b' ' || (0x09..=0x0d).contains(&b) || (0x1c..=0x1f).contains(&b) {
            k |= unicode::SPACE;
        }
        if b.is_ascii_digit() {
            k |= unicode::DIGIT | unicode::DECIMAL | unicode::ALNUM;
        }
        if b.is_ascii_alphabetic() {
            k |= unicode::ALPHA | unicode::ALNUM;
        }
        if (0x20..0x7f).contains(&b) {
            k |= unicode::PRINTABLE;
        }
        return k;
    }
    let i = unicode::STARTS.partition_point(|&s| s <= cp);
    unicode::CLASSES[i - 1]
}

fn is_space(c: char) -> bool {
    classes(c) & unicode::SPACE != 0
}

fn is_digit(c: char) -> bool {
    classes(c) & unicode::DIGIT != 0
}

/// A decimal digit's value (`unicodedata.decimal`): decimal digits come in runs of ten, 0 to
/// 9, and each run of the table starts at a 0.
fn decimal_value(c: char) -> Option<u8> {
    let cp = c as u32;
    if c.is_ascii_digit() {
        return Some(cp as u8 - b'0');
    }
    if cp < 0x80 {
        return None;
    }
    let i = unicode::STARTS.partition_point(|&s| s <= cp) - 1;
    if unicode::CLASSES[i] & unicode::DECIMAL == 0 {
        return None;
    }
    Some(((cp - unicode::STARTS[i]) % 10) as u8)
}

/// Python's `repr()` of a str.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        let cp = c as u32;
        match c {
            _ if c == quote || c == '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if cp < 0x20 || cp == 0x7f => {
                let _ = write!(out, "\\x{:02x}", cp);
            }
            _ if cp < 0x7f || classes(c) & unicode::PRINTABLE != 0 => out.push(c),
            _ if cp <= 0xff => {
                let _ = write!(out, "\\x{:02x}", cp);
            }
            _ if cp <= 0xffff => {
                let _ = write!(out, "\\u{:04x}", cp);
            }
            _ => {
                let _ = write!(out, "\\U{:08x}", cp);
            }
        }
    }
    out.push(quote);
    out
}

fn repr_chars(chars: &[char]) -> String {
    py_repr(&chars.iter().collect::<String>())
}

// --- tokenizer ------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kw {
    And,
    Or,
    Not,
    In,
    True,
    False,
}

#[derive(Clone, Debug)]
enum Tok {
    Num(Value),
    Str(String),
    Ident(String),
    Kw(Kw),
    Op(Op),
    Punct(char),
    End,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    pos: usize, // 0-based, in characters
}

fn keyword(word: &str) -> Option<Kw> {
    Some(match word {
        "and" => Kw::And,
        "or" => Kw::Or,
        "not" => Kw::Not,
        "in" => Kw::In,
        "true" => Kw::True,
        "false" => Kw::False,
        _ => return None,
    })
}

/// Python's `int(text)` / `float(text)` of a number token (underscores already dropped);
/// None where Python raises ValueError.
fn parse_number(text: &[char]) -> Option<Value> {
    let (negative, body) = match text.split_first() {
        Some(('-', rest)) => (true, rest),
        _ => (false, text),
    };
    // int() and float() read any Unicode decimal digit (not other digits, like "²").
    let mut ascii = Vec::with_capacity(text.len());
    let mut dots = 0;
    for &c in body {
        if c == '.' {
            dots += 1;
            ascii.push(b'.');
        } else {
            ascii.push(b'0' + decimal_value(c)?);
        }
    }
    if dots == 0 {
        return Some(Value::from_int_digits(negative, &ascii));
    }
    if dots > 1 {
        return None;
    }
    let text = std::str::from_utf8(&ascii).ok()?;
    let f: f64 = text.parse().ok()?;
    Some(Value::Float(if negative { -f } else { f }))
}

/// expressions.py `_tokenize`.
fn tokenize(src: &[char], source: &str, field: &str) -> Result<Vec<Token>, ExprError> {
    let mut tokens = Vec::new();
    let n = src.len();
    let mut i = 0;
    while i < n {
        let ch = src[i];
        if is_space(ch) {
            i += 1;
            continue;
        }
        let start = i;
        if "([]),".contains(ch) {
            tokens.push(Token {
                tok: Tok::Punct(ch),
                pos: start,
            });
            i += 1;
            continue;
        }
        if "=!<>".contains(ch) {
            let next = src.get(i + 1).copied();
            let two = match (ch, next) {
                ('=', Some('=')) => Some(Op::Eq),
                ('!', Some('=')) => Some(Op::Ne),
                ('<', Some('=')) => Some(Op::Le),
                ('>', Some('=')) => Some(Op::Ge),
                _ => None,
            };
            if let Some(op) = two {
                tokens.push(Token {
                    tok: Tok::Op(op),
                    pos: start,
                });
                i += 2;
                continue;
            }
            if ch == '<' || ch == '>' {
                let op = if ch == '<' { Op::Lt } else { Op::Gt };
                tokens.push(Token {
                    tok: Tok::Op(op),
                    pos: start,
                });
                i += 1;
                continue;
            }
            let hint = if ch == '=' {
                " (use \"==\" to compare)"
            } else {
                ""
            };
            let message = format!("unexpected {}{}", repr_chars(&[ch]), hint);
            return Err(syntax_error(source, start, &message, field));
        }
        if ch == '"' || ch == '\'' {
            let quote = ch;
            i += 1;
            let mut chars = String::new();
            loop {
                if i >= n {
                    return Err(syntax_error(source, start, "unterminated string", field));
                }
                let c = src[i];
                if c == '\\' && i + 1 < n {
                    chars.push(src[i + 1]);
                    i += 2;
                    continue;
                }
                if c == quote {
                    i += 1;
                    break;
                }
                chars.push(c);
                i += 1;
            }
            tokens.push(Token {
                tok: Tok::Str(chars),
                pos: start,
            });
            continue;
        }
        if is_digit(ch) || (ch == '-' && i + 1 < n && is_digit(src[i + 1])) {
            i += 1;
            while i < n && (is_digit(src[i]) || src[i] == '.' || src[i] == '_') {
                i += 1;
            }
            let text: Vec<char> = src[start..i]
                .iter()
                .copied()
                .filter(|&c| c != '_')
                .collect();
            match parse_number(&text) {
                Some(value) => tokens.push(Token {
                    tok: Tok::Num(value),
                    pos: start,
                }),
                None => {
                    let message = format!("bad number {}", repr_chars(&src[start..i]));
                    return Err(syntax_error(source, start, &message, field));
                }
            }
            continue;
        }
        if classes(ch) & unicode::ALPHA != 0 || ch == '_' {
            i += 1;
            while i < n && (classes(src[i]) & unicode::ALNUM != 0 || "_.-".contains(src[i])) {
                i += 1;
            }
            let word: String = src[start..i].iter().collect();
            let tok = match keyword(&word) {
                Some(kw) => Tok::Kw(kw),
                None => Tok::Ident(word),
            };
            tokens.push(Token { tok, pos: start });
            continue;
        }
        let message = format!("unexpected character {}", repr_chars(&[ch]));
        return Err(syntax_error(source, start, &message, field));
    }
    tokens.push(Token {
        tok: Tok::End,
        pos: n,
    });
    Ok(tokens)
}

// --- parser ---------------------------------------------------------------------------------

/// What an operand was, for spotting skill thresholds (expressions.py's operand tokens).
enum Operand {
    Num(Value),
    Ident(usize),
    Other,
}

struct Parser<'s> {
    src: &'s [char],
    source: &'s str,
    field: &'s str,
    tokens: Vec<Token>,
    i: usize,
    depth: usize,
    names: Vec<Name>,
    slots: HashMap<String, usize>,
}

type PResult<T> = Result<T, ExprError>;

impl<'s> Parser<'s> {
    fn peek(&self) -> &Token {
        &self.tokens[self.i]
    }

    fn take(&mut self) -> Token {
        let tok = self.tokens[self.i].clone();
        self.i += 1;
        tok
    }

    fn fail(&self, tok: &Token, expected: &str) -> ExprError {
        let found = match tok.tok {
            Tok::End => "the end".to_owned(),
            _ => {
                let rest = &self.src[tok.pos..];
                let end = rest.iter().position(|&c| is_space(c)).unwrap_or(rest.len());
                repr_chars(&rest[..end])
            }
        };
        let message = format!("expected {}, found {}", expected, found);
        syntax_error(self.source, tok.pos, &message, self.field)
    }

    fn is_kw(&self, kw: Kw) -> bool {
        matches!(self.peek().tok, Tok::Kw(k) if k == kw)
    }

    fn is_punct(&self, ch: char) -> bool {
        matches!(self.peek().tok, Tok::Punct(c) if c == ch)
    }

    fn too_deep(&self) -> ExprError {
        let pos = self.peek().pos;
        syntax_error(
            self.source,
            pos,
            "the expression is nested too deeply",
            self.field,
        )
    }

    fn parse(&mut self) -> PResult<Node> {
        let node = self.expr()?;
        if !matches!(self.peek().tok, Tok::End) {
            return Err(self.fail(self.peek(), "\"and\", \"or\" or the end of the expression"));
        }
        Ok(node)
    }

    fn expr(&mut self) -> PResult<Node> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.too_deep());
        }
        let mut parts = vec![self.and_expr()?];
        while self.is_kw(Kw::Or) {
            self.take();
            parts.push(self.and_expr()?);
        }
        self.depth -= 1;
        Ok(if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Node::Or(parts)
        })
    }

    fn and_expr(&mut self) -> PResult<Node> {
        let mut parts = vec![self.not_expr()?];
        while self.is_kw(Kw::And) {
            self.take();
            parts.push(self.not_expr()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Node::And(parts)
        })
    }

    fn not_expr(&mut self) -> PResult<Node> {
        if self.is_kw(Kw::Not) {
            self.take();
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(self.too_deep());
            }
            let inner = self.not_expr()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> PResult<Node> {
        let (left, left_kind) = self.operand()?;
        let op = match self.peek().tok {
            Tok::Op(op) => Some((op, 1)),
            Tok::Kw(Kw::In) => Some((Op::In, 1)),
            Tok::Kw(Kw::Not) if matches!(self.tokens[self.i + 1].tok, Tok::Kw(Kw::In)) => {
                Some((Op::NotIn, 2))
            }
            _ => None,
        };
        let op = match op {
            None => return Ok(left),
            Some((op, tokens)) => {
                self.i += tokens;
                op
            }
        };
        let (right, right_kind) = self.operand()?;
        if op == Op::In || op == Op::NotIn {
            return Ok(Node::Cmp(op, Box::new(left), Box::new(right)));
        }
        // A skill threshold ("spanish >= 3", or "3 <= spanish") may be relaxed while waiting.
        match (left_kind, right_kind, op) {
            (Operand::Ident(slot), Operand::Num(threshold), Op::Ge | Op::Gt) => {
                Ok(Node::Threshold {
                    slot,
                    strict: op == Op::Gt,
                    threshold,
                })
            }
            (Operand::Num(threshold), Operand::Ident(slot), Op::Le | Op::Lt) => {
                Ok(Node::Threshold {
                    slot,
                    strict: op == Op::Lt,
                    threshold,
                })
            }
            _ => Ok(Node::Cmp(op, Box::new(left), Box::new(right))),
        }
    }

    fn operand(&mut self) -> PResult<(Node, Operand)> {
        let tok = self.take();
        match tok.tok {
            Tok::Num(value) => Ok((Node::Const(value.clone()), Operand::Num(value))),
            Tok::Str(s) => Ok((Node::Const(Value::Str(s)), Operand::Other)),
            Tok::Kw(Kw::True) => Ok((Node::Const(Value::Bool(true)), Operand::Other)),
            Tok::Kw(Kw::False) => Ok((Node::Const(Value::Bool(false)), Operand::Other)),
            Tok::Ident(name) => {
                let next = self.names.len();
                let slot = *self.slots.entry(name.clone()).or_insert(next);
                if slot == next {
                    self.names.push(Name {
                        key: Key::new(&name),
                        text: name,
                    });
                }
                Ok((Node::Name(slot), Operand::Ident(slot)))
            }
            Tok::Punct('(') => {
                let inner = self.expr()?;
                let close = self.take();
                if !matches!(close.tok, Tok::Punct(')')) {
                    return Err(self.fail(&close, "\")\""));
                }
                Ok((inner, Operand::Other))
            }
            Tok::Punct('[') => {
                let mut items = Vec::new();
                while !self.is_punct(']') {
                    let item = self.take();
                    match item.tok {
                        Tok::Num(v) => items.push(v),
                        Tok::Str(s) => items.push(Value::Str(s)),
                        _ => return Err(self.fail(&item, "a number or a string in the list")),
                    }
                    if self.is_punct(',') {
                        self.take();
                    } else if !self.is_punct(']') {
                        return Err(self.fail(self.peek(), "\",\" or \"]\""));
                    }
                }
                self.take();
                Ok((Node::Const(Value::Tuple(items)), Operand::Other))
            }
            _ => Err(self.fail(&tok, "a skill, an attribute, a value or (")),
        }
    }
}

/// Parses and compiles `source` (expressions.py `compile_expression`); the error carries the
/// message and `field` of Python's `InvalidInput`.
pub fn compile(source: &str, field: &str) -> Result<Expr, ExprError> {
    let src: Vec<char> = source.chars().collect();
    if src.len() > MAX_LENGTH {
        return Err(ExprError {
            message: format!(
                "The skill expression is too long ({} characters, at most {}).",
                src.len(),
                MAX_LENGTH
            ),
            field: field.to_owned(),
        });
    }
    let tokens = tokenize(&src, source, field)?;
    if matches!(tokens[0].tok, Tok::End) {
        let inner = ExprInner {
            source: source.to_owned(),
            names: Vec::new(),
            root: None,
        };
        return Ok(Expr(Arc::new(inner)));
    }
    let mut parser = Parser {
        src: &src,
        source,
        field,
        tokens,
        i: 0,
        depth: 0,
        names: Vec::new(),
        slots: HashMap::new(),
    };
    let root = parser.parse()?;
    let inner = ExprInner {
        source: source.to_owned(),
        names: parser.names,
        root: Some(root),
    };
    Ok(Expr(Arc::new(inner)))
}

// --- Python binding (for the differential tests) --------------------------------------------

/// A compiled skill expression, for tests against expressions.py's `SkillExpression`.
#[pyclass(
    name = "CompiledExpression",
    module = "sparklecomm.acd._acd_core",
    frozen
)]
pub struct CompiledExpression {
    pub expr: Expr,
}

#[pymethods]
impl CompiledExpression {
    #[new]
    #[args(field = "\"expression\"")]
    fn new(py: Python<'_>, source: &PyAny, field: &str) -> PyResult<Self> {
        let source = match source.downcast::<PyString>() {
            Ok(s) => s.to_str()?,
            Err(_) => {
                return Err(invalid_input(
                    py,
                    "A skill expression must be a string.",
                    field,
                ));
            }
        };
        match compile(source, field) {
            Ok(expr) => Ok(CompiledExpression { expr }),
            Err(err) => Err(err.to_py(py)),
        }
    }

    #[args(relax = "0")]
    fn matches(&self, skills: &PyAny, attributes: &PyAny, relax: i64) -> PyResult<bool> {
        let skills = Skills::from_py(skills)?;
        let attributes = Attributes::from_py(attributes)?;
        Ok(self.expr.matches(&skills, &attributes, relax))
    }

    #[getter]
    fn source(&self) -> &str {
        self.expr.source()
    }

    #[getter]
    fn identifiers<'p>(&self, py: Python<'p>) -> PyResult<&'p PyFrozenSet> {
        PyFrozenSet::new(py, &self.expr.identifiers().collect::<Vec<_>>())
    }

    #[getter]
    fn is_empty(&self) -> bool {
        self.expr.is_empty()
    }

    fn __repr__(&self) -> String {
        format!("CompiledExpression({})", py_repr(self.expr.source()))
    }

    /// The round trip of a value through Value (tests of value_from_py / value_to_py).
    #[staticmethod]
    fn _roundtrip(py: Python<'_>, value: &PyAny) -> PyResult<PyObject> {
        Ok(value_to_py(py, &value_from_py(value)?))
    }

    /// The tokenizer's classes of a character, as the bits of expr_unicode.rs (tests of the
    /// tables against Python's str methods).
    #[staticmethod]
    fn _char_classes(c: char) -> u8 {
        classes(c)
    }
}

// --- tests ----------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn skills(items: &[(&str, i64)]) -> Skills {
        Skills::new(items.iter().map(|(k, v)| (*k, *v)))
    }

    fn check(source: &str, s: &Skills, a: &Attributes, relax: i64) -> bool {
        compile(source, "expression").unwrap().matches(s, a, relax)
    }

    #[test]
    fn examples() {
        let s = skills(&[("billing", 3), ("spanish", 2)]);
        let a = Attributes::new(vec![
            ("language", Value::Str("zh".into())),
            ("level", Value::Int(2)),
            ("trainee", Value::Bool(false)),
            (
                "tags",
                Value::List(vec![Value::Str("x".into()), Value::Int(1)]),
            ),
        ]);
        assert!(check("billing and spanish >= 2", &s, &a, 0));
        assert!(!check("billing and spanish >= 3", &s, &a, 0));
        assert!(check("billing and spanish >= 3", &s, &a, 1));
        assert!(check("spanish > 4", &s, &a, 3));
        assert!(!check("spanish > 4", &s, &a, 2));
        assert!(check(
            "language == \"zh\" and level >= 2 and not trainee",
            &s,
            &a,
            0
        ));
        assert!(check("1 in tags and not (2 in tags)", &s, &a, 0));
        assert!(check("[1.0, 'y'] in tags", &s, &a, 0));
        assert!(!check("true in tags", &s, &a, 0));
        assert!(check("", &s, &a, 0));
        assert!(!check("missing", &s, &a, 0));
        assert!(check("missing != 1", &s, &a, 0));
        assert!(check(
            "100000000000000000000 == 100000000000000000000.0",
            &s,
            &a,
            0
        ));
    }

    #[test]
    fn errors() {
        let err = compile("a = 1", "f").unwrap_err();
        assert_eq!(
            err.message,
            "Syntax error in skill expression at position 3: unexpected '=' (use \"==\" to \
             compare) (in 'a = 1')."
        );
        assert_eq!(err.field, "f");
        let err = compile("(a", "expression").unwrap_err();
        assert!(err
            .message
            .contains("position 3: expected \")\", found the end"));
    }

    #[test]
    fn big_numbers() {
        let big = |s: &str| match Value::from_int_digits(false, s.as_bytes()) {
            Value::BigInt(b) => *b,
            v => panic!("{:?}", v),
        };
        let b = big("340282366920938463463374607431768211456"); // 2**128
        assert_eq!(b.to_hex(), "100000000000000000000000000000000");
        assert_eq!(
            BigInt::from_f64(2f64.powi(128)).cmp_big(&b),
            Ordering::Equal
        );
        assert_eq!(
            num_cmp(Num::B(&b), Num::F(2f64.powi(128))),
            Some(Ordering::Equal)
        );
        assert_eq!(
            num_cmp(Num::B(&b), Num::F(2f64.powi(129))),
            Some(Ordering::Less)
        );
        assert_eq!(
            num_cmp(Num::I(1 << 60), Num::F((1u64 << 60) as f64 + 0.0)),
            Some(Ordering::Equal)
        );
        assert_eq!(
            num_cmp(Num::I((1 << 60) + 1), Num::F((1u64 << 60) as f64)),
            Some(Ordering::Greater)
        );
    }

    /// `std::hint::black_box` (Rust 1.66) for older compilers: hides a value from the optimizer.
    fn opaque<T>(x: T) -> T {
        // SAFETY: reads an initialized value once and forgets the original (no double drop).
        let y = unsafe { std::ptr::read_volatile(&x) };
        std::mem::forget(x);
        y
    }

    /// Timings of `matches`: `RUSTFLAGS="-C link-arg=-lpython3.11" cargo test --release --
    /// --ignored --nocapture expr::tests::bench_matches` (the test binary needs libpython).
    #[test]
    #[ignore]
    fn bench_matches() {
        use std::time::Instant;
        let s = skills(&[
            ("billing", 3),
            ("spanish", 2),
            ("sales", 4),
            ("support", 1),
            ("vip", 5),
        ]);
        let a = Attributes::new(vec![
            ("language", Value::Str("zh".into())),
            ("product", Value::Str("billing".into())),
            ("level", Value::Int(3)),
            ("trainee", Value::Bool(false)),
            ("site", Value::Str("paris".into())),
            ("tier", Value::Int(2)),
        ]);
        for source in [
            "billing >= 2",
            "language == \"zh\" and product in [\"billing\", \"sales\"] and level >= 2 \
             and not trainee",
            "spanish >= 3 or (vip and tier > 1)",
        ] {
            let expr = compile(source, "expression").unwrap();
            // The best of 200 short rounds: timings on a busy machine only ever come out too slow.
            let n = 100_000u32;
            let mut hits = 0u32;
            let mut best = f64::INFINITY;
            for _ in 0..200 {
                let start = Instant::now();
                for i in 0..n {
                    let relax = opaque((i & 1) as i64);
                    hits += opaque(&expr).matches(&s, &a, relax) as u32;
                }
                best = best.min(start.elapsed().as_nanos() as f64 / n as f64);
            }
            let ns = best;
            println!("{:>7.2} ns per matches: {} ({} hits)", ns, source, hits);
        }
    }
}
