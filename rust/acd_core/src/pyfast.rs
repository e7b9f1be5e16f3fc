//! Event payloads and event lists built straight through the C API.
//!
//! The routing hot path builds about ten payload dicts per interaction. PyO3's safe wrappers
//! turn every value into an owned `PyObject` whose drop goes through `register_decref` (a
//! thread-local lookup in a shared library); here values are created, stored and released
//! with the raw calls while the GIL is held, and dicts are presized to their item count.

use pyo3::ffi;
use pyo3::AsPyPointer;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

/// The interned Python str of a word the hot path puts in every lifecycle's events (agent
/// state reasons, offer kinds), None for other text.
#[inline]
fn common_word<'p>(py: Python<'p>, value: &str) -> Option<&'p PyString> {
    use pyo3::intern;
    Some(match value {
        "offered" => intern!(py, "offered"),
        "accepted" => intern!(py, "accepted"),
        "completed" => intern!(py, "completed"),
        "wrapup_ended" => intern!(py, "wrapup_ended"),
        "offer_withdrawn" => intern!(py, "offer_withdrawn"),
        "offer_timed_out" => intern!(py, "offer_timed_out"),
        "login" => intern!(py, "login"),
        "created" => intern!(py, "created"),
        "new" => intern!(py, "new"),
        "queue" => intern!(py, "queue"),
        "transfer" => intern!(py, "transfer"),
        "timer" => intern!(py, "timer"),
        "none" => intern!(py, "none"),
        _ => return None,
    })
}

/// A payload dict being filled (owned; released if dropped before `finish`).
pub struct Payload {
    dict: *mut ffi::PyObject,
}

impl Payload {
    /// A new dict sized for `n` items.
    pub fn new(_py: Python<'_>, n: usize) -> PyResult<Payload> {
        // SAFETY: the GIL is held (`_py`).
        let dict = unsafe { ffi::_PyDict_NewPresized(n as ffi::Py_ssize_t) };
        if dict.is_null() {
            return Err(PyErr::fetch(_py));
        }
        Ok(Payload { dict })
    }

    /// Stores `value`, a new reference, which the dict takes over.
    #[inline]
    fn set_owned(&self, py: Python<'_>, key: &PyString, value: *mut ffi::PyObject) -> PyResult<()> {
        if value.is_null() {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: GIL held; `value` is a new reference released here after the dict took
        // its own.
        unsafe {
            let rc = ffi::PyDict_SetItem(self.dict, key.as_ptr(), value);
            ffi::Py_DECREF(value);
            if rc < 0 {
                return Err(PyErr::fetch(py));
            }
        }
        Ok(())
    }

    /// Stores a borrowed object (the dict takes its own reference).
    #[inline]
    pub fn obj(&self, py: Python<'_>, key: &PyString, value: &PyAny) -> PyResult<()> {
        // SAFETY: GIL held; both objects are alive.
        if unsafe { ffi::PyDict_SetItem(self.dict, key.as_ptr(), value.as_ptr()) } < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }

    #[inline]
    pub fn none(&self, py: Python<'_>, key: &PyString) -> PyResult<()> {
        // SAFETY: GIL held; None is borrowed, the dict takes its own reference.
        if unsafe { ffi::PyDict_SetItem(self.dict, key.as_ptr(), ffi::Py_None()) } < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }

    #[inline]
    pub fn boolean(&self, py: Python<'_>, key: &PyString, value: bool) -> PyResult<()> {
        // SAFETY: the bool singletons are immortal enough: borrowed, the dict increfs.
        let ptr = unsafe {
            if value {
                ffi::Py_True()
            } else {
                ffi::Py_False()
            }
        };
        // SAFETY: as above.
        if unsafe { ffi::PyDict_SetItem(self.dict, key.as_ptr(), ptr) } < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }

    #[inline]
    pub fn int(&self, py: Python<'_>, key: &PyString, value: i64) -> PyResult<()> {
        // SAFETY: GIL held.
        self.set_owned(py, key, unsafe { ffi::PyLong_FromLongLong(value) })
    }

    #[inline]
    pub fn float(&self, py: Python<'_>, key: &PyString, value: f64) -> PyResult<()> {
        // SAFETY: GIL held.
        self.set_owned(py, key, unsafe { ffi::PyFloat_FromDouble(value) })
    }

    /// A Rust string, as a Python str (the interned one for the words the routing hot path
    /// repeats: reasons and offer kinds; a new str otherwise).
    #[inline]
    pub fn text(&self, py: Python<'_>, key: &PyString, value: &str) -> PyResult<()> {
        if let Some(word) = common_word(py, value) {
            return self.obj(py, key, word);
        }
        // SAFETY: GIL held; the bytes are valid UTF-8 of the given length.
        self.set_owned(py, key, unsafe {
            ffi::PyUnicode_FromStringAndSize(
                value.as_ptr() as *const std::os::raw::c_char,
                value.len() as ffi::Py_ssize_t,
            )
        })
    }

    pub fn opt_int(&self, py: Python<'_>, key: &PyString, value: Option<i64>) -> PyResult<()> {
        match value {
            Some(v) => self.int(py, key, v),
            None => self.none(py, key),
        }
    }

    pub fn opt_float(&self, py: Python<'_>, key: &PyString, value: Option<f64>) -> PyResult<()> {
        match value {
            Some(v) => self.float(py, key, v),
            None => self.none(py, key),
        }
    }

    pub fn opt_text(&self, py: Python<'_>, key: &PyString, value: Option<&str>) -> PyResult<()> {
        match value {
            Some(v) => self.text(py, key, v),
            None => self.none(py, key),
        }
    }

    /// The dict as a Python object (for payloads built in pieces).
    pub fn as_dict<'p>(&self, py: Python<'p>) -> &'p PyDict {
        // SAFETY: we own a reference to the dict for our lifetime, which the borrow is tied
        // to through `py` only: callers use it before `finish`.
        unsafe { py.from_borrowed_ptr(self.dict) }
    }

    /// The finished dict (our reference moves out).
    pub fn finish(self, py: Python<'_>) -> Py<PyDict> {
        let dict = self.dict;
        std::mem::forget(self);
        // SAFETY: `dict` is our owned reference.
        unsafe { Py::from_owned_ptr(py, dict) }
    }
}

impl Drop for Payload {
    fn drop(&mut self) {
        // Only on an error path (finish forgets self). The GIL is held wherever payloads are
        // built: the engine's methods run with it.
        // SAFETY: see above.
        unsafe { ffi::Py_DECREF(self.dict) };
    }
}

/// The events of one command, as owned pointers (no per-event PyO3 bookkeeping).
#[derive(Default)]
pub struct EventList {
    items: Vec<*mut ffi::PyObject>,
}

// SAFETY: the pointers are only touched by the engine's methods, which hold the GIL, and the
// list is empty between commands (`take_list` / `clear`).
unsafe impl Send for EventList {}

impl EventList {
    pub fn push(&mut self, event: PyObject) {
        self.items.push(event.into_ptr());
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Releases the events (a command that failed after emitting some).
    pub fn clear(&mut self, _py: Python<'_>) {
        for ptr in self.items.drain(..) {
            // SAFETY: GIL held (`_py`); each pointer is an owned reference.
            unsafe { ffi::Py_DECREF(ptr) };
        }
    }

    /// A Python list of the events (they move into it).
    pub fn take_list(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        // SAFETY: GIL held; PyList_SET_ITEM steals each owned reference.
        unsafe {
            let list = ffi::PyList_New(self.items.len() as ffi::Py_ssize_t);
            if list.is_null() {
                return Err(PyErr::fetch(py));
            }
            for (i, ptr) in self.items.drain(..).enumerate() {
                ffi::PyList_SET_ITEM(list, i as ffi::Py_ssize_t, ptr);
            }
            Ok(PyObject::from_owned_ptr(py, list))
        }
    }
}
