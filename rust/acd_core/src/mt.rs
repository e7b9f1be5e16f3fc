//! Python's `random.Random` (MT19937) in Rust, bit for bit.
//!
//! The engine's only source of randomness is a `random.Random` (model.py `EngineConfig.rng`):
//! the random strategies call `rng.randrange(n)` (strategies.py `_start`) and snapshots save
//! `rng.getstate()` (persistence.py `_rng_state`). This is a port of CPython 3.11's
//! `Modules/_randommodule.c` and the parts of `Lib/random.py` the engine uses, so a Rust
//! engine draws the very same numbers from the same state and leaves the same state behind:
//!
//! - `genrand_uint32` (the twister itself), `init_genrand` / `init_by_array` (seeding from an
//!   int, as `random.Random(n)`);
//! - `getrandbits(k)`: for k <= 32 the top k bits of one word; above, 32-bit words from the
//!   least significant up, the last one shifted right to keep its top bits (the C code's
//!   little-endian word array);
//! - `randrange(n)` = `_randbelow_with_getrandbits(n)`: k = n.bit_length(), draw k bits until
//!   the value is below n;
//! - `random()`: 53 bits from two words, `(a >> 5, b >> 6)`;
//! - the state as `getstate()` writes it: `(3, (624 words..., index), gauss_next)`.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::once_cell::GILOnceCell;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple, PyType};
use pyo3::AsPyPointer;

const N: usize = 624;
const M: usize = 397;
const MATRIX_A: u32 = 0x9908_b0df;
const UPPER_MASK: u32 = 0x8000_0000;
const LOWER_MASK: u32 = 0x7fff_ffff;

/// `random.Random.VERSION`, the first item of its state.
pub const STATE_VERSION: u32 = 3;

/// The state of a `random.Random`: the twister's 624 words, its position, and `gauss_next`
/// (kept only to be saved again: the engine never draws Gaussians).
#[derive(Clone)]
pub struct MersenneTwister {
    state: [u32; N],
    index: usize,
    gauss_next: Option<f64>,
}

impl std::fmt::Debug for MersenneTwister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MersenneTwister")
            .field("index", &self.index)
            .field("gauss_next", &self.gauss_next)
            .finish_non_exhaustive()
    }
}

impl PartialEq for MersenneTwister {
    fn eq(&self, other: &Self) -> bool {
        self.state[..] == other.state[..]
            && self.index == other.index
            && self.gauss_next.map(f64::to_bits) == other.gauss_next.map(f64::to_bits)
    }
}

impl MersenneTwister {
    /// A twister from its raw state (`index` 0..=624, as `setstate` accepts).
    pub fn from_parts(state: [u32; N], index: usize, gauss_next: Option<f64>) -> Self {
        assert!(index <= N, "MT19937 index out of range");
        MersenneTwister {
            state,
            index,
            gauss_next,
        }
    }

    /// `random.Random(seed)` for an int seed given as its 32-bit words, least significant
    /// first (the words of `abs(seed)`; no words or `[0]` for 0).
    pub fn from_seed_words(key: &[u32]) -> Self {
        let mut mt = MersenneTwister {
            state: [0; N],
            index: N,
            gauss_next: None,
        };
        mt.init_by_array(if key.is_empty() { &[0] } else { key });
        mt
    }

    /// `random.Random(seed)` for an int seed that fits 128 bits (`abs(seed)` for negatives).
    pub fn from_seed(seed: u128) -> Self {
        let mut words = Vec::with_capacity(4);
        let mut rest = seed;
        while rest != 0 {
            words.push(rest as u32);
            rest >>= 32;
        }
        Self::from_seed_words(&words)
    }

    fn init_genrand(&mut self, s: u32) {
        let mt = &mut self.state;
        mt[0] = s;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let mt = &mut self.state;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
    }

    #[cold]
    fn twist(&mut self) {
        let mt = &mut self.state;
        #[inline(always)]
        fn mag(y: u32) -> u32 {
            if y & 1 != 0 {
                MATRIX_A
            } else {
                0
            }
        }
        for kk in 0..N - M {
            let y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
            mt[kk] = mt[kk + M] ^ (y >> 1) ^ mag(y);
        }
        for kk in N - M..N - 1 {
            let y = (mt[kk] & UPPER_MASK) | (mt[kk + 1] & LOWER_MASK);
            mt[kk] = mt[kk + M - N] ^ (y >> 1) ^ mag(y);
        }
        let y = (mt[N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
        mt[N - 1] = mt[M - 1] ^ (y >> 1) ^ mag(y);
        self.index = 0;
    }

    /// The next 32-bit word (`genrand_uint32`).
    #[inline]
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for 0 <= k <= 128.
    pub fn getrandbits(&mut self, k: u32) -> u128 {
        assert!(k <= 128, "getrandbits: at most 128 bits here");
        if k == 0 {
            return 0;
        }
        if k <= 32 {
            return u128::from(self.next_u32() >> (32 - k));
        }
        // 32-bit words from the least significant up; the last keeps its top bits.
        let mut result = 0u128;
        let mut left = k;
        let mut shift = 0;
        while left > 0 {
            let mut r = self.next_u32();
            if left < 32 {
                r >>= 32 - left;
            }
            result |= u128::from(r) << shift;
            shift += 32;
            left = left.saturating_sub(32);
        }
        result
    }

    /// `getrandbits(k)` for any k: the 32-bit words of the result, least significant first
    /// (`(k + 31) / 32` of them).
    pub fn getrandbits_words(&mut self, k: u32) -> Vec<u32> {
        let mut out = Vec::with_capacity(k as usize / 32 + 1);
        let mut left = k;
        while left > 0 {
            let mut r = self.next_u32();
            if left < 32 {
                r >>= 32 - left;
            }
            out.push(r);
            left = left.saturating_sub(32);
        }
        out
    }

    /// `randrange(n)` (`_randbelow_with_getrandbits`) for 1 <= n < 2**64.
    #[inline]
    pub fn randrange(&mut self, n: u64) -> u64 {
        assert!(n > 0, "empty range for randrange()");
        let k = 64 - n.leading_zeros();
        if k <= 32 {
            let shift = 32 - k;
            loop {
                let r = u64::from(self.next_u32() >> shift);
                if r < n {
                    return r;
                }
            }
        }
        let shift = 64 - k; // the second word keeps its top k - 32 bits
        loop {
            let lo = u64::from(self.next_u32());
            let hi = u64::from(self.next_u32() >> shift);
            let r = lo | (hi << 32);
            if r < n {
                return r;
            }
        }
    }

    /// `randrange(n)` for 1 <= n <= 2**128 - 1.
    pub fn randrange_u128(&mut self, n: u128) -> u128 {
        assert!(n > 0, "empty range for randrange()");
        if let Ok(small) = u64::try_from(n) {
            return u128::from(self.randrange(small));
        }
        let k = 128 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `random()`: a float in [0, 1) with 53 random bits.
    #[inline]
    pub fn random(&mut self) -> f64 {
        let a = self.next_u32() >> 5;
        let b = self.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) * (1.0 / 9_007_199_254_740_992.0)
    }

    pub fn gauss_next(&self) -> Option<f64> {
        self.gauss_next
    }

    /// The twister's words and position (`random.Random.getstate()[1]`, split).
    pub fn words(&self) -> (&[u32; N], usize) {
        (&self.state, self.index)
    }

    /// `random.Random.getstate()`: `(3, (624 words..., index), gauss_next)`.
    pub fn to_py_state(&self, py: Python<'_>) -> PyObject {
        let internal = PyTuple::new(py, self.internal_items(py));
        (STATE_VERSION, internal, self.gauss_next).to_object(py)
    }

    /// The state as a snapshot stores it (persistence.py `_rng_state`):
    /// `[3, [624 words..., index], gauss_next]`.
    pub fn to_snapshot(&self, py: Python<'_>) -> PyObject {
        let internal = PyList::new(py, self.internal_items(py));
        PyList::new(
            py,
            [
                STATE_VERSION.to_object(py),
                internal.to_object(py),
                self.gauss_next.to_object(py),
            ],
        )
        .to_object(py)
    }

    fn internal_items(&self, py: Python<'_>) -> Vec<PyObject> {
        let mut items: Vec<PyObject> = Vec::with_capacity(N + 1);
        items.extend(self.state.iter().map(|w| w.to_object(py)));
        items.push(self.index.to_object(py));
        items
    }

    /// A twister from `random.Random.getstate()` or a snapshot's `[3, [...], gauss]`: what
    /// `Random.setstate` accepts (version 3, or 2 whose words are taken modulo 2**32), with
    /// its errors. Tuples and lists both do (the snapshot loader turns lists into tuples).
    pub fn from_py_state(state: &PyAny) -> PyResult<Self> {
        let items = sequence_items(state, "state")?;
        let version = items.first().ok_or_else(|| {
            PyTypeError::new_err("state must be a (version, internalstate, gauss_next) tuple")
        })?;
        let v2 = if version.eq(3)? {
            false
        } else if version.eq(2)? {
            true
        } else {
            return Err(PyValueError::new_err(format!(
                "state with version {} passed to Random.setstate() of version {}",
                version.str()?,
                STATE_VERSION
            )));
        };
        if items.len() != 3 {
            return Err(PyValueError::new_err(format!(
                "{} values to unpack (expected 3, got {})",
                if items.len() > 3 {
                    "too many"
                } else {
                    "not enough"
                },
                items.len()
            )));
        }
        let gauss_next: Option<f64> = items[2].extract()?;
        let mut internal = sequence_items(items[1], "state vector")?;
        if v2 {
            // random.py: `tuple(x % (2 ** 32) for x in internalstate)`, the index included.
            let py = state.py();
            let modulus = (1u64 << 32).to_object(py);
            internal = internal
                .iter()
                .map(|x| {
                    // SAFETY: live objects; a new reference or NULL with an exception set.
                    unsafe {
                        py.from_owned_ptr_or_err(pyo3::ffi::PyNumber_Remainder(
                            x.as_ptr(),
                            modulus.as_ptr(),
                        ))
                    }
                })
                .collect::<PyResult<_>>()?;
        }
        if internal.len() != N + 1 {
            return Err(PyValueError::new_err("state vector is the wrong size"));
        }
        let mut words = [0u32; N];
        for (slot, item) in words.iter_mut().zip(internal.iter()) {
            // C: PyLong_AsUnsignedLong, then a cast to uint32 (the low 32 bits).
            let value: u64 = item.extract()?;
            *slot = value as u32;
        }
        let index: i64 = internal[N].extract()?;
        if !(0..=N as i64).contains(&index) {
            return Err(PyValueError::new_err("invalid state"));
        }
        Ok(MersenneTwister {
            state: words,
            index: index as usize,
            gauss_next,
        })
    }
}

impl crate::ready::Draw for MersenneTwister {
    #[inline]
    fn randrange(&mut self, n: u64) -> u64 {
        MersenneTwister::randrange(self, n)
    }
}

static RANDOM_CLASS: GILOnceCell<Py<PyType>> = GILOnceCell::new();

/// `random.Random` (imported once).
fn random_class(py: Python<'_>) -> PyResult<&PyType> {
    if let Some(class) = RANDOM_CLASS.get(py) {
        return Ok(class.as_ref(py));
    }
    let class: Py<PyType> = py
        .import("random")?
        .getattr("Random")?
        .downcast::<PyType>()?
        .into();
    let _ = RANDOM_CLASS.set(py, class);
    Ok(RANDOM_CLASS.get(py).expect("just set").as_ref(py))
}

impl MersenneTwister {
    /// The state of `rng` when it is exactly a `random.Random` (None for anything else, a
    /// subclass included: it may draw differently, so the engine must call it instead).
    pub fn from_random(rng: &PyAny) -> PyResult<Option<Self>> {
        if !rng.get_type().is(random_class(rng.py())?) {
            return Ok(None);
        }
        let state = rng.call_method0(intern!(rng.py(), "getstate"))?;
        Self::from_py_state(state).map(Some)
    }

    /// Hands the state back to a `random.Random` (`rng.setstate(...)`), so that it goes on
    /// with the draws this twister would make.
    pub fn store_into(&self, rng: &PyAny) -> PyResult<()> {
        let py = rng.py();
        rng.call_method1(intern!(py, "setstate"), (self.to_py_state(py),))?;
        Ok(())
    }
}

fn sequence_items<'p>(obj: &'p PyAny, what: &str) -> PyResult<Vec<&'p PyAny>> {
    if let Ok(t) = obj.downcast::<PyTuple>() {
        Ok(t.iter().collect())
    } else if let Ok(l) = obj.downcast::<PyList>() {
        Ok(l.iter().collect())
    } else {
        Err(PyTypeError::new_err(format!(
            "{what} must be a tuple or a list"
        )))
    }
}
