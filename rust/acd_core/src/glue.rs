//! The engine's building blocks for talking to Python, exact and fast.
//!
//! - [`IsoText`]: `from_us(us).isoformat()` for engine instants (model.py `IsoText`), and
//!   [`datetime_from_us`] (model.py `from_us`).
//! - [`EventSink`]: `NewEvent(type, payload, time)` objects (engine.py `_new_event`), written
//!   straight into the slots of the frozen dataclass; payload dicts from [`Val`] values
//!   (the [`payload!`](crate::payload) macro interns the keys).
//! - [`EngineError`]: the domain errors (`sparklecomm.core.errors`), raised with their
//!   `detail` and `field` as the Python engine raises them; [`repr_str`] for the `{id!r}` in
//!   their messages.
//! - Test-only bindings (`iso_text`, `datetime_from_us`, `make_event`, `raise_error`,
//!   `MersenneTwister`, `glue_bench`) for tests/routing/compiled/test_glue.py.
//!
//! Engine times are integer microseconds since EPOCH = 2020-01-01T00:00:00Z.

use std::borrow::Cow;
use std::fmt;
use std::os::raw::c_int;
use std::sync::Mutex;

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::once_cell::GILOnceCell;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyType};
use pyo3::{intern, AsPyPointer};

use crate::mt;

// =============================================================================================
// Instants
// =============================================================================================

pub const US_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;
/// Days from 1970-01-01 to the engine's EPOCH (2020-01-01).
const EPOCH_DAYS: i64 = 18_262;
/// The first and last instants a Python datetime can hold (0001-01-01T00:00:00 and
/// 9999-12-31T23:59:59.999999), in engine microseconds.
pub const MIN_US: i64 = (-719_162 - EPOCH_DAYS) * SECONDS_PER_DAY * US_PER_SECOND;
pub const MAX_US: i64 = (2_932_897 - EPOCH_DAYS) * SECONDS_PER_DAY * US_PER_SECOND - 1;

/// An instant outside what a Python datetime holds: `from_us` raises
/// `OverflowError("date value out of range")` there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateOutOfRange;

impl fmt::Display for DateOutOfRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("date value out of range")
    }
}

impl From<DateOutOfRange> for PyErr {
    fn from(_: DateOutOfRange) -> PyErr {
        PyOverflowError::new_err("date value out of range")
    }
}

/// The civil date and time of an engine instant (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    pub year: i32,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub micro: u32,
}

/// (year, month, day) of a day number counted from 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 of a civil date (proleptic Gregorian; inverse of civil_from_days).
pub fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `to_us(moment)` for a `datetime` whose tzinfo is `datetime.UTC` (None otherwise: the
/// caller asks Python, which also handles other time zones and naive datetimes).
pub fn utc_datetime_to_us(moment: &PyAny) -> PyResult<Option<i64>> {
    use pyo3::types::{PyDateAccess, PyDateTime, PyTimeAccess};
    let py = moment.py();
    // timezone_utc also makes sure the datetime C API is loaded.
    let utc = pyo3::types::timezone_utc(py);
    // SAFETY: a live object; the datetime C API is loaded (above).
    if unsafe { pyo3::ffi::PyDateTime_CheckExact(moment.as_ptr()) } == 0 {
        return Ok(None);
    }
    let dt: &PyDateTime = moment.downcast()?;
    if !moment.getattr(pyo3::intern!(py, "tzinfo"))?.is(utc) {
        return Ok(None);
    }
    let days = days_from_civil(i64::from(dt.get_year()), dt.get_month(), dt.get_day());
    let seconds = (days - EPOCH_DAYS) * SECONDS_PER_DAY
        + i64::from(dt.get_hour()) * 3600
        + i64::from(dt.get_minute()) * 60
        + i64::from(dt.get_second());
    Ok(Some(seconds * US_PER_SECOND + i64::from(dt.get_microsecond())))
}

/// The UTC date and time of `us` (microseconds since EPOCH), as `from_us(us)` has it.
pub fn civil_from_us(us: i64) -> Result<Civil, DateOutOfRange> {
    if !(MIN_US..=MAX_US).contains(&us) {
        return Err(DateOutOfRange);
    }
    let seconds = us.div_euclid(US_PER_SECOND);
    let micro = us.rem_euclid(US_PER_SECOND) as u32;
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let in_day = seconds.rem_euclid(SECONDS_PER_DAY);
    let (year, month, day) = civil_from_days(days + EPOCH_DAYS);
    Ok(Civil {
        year: year as i32,
        month,
        day,
        hour: (in_day / 3600) as u8,
        minute: (in_day / 60 % 60) as u8,
        second: (in_day % 60) as u8,
        micro,
    })
}

/// The UTC-aware datetime `from_us(us)` (`EPOCH + timedelta(microseconds=us)`).
pub fn datetime_from_us(py: Python<'_>, us: i64) -> PyResult<PyObject> {
    let c = civil_from_us(us)?;
    // timezone_utc also makes sure the datetime C API is loaded.
    let utc = pyo3::types::timezone_utc(py);
    // SAFETY: the datetime C API is loaded (above); the call returns a new reference or
    // NULL with an exception set.
    unsafe {
        let api = &*ffi::PyDateTimeAPI();
        let ptr = (api.DateTime_FromDateAndTime)(
            c.year as c_int,
            c_int::from(c.month),
            c_int::from(c.day),
            c_int::from(c.hour),
            c_int::from(c.minute),
            c_int::from(c.second),
            c.micro as c_int,
            utc.as_ptr(),
            api.DateTimeType,
        );
        PyObject::from_owned_ptr_or_err(py, ptr)
    }
}

/// A new Python str (not parked in PyO3's pool of owned objects, unlike `PyString::new`).
#[inline]
pub fn py_str(py: Python<'_>, s: &str) -> PyObject {
    // SAFETY: a new reference, or NULL only when out of memory.
    unsafe {
        let ptr = ffi::PyUnicode_FromStringAndSize(
            s.as_ptr() as *const std::os::raw::c_char,
            s.len() as ffi::Py_ssize_t,
        );
        PyObject::from_owned_ptr_or_err(py, ptr).expect("str")
    }
}

/// model.py `seconds_to_us`: `round(seconds * US)`, Python's `round` (halves to even), with
/// its errors for NaN and infinities; results beyond an i64 (Python has big ints there)
/// raise OverflowError too.
pub fn seconds_to_us(seconds: f64) -> PyResult<i64> {
    let x = seconds * US_PER_SECOND as f64;
    // float.__round__ without ndigits (Objects/floatobject.c).
    let mut rounded = x.round();
    if (x - rounded).abs() == 0.5 {
        rounded = 2.0 * (x / 2.0).round();
    }
    if rounded.is_nan() {
        return Err(PyValueError::new_err("cannot convert float NaN to integer"));
    }
    if rounded.is_infinite() {
        return Err(PyOverflowError::new_err(
            "cannot convert float infinity to integer",
        ));
    }
    // -2**63 is exact in f64; 2**63 is the first value above the range.
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&rounded) {
        return Err(PyOverflowError::new_err(
            "microseconds out of the engine's range",
        ));
    }
    Ok(rounded as i64)
}

/// engine.py `_sec`: `us / US` as a float (Python's true division is correctly rounded; so
/// is this for |us| <= 2**53, 285 years, all the durations the engine reports).
#[inline]
pub fn sec(us: i64) -> f64 {
    debug_assert!(
        us.unsigned_abs() <= 1 << 53,
        "sec: rounded twice beyond 2**53 us"
    );
    us as f64 / US_PER_SECOND as f64
}

#[inline]
fn put_digits(buf: &mut [u8], mut value: u32) {
    for b in buf.iter_mut().rev() {
        *b = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `from_us(us).isoformat()` ("2026-12-06T17:03:04.000123+00:00"; no fraction when the
/// microseconds are 0), keeping the text up to the second from the previous call like
/// model.py's `IsoText`, so instants in the same second cost a few digit writes. One per
/// kind of instant (each keeps its last second).
#[derive(Clone, Debug)]
pub struct IsoText {
    second: i64,
    valid: bool,
    len: usize,
    buf: [u8; 32],
}

impl Default for IsoText {
    fn default() -> Self {
        Self::new()
    }
}

const HEAD: usize = 19; // "YYYY-MM-DDTHH:MM:SS"

impl IsoText {
    pub const fn new() -> Self {
        IsoText {
            second: 0,
            valid: false,
            len: 0,
            buf: [0; 32],
        }
    }

    /// The ISO text of `us`, valid until the next call.
    pub fn text(&mut self, us: i64) -> Result<&str, DateOutOfRange> {
        let second = us.div_euclid(US_PER_SECOND);
        let micro = us.rem_euclid(US_PER_SECOND) as u32;
        if !self.valid || second != self.second {
            let c = civil_from_us(us)?;
            let b = &mut self.buf;
            put_digits(&mut b[0..4], c.year as u32);
            b[4] = b'-';
            put_digits(&mut b[5..7], u32::from(c.month));
            b[7] = b'-';
            put_digits(&mut b[8..10], u32::from(c.day));
            b[10] = b'T';
            put_digits(&mut b[11..13], u32::from(c.hour));
            b[13] = b':';
            put_digits(&mut b[14..16], u32::from(c.minute));
            b[16] = b':';
            put_digits(&mut b[17..19], u32::from(c.second));
            self.second = second;
            self.valid = true;
        }
        let mut at = HEAD;
        if micro != 0 {
            self.buf[at] = b'.';
            put_digits(&mut self.buf[at + 1..at + 7], micro);
            at += 7;
        }
        self.buf[at..at + 6].copy_from_slice(b"+00:00");
        self.len = at + 6;
        // SAFETY: only ASCII digits and separators were written.
        Ok(unsafe { std::str::from_utf8_unchecked(&self.buf[..self.len]) })
    }

    /// The ISO text of `us` as a new Python str.
    pub fn py_text(&mut self, py: Python<'_>, us: i64) -> PyResult<PyObject> {
        let text = self.text(us)?;
        Ok(py_str(py, text))
    }
}

// =============================================================================================
// Events and payloads
// =============================================================================================

fn cached<'py, T>(
    cell: &'py GILOnceCell<T>,
    py: Python<'py>,
    init: impl FnOnce() -> PyResult<T>,
) -> PyResult<&'py T> {
    if let Some(value) = cell.get(py) {
        return Ok(value);
    }
    let value = init()?;
    let _ = cell.set(py, value); // set by a nested call meanwhile: keep that one
    Ok(cell.get(py).expect("just set"))
}

/// How [`EventSink`] fills the three slots of a new `NewEvent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventPath {
    /// Writes the slots at their offsets (checked to be plain object members).
    Slots,
    /// Calls the slot descriptors' `tp_descr_set` (what `vars(NewEvent)["type"].__set__`
    /// does, from C).
    Descriptors,
}

/// Builds `NewEvent(type, payload, time)` objects (a frozen, slotted dataclass) the way
/// engine.py `_new_event` does: `object.__new__(NewEvent)`, then the three slots set, which
/// gives the very same object as the dataclass `__init__`.
pub struct EventSink {
    ty: Py<PyType>,
    descriptors: [PyObject; 3],
    /// Byte offsets of the `type`, `payload` and `time` slots, when they are plain
    /// `T_OBJECT_EX` members of NewEvent (they are, for a slotted dataclass).
    offsets: Option<[isize; 3]>,
}

const EVENT_FIELDS: [&str; 3] = ["type", "payload", "time"];
const READONLY: c_int = 1;

static EVENT_SINK: GILOnceCell<EventSink> = GILOnceCell::new();

/// The process-wide [`EventSink`] (imports `sparklecomm.core.events` on first use).
pub fn event_sink(py: Python<'_>) -> PyResult<&EventSink> {
    cached(&EVENT_SINK, py, || EventSink::new(py))
}

impl EventSink {
    pub fn new(py: Python<'_>) -> PyResult<Self> {
        let ty: &PyType = py
            .import("sparklecomm.core.events")?
            .getattr("NewEvent")?
            .downcast()?;
        let names: Vec<String> = py
            .import("dataclasses")?
            .call_method1("fields", (ty,))?
            .iter()?
            .map(|f| f?.getattr("name")?.extract())
            .collect::<PyResult<_>>()?;
        if names != EVENT_FIELDS {
            return Err(PyTypeError::new_err(
                "NewEvent changed: update EventSink in rust/acd_core/src/glue.rs.",
            ));
        }
        let vars = ty.getattr("__dict__")?;
        let mut descriptors: Vec<PyObject> = Vec::with_capacity(3);
        let mut offsets = [0isize; 3];
        let mut plain = true;
        for (i, name) in EVENT_FIELDS.iter().enumerate() {
            let descr = vars.get_item(*name)?;
            // SAFETY: the type is checked before the cast; the member table of a member
            // descriptor lives as long as its type.
            unsafe {
                let is_member =
                    ffi::Py_TYPE(descr.as_ptr()) == std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type);
                if is_member {
                    let md = descr.as_ptr() as *mut ffi::PyMemberDescrObject;
                    let def = (*md).d_member as *const ffi::structmember::PyMemberDef;
                    let owner = (*md).d_common.d_type;
                    plain &= owner == ty.as_type_ptr()
                        && (*def).type_code == ffi::structmember::T_OBJECT_EX
                        && (*def).flags & READONLY == 0
                        && (*def).offset > 0;
                    offsets[i] = (*def).offset;
                } else {
                    plain = false;
                }
                if (*ffi::Py_TYPE(descr.as_ptr())).tp_descr_set.is_none() {
                    return Err(PyTypeError::new_err(format!(
                        "NewEvent.{name} is not a slot"
                    )));
                }
            }
            descriptors.push(descr.to_object(py));
        }
        let descriptors: [PyObject; 3] = descriptors.try_into().expect("three descriptors");
        let offsets = if plain { Some(offsets) } else { None };
        Ok(EventSink {
            ty: ty.into(),
            descriptors,
            offsets,
        })
    }

    /// The `type`, `payload` and `time` of a `NewEvent`, read straight from its slots
    /// (borrowed); None for any other object, or a slot not set (the caller reads the
    /// attributes instead).
    ///
    /// # Safety
    /// The GIL is held and `obj` is a live object; the pointers returned are borrowed from it.
    #[inline]
    pub unsafe fn slots_of(&self, obj: *mut ffi::PyObject) -> Option<[*mut ffi::PyObject; 3]> {
        let offsets = self.offsets?;
        if ffi::Py_TYPE(obj) != self.ty.as_ptr() as *mut ffi::PyTypeObject {
            return None;
        }
        let mut out = [std::ptr::null_mut(); 3];
        for (slot, offset) in out.iter_mut().zip(offsets.iter()) {
            let value = *((obj as *mut u8).offset(*offset) as *mut *mut ffi::PyObject);
            if value.is_null() {
                return None;
            }
            *slot = value;
        }
        Some(out)
    }

    /// The path [`EventSink::new_event`] takes.
    pub fn path(&self) -> EventPath {
        if self.offsets.is_some() {
            EventPath::Slots
        } else {
            EventPath::Descriptors
        }
    }

    /// `NewEvent(type_, payload, time)` (the arguments are borrowed).
    #[inline]
    pub fn new_event(
        &self,
        py: Python<'_>,
        type_: &PyAny,
        payload: &PyAny,
        time: &PyAny,
    ) -> PyResult<PyObject> {
        self.new_event_by(py, self.path(), type_, payload, time)
    }

    /// `NewEvent(type_, payload, time)` built along `path` (`Slots` falls back to
    /// `Descriptors` where the slots are not plain members).
    pub fn new_event_by(
        &self,
        py: Python<'_>,
        path: EventPath,
        type_: &PyAny,
        payload: &PyAny,
        time: &PyAny,
    ) -> PyResult<PyObject> {
        // SAFETY: the three pointers are live borrowed references; the raw calls take new
        // references of their own.
        unsafe {
            let values = [type_.as_ptr(), payload.as_ptr(), time.as_ptr()];
            let ptr = match (path, self.offsets) {
                (EventPath::Slots, Some(offsets)) => self.build_slots(offsets, values),
                _ => self.build_descriptors(values),
            };
            if ptr.is_null() {
                Err(PyErr::fetch(py))
            } else {
                Ok(PyObject::from_owned_ptr(py, ptr))
            }
        }
    }

    /// `NewEvent(type_, payload, time)`, taking over `payload` (a dict just built for the
    /// event: its reference moves into the event).
    #[inline]
    pub fn new_event_with(
        &self,
        py: Python<'_>,
        type_: &PyString,
        payload: Py<PyDict>,
        time: &PyAny,
    ) -> PyResult<PyObject> {
        // SAFETY: live objects; the slot path keeps our payload reference (into_ptr), the
        // descriptor path takes its own and ours is dropped below.
        unsafe {
            let values = [type_.as_ptr(), payload.as_ptr(), time.as_ptr()];
            let ptr = match self.offsets {
                Some(offsets) => {
                    let ptr = self.alloc();
                    if !ptr.is_null() {
                        for (i, (offset, value)) in offsets.iter().zip(values.iter()).enumerate() {
                            if i != 1 {
                                ffi::Py_INCREF(*value);
                            }
                            *((ptr as *mut u8).offset(*offset) as *mut *mut ffi::PyObject) = *value;
                        }
                        std::mem::forget(payload);
                    }
                    ptr
                }
                None => self.build_descriptors(values),
            };
            if ptr.is_null() {
                Err(PyErr::fetch(py))
            } else {
                Ok(PyObject::from_owned_ptr(py, ptr))
            }
        }
    }

    /// A new `NewEvent` from borrowed pointers (a new reference, or NULL with an exception
    /// set).
    ///
    /// # Safety
    /// The GIL is held and the three pointers are live objects.
    #[inline]
    pub unsafe fn new_event_ptr(&self, values: [*mut ffi::PyObject; 3]) -> *mut ffi::PyObject {
        match self.offsets {
            Some(offsets) => self.build_slots(offsets, values),
            None => self.build_descriptors(values),
        }
    }

    #[inline]
    unsafe fn alloc(&self) -> *mut ffi::PyObject {
        // object.__new__(NewEvent) is tp_alloc(NewEvent, 0) (NewEvent is not abstract).
        let tp = self.ty.as_ptr() as *mut ffi::PyTypeObject;
        match (*tp).tp_alloc {
            Some(alloc) => alloc(tp, 0),
            None => ffi::PyType_GenericAlloc(tp, 0),
        }
    }

    #[inline]
    unsafe fn build_slots(
        &self,
        offsets: [isize; 3],
        values: [*mut ffi::PyObject; 3],
    ) -> *mut ffi::PyObject {
        let obj = self.alloc();
        if obj.is_null() {
            return obj;
        }
        // A fresh object: its slots are NULL, nothing to release.
        for (offset, value) in offsets.iter().zip(values.iter()) {
            ffi::Py_INCREF(*value);
            *((obj as *mut u8).offset(*offset) as *mut *mut ffi::PyObject) = *value;
        }
        obj
    }

    unsafe fn build_descriptors(&self, values: [*mut ffi::PyObject; 3]) -> *mut ffi::PyObject {
        let obj = self.alloc();
        if obj.is_null() {
            return obj;
        }
        for (descr, value) in self.descriptors.iter().zip(values.iter()) {
            let set = (*ffi::Py_TYPE(descr.as_ptr()))
                .tp_descr_set
                .expect("checked in new");
            if set(descr.as_ptr(), obj, *value) < 0 {
                ffi::Py_DECREF(obj);
                return std::ptr::null_mut();
            }
        }
        obj
    }

    /// `NewEvent(type_, payload, time)` by calling the class (the reference path, slowest).
    pub fn new_event_call(
        &self,
        py: Python<'_>,
        type_: &PyAny,
        payload: &PyAny,
        time: &PyAny,
    ) -> PyResult<PyObject> {
        Ok(self
            .ty
            .as_ref(py)
            .call1((type_, payload, time))?
            .to_object(py))
    }
}

/// A payload value: what engine.py puts in its payload dicts.
#[derive(Clone, Debug)]
pub enum Val<'a> {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
    /// An existing Python str (an interned name, a cached id).
    PyStr(&'a PyString),
    List(Vec<Val<'a>>),
    /// A dict, in this key order.
    Dict(Vec<(&'a str, Val<'a>)>),
    /// Any Python object, as is (shared, not copied).
    Obj(&'a PyAny),
}

impl ToPyObject for Val<'_> {
    fn to_object(&self, py: Python<'_>) -> PyObject {
        // Built through the C API so that nothing lands in PyO3's pool of owned objects (it
        // lives until the end of the call from Python: a long command would pile up there).
        // SAFETY: each call gives a new reference (NULL only when out of memory).
        unsafe {
            match self {
                Val::None => py.None(),
                Val::Bool(b) => b.to_object(py),
                Val::Int(i) => i.to_object(py),
                Val::Float(f) => {
                    PyObject::from_owned_ptr_or_err(py, ffi::PyFloat_FromDouble(*f)).expect("float")
                }
                Val::Str(s) => py_str(py, s),
                Val::PyStr(s) => s.to_object(py),
                Val::List(items) => {
                    let list = ffi::PyList_New(items.len() as ffi::Py_ssize_t);
                    let list = PyObject::from_owned_ptr_or_err(py, list).expect("list");
                    for (i, item) in items.iter().enumerate() {
                        // PyList_SET_ITEM steals the item's reference.
                        ffi::PyList_SET_ITEM(
                            list.as_ptr(),
                            i as ffi::Py_ssize_t,
                            item.to_object(py).into_ptr(),
                        );
                    }
                    list
                }
                Val::Dict(items) => {
                    let dict = new_dict(py, items.len());
                    for (k, v) in items {
                        let key = py_str(py, k);
                        // Fails only for unhashable keys (never a str) or out of memory.
                        let rc = ffi::PyDict_SetItem(
                            dict.as_ptr(),
                            key.as_ptr(),
                            v.to_object(py).as_ptr(),
                        );
                        assert!(rc == 0, "dict item");
                    }
                    dict.into()
                }
                Val::Obj(o) => o.to_object(py),
            }
        }
    }
}

impl<'a> From<bool> for Val<'a> {
    fn from(v: bool) -> Self {
        Val::Bool(v)
    }
}
impl<'a> From<i64> for Val<'a> {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl<'a> From<i32> for Val<'a> {
    fn from(v: i32) -> Self {
        Val::Int(i64::from(v))
    }
}
impl<'a> From<u32> for Val<'a> {
    fn from(v: u32) -> Self {
        Val::Int(i64::from(v))
    }
}
impl<'a> From<f64> for Val<'a> {
    fn from(v: f64) -> Self {
        Val::Float(v)
    }
}
impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::Str(v)
    }
}
impl<'a> From<&'a String> for Val<'a> {
    fn from(v: &'a String) -> Self {
        Val::Str(v.as_str())
    }
}
impl<'a> From<&'a PyString> for Val<'a> {
    fn from(v: &'a PyString) -> Self {
        Val::PyStr(v)
    }
}
impl<'a> From<&'a PyAny> for Val<'a> {
    fn from(v: &'a PyAny) -> Self {
        Val::Obj(v)
    }
}
impl<'a, T: Into<Val<'a>>> From<Option<T>> for Val<'a> {
    fn from(v: Option<T>) -> Self {
        match v {
            Some(v) => v.into(),
            None => Val::None,
        }
    }
}
impl<'a, T: Into<Val<'a>>> From<Vec<T>> for Val<'a> {
    fn from(v: Vec<T>) -> Self {
        Val::List(v.into_iter().map(Into::into).collect())
    }
}

/// A new dict sized for `n` items (as the dict display `{...}` of n items is).
pub fn new_dict(py: Python<'_>, n: usize) -> Py<PyDict> {
    // SAFETY: a new reference, or NULL only when out of memory.
    unsafe {
        let ptr = ffi::_PyDict_NewPresized(n as ffi::Py_ssize_t);
        Py::from_owned_ptr_or_err(py, ptr).expect("dict")
    }
}

/// `dict[key] = value`, taking over `value` (no reference count round trip).
#[inline]
pub fn dict_set(
    py: Python<'_>,
    dict: &Py<PyDict>,
    key: &PyString,
    value: PyObject,
) -> PyResult<()> {
    // SAFETY: PyDict_SetItem takes its own references; ours to `value` goes with it.
    unsafe {
        let rc = ffi::PyDict_SetItem(dict.as_ptr(), key.as_ptr(), value.as_ptr());
        drop(value);
        if rc < 0 {
            return Err(PyErr::fetch(py));
        }
    }
    Ok(())
}

/// A payload dict from (key, value) pairs, in their order.
pub fn payload_dict(py: Python<'_>, items: &[(&PyString, Val<'_>)]) -> PyResult<Py<PyDict>> {
    let dict = new_dict(py, items.len());
    for (key, value) in items {
        dict_set(py, &dict, key, value.to_object(py))?;
    }
    Ok(dict)
}

/// A payload dict with interned keys, in this order:
/// `payload!(py, {"agent_id" => id, "reason" => None::<&str>})` (values: anything
/// `Into<Val>`). Gives a `PyResult<Py<PyDict>>`.
#[macro_export]
macro_rules! payload {
    ($py:expr, { $($key:literal => $value:expr),* $(,)? }) => {{
        let py: ::pyo3::Python<'_> = $py;
        let dict = $crate::glue::new_dict(py, 0 $(+ { let _ = $key; 1 })*);
        (|| -> ::pyo3::PyResult<::pyo3::Py<::pyo3::types::PyDict>> {
            $(
                let value: $crate::glue::Val<'_> = ::std::convert::Into::into($value);
                $crate::glue::dict_set(
                    py,
                    &dict,
                    ::pyo3::intern!(py, $key),
                    ::pyo3::ToPyObject::to_object(&value, py),
                )?;
            )*
            Ok(dict)
        })()
    }};
}

// =============================================================================================
// Errors
// =============================================================================================

/// A domain error (`sparklecomm.core.errors`): its message (`detail`) and the field at fault.
#[derive(Debug)]
pub enum EngineError {
    /// `InvalidInput(detail, field=field)`
    Invalid(String, Option<Cow<'static, str>>),
    /// `NotFound(detail, field=field)`
    NotFound(String, Option<Cow<'static, str>>),
    /// `Conflict(detail, field=field)`
    Conflict(String, Option<Cow<'static, str>>),
    /// `PermissionDenied(detail, field=field)`
    PermissionDenied(String, Option<Cow<'static, str>>),
    /// An error raised by Python code the engine called, passed on as is.
    Python(PyErr),
}

/// Where a field name may come from: `"agent_id"`, `String`, or None.
pub type Field = Option<Cow<'static, str>>;

impl EngineError {
    pub fn invalid(detail: impl Into<String>, field: Option<&'static str>) -> Self {
        EngineError::Invalid(detail.into(), field.map(Cow::Borrowed))
    }
    pub fn not_found(detail: impl Into<String>, field: Option<&'static str>) -> Self {
        EngineError::NotFound(detail.into(), field.map(Cow::Borrowed))
    }
    pub fn conflict(detail: impl Into<String>, field: Option<&'static str>) -> Self {
        EngineError::Conflict(detail.into(), field.map(Cow::Borrowed))
    }
    pub fn permission_denied(detail: impl Into<String>, field: Option<&'static str>) -> Self {
        EngineError::PermissionDenied(detail.into(), field.map(Cow::Borrowed))
    }

    /// The Python class's name (`"InvalidInput"`, ...); None for a passed-on Python error.
    pub fn class_name(&self) -> Option<&'static str> {
        match self {
            EngineError::Invalid(..) => Some("InvalidInput"),
            EngineError::NotFound(..) => Some("NotFound"),
            EngineError::Conflict(..) => Some("Conflict"),
            EngineError::PermissionDenied(..) => Some("PermissionDenied"),
            EngineError::Python(_) => None,
        }
    }

    /// The message and the field (None for a passed-on Python error).
    pub fn parts(&self) -> Option<(&str, Option<&str>)> {
        match self {
            EngineError::Invalid(d, f)
            | EngineError::NotFound(d, f)
            | EngineError::Conflict(d, f)
            | EngineError::PermissionDenied(d, f) => Some((d.as_str(), f.as_deref())),
            EngineError::Python(_) => None,
        }
    }

    /// The Python exception object (`Class(detail, field=field)`).
    pub fn into_pyerr(self, py: Python<'_>) -> PyErr {
        let (index, detail, field) = match self {
            EngineError::Invalid(d, f) => (0, d, f),
            EngineError::NotFound(d, f) => (1, d, f),
            EngineError::Conflict(d, f) => (2, d, f),
            EngineError::PermissionDenied(d, f) => (3, d, f),
            EngineError::Python(err) => return err,
        };
        let built = error_classes(py).and_then(|classes| {
            let kwargs = PyDict::new(py);
            kwargs.set_item(intern!(py, "field"), field.as_deref())?;
            classes[index].as_ref(py).call((detail,), Some(kwargs))
        });
        match built {
            Ok(instance) => PyErr::from_value(instance),
            Err(err) => err,
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Python(err) => write!(f, "{err}"),
            other => f.write_str(other.parts().expect("a domain error").0),
        }
    }
}

impl std::error::Error for EngineError {}

impl From<EngineError> for PyErr {
    fn from(err: EngineError) -> PyErr {
        Python::with_gil(|py| err.into_pyerr(py))
    }
}

impl From<PyErr> for EngineError {
    fn from(err: PyErr) -> Self {
        EngineError::Python(err)
    }
}

impl From<DateOutOfRange> for EngineError {
    fn from(err: DateOutOfRange) -> Self {
        EngineError::Python(err.into())
    }
}

static ERROR_CLASSES: GILOnceCell<[Py<PyType>; 4]> = GILOnceCell::new();

/// InvalidInput, NotFound, Conflict, PermissionDenied (imported once).
fn error_classes(py: Python<'_>) -> PyResult<&[Py<PyType>; 4]> {
    cached(&ERROR_CLASSES, py, || {
        let module = py.import("sparklecomm.core.errors")?;
        let class = |name: &str| -> PyResult<Py<PyType>> {
            Ok(module.getattr(name)?.downcast::<PyType>()?.into())
        };
        Ok([
            class("InvalidInput")?,
            class("NotFound")?,
            class("Conflict")?,
            class("PermissionDenied")?,
        ])
    })
}

/// Python's `repr(s)` for a str (the `{agent_id!r}` of error messages). ASCII text is
/// quoted here; other text asks Python (whether a character is printable is Unicode's call).
pub fn repr_str(py: Python<'_>, s: &str) -> PyResult<String> {
    if !s.is_ascii() {
        return Ok(PyString::new(py, s).repr()?.to_str()?.to_owned());
    }
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    Ok(out)
}

// =============================================================================================
// Test-only bindings (tests/routing/compiled/test_glue.py)
// =============================================================================================

/// One shared cache, so that calls one after another hit and miss it like the engine's.
static ISO_TEXT: Mutex<IsoText> = Mutex::new(IsoText::new());

/// `from_us(us).isoformat()` through a shared [`IsoText`].
#[pyfunction]
#[pyo3(name = "iso_text")]
pub fn py_iso_text(py: Python<'_>, us: i64) -> PyResult<PyObject> {
    let mut cache = ISO_TEXT.lock().unwrap_or_else(|e| e.into_inner());
    cache.py_text(py, us)
}

/// `from_us(us)`.
#[pyfunction]
#[pyo3(name = "datetime_from_us")]
pub fn py_datetime_from_us(py: Python<'_>, us: i64) -> PyResult<PyObject> {
    datetime_from_us(py, us)
}

/// model.py `seconds_to_us(seconds)`.
#[pyfunction]
#[pyo3(name = "seconds_to_us")]
pub fn py_seconds_to_us(seconds: f64) -> PyResult<i64> {
    seconds_to_us(seconds)
}

/// engine.py `_sec(us)`.
#[pyfunction]
#[pyo3(name = "sec")]
pub fn py_sec(us: i64) -> f64 {
    sec(us)
}

/// `NewEvent(type_, payload, time)`, built along `path`: "slots" (direct writes),
/// "descriptors" (the slot descriptors), "call" (calling the class) or "owned"
/// ([`EventSink::new_event_with`], given a new reference to the payload).
#[pyfunction(path = "\"slots\"")]
#[pyo3(name = "make_event")]
pub fn py_make_event(
    py: Python<'_>,
    type_: &PyAny,
    payload: &PyAny,
    time: &PyAny,
    path: &str,
) -> PyResult<PyObject> {
    let sink = event_sink(py)?;
    match path {
        "slots" => sink.new_event_by(py, EventPath::Slots, type_, payload, time),
        "descriptors" => sink.new_event_by(py, EventPath::Descriptors, type_, payload, time),
        "call" => sink.new_event_call(py, type_, payload, time),
        "owned" => {
            let payload: Py<PyDict> = payload.downcast::<PyDict>()?.into();
            sink.new_event_with(py, type_.downcast()?, payload, time)
        }
        _ => Err(PyValueError::new_err(format!("unknown path {path:?}"))),
    }
}

/// The path `make_event` takes by default: "slots" or "descriptors".
#[pyfunction]
pub fn event_path(py: Python<'_>) -> PyResult<&'static str> {
    Ok(match event_sink(py)?.path() {
        EventPath::Slots => "slots",
        EventPath::Descriptors => "descriptors",
    })
}

/// A payload dict built from Rust values: `{"s": "text", "n": None, "b": True, "i": -7,
/// "f": 1.5, "k": <interned "agent_id">, "l": [1, "x", None], "d": {"a": 1}, "o": obj}`.
#[pyfunction]
pub fn sample_payload(py: Python<'_>, obj: &PyAny) -> PyResult<Py<PyDict>> {
    let text = String::from("text");
    payload!(py, {
        "s" => &text,
        "n" => None::<&str>,
        "b" => true,
        "i" => -7i64,
        "f" => 1.5f64,
        "k" => intern!(py, "agent_id"),
        "l" => Val::List(vec![Val::Int(1), Val::Str("x"), Val::None]),
        "d" => Val::Dict(vec![("a", Val::Int(1))]),
        "o" => obj,
    })
}

/// Raises `kind(detail, field=field)` through [`EngineError`]; kind is "invalid",
/// "not_found", "conflict" or "permission_denied".
#[pyfunction(field = "None")]
#[pyo3(name = "raise_error")]
pub fn py_raise_error(kind: &str, detail: String, field: Option<String>) -> PyResult<()> {
    let field: Field = field.map(Cow::Owned);
    let err = match kind {
        "invalid" => EngineError::Invalid(detail, field),
        "not_found" => EngineError::NotFound(detail, field),
        "conflict" => EngineError::Conflict(detail, field),
        "permission_denied" => EngineError::PermissionDenied(detail, field),
        _ => return Err(PyValueError::new_err(format!("unknown kind {kind:?}"))),
    };
    Err(err.into())
}

/// `repr(s)` for a str, as [`repr_str`] writes it.
#[pyfunction]
#[pyo3(name = "repr_str")]
pub fn py_repr_str(py: Python<'_>, s: &str) -> PyResult<String> {
    repr_str(py, s)
}

/// `random.Random` in Rust ([`mt::MersenneTwister`]), for the differential tests.
#[pyclass(name = "MersenneTwister", module = "sparklecomm.acd._acd_core")]
pub struct PyMersenneTwister {
    inner: mt::MersenneTwister,
}

#[pymethods]
impl PyMersenneTwister {
    /// `random.Random(seed)` for an int seed.
    #[new]
    fn new(seed: &PyAny) -> PyResult<Self> {
        // As random_seed in _randommodule.c: the 32-bit words of abs(seed), at least one.
        let abs = seed.call_method0("__abs__")?;
        let bits: usize = abs.call_method0("bit_length")?.extract()?;
        let n_words = if bits == 0 { 1 } else { (bits - 1) / 32 + 1 };
        let bytes: &PyBytes = abs
            .call_method1("to_bytes", (n_words * 4, "little"))?
            .downcast()?;
        let words: Vec<u32> = bytes
            .as_bytes()
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(PyMersenneTwister {
            inner: mt::MersenneTwister::from_seed_words(&words),
        })
    }

    /// From `random.Random.getstate()` or a snapshot's `[3, [...], gauss]`.
    #[staticmethod]
    fn from_state(state: &PyAny) -> PyResult<Self> {
        Ok(PyMersenneTwister {
            inner: mt::MersenneTwister::from_py_state(state)?,
        })
    }

    /// The twister of a `random.Random` (None for other objects, subclasses included).
    #[staticmethod]
    fn from_random(rng: &PyAny) -> PyResult<Option<Self>> {
        Ok(mt::MersenneTwister::from_random(rng)?.map(|inner| PyMersenneTwister { inner }))
    }

    /// `rng.setstate(self.getstate())`.
    fn store_into(&self, rng: &PyAny) -> PyResult<()> {
        self.inner.store_into(rng)
    }

    fn getstate(&self, py: Python<'_>) -> PyObject {
        self.inner.to_py_state(py)
    }

    /// The state as persistence.py `_rng_state` saves it.
    fn snapshot(&self, py: Python<'_>) -> PyObject {
        self.inner.to_snapshot(py)
    }

    fn randrange(&mut self, n: &PyAny) -> PyResult<u128> {
        if let Ok(small) = n.extract::<i128>() {
            if small <= 0 {
                return Err(PyValueError::new_err("empty range for randrange()"));
            }
        }
        let n: u128 = n.extract()?;
        Ok(self.inner.randrange_u128(n))
    }

    /// `randrange(n)` drawn `count` times, through the u64 path.
    fn randrange_many(&mut self, n: u64, count: usize) -> PyResult<Vec<u64>> {
        if n == 0 {
            return Err(PyValueError::new_err("empty range for randrange()"));
        }
        Ok((0..count).map(|_| self.inner.randrange(n)).collect())
    }

    fn random(&mut self) -> f64 {
        self.inner.random()
    }

    fn getrandbits(&mut self, py: Python<'_>, k: i64) -> PyResult<PyObject> {
        if k < 0 {
            return Err(PyValueError::new_err("number of bits must be non-negative"));
        }
        if k <= 128 {
            return Ok(self.inner.getrandbits(k as u32).to_object(py));
        }
        let k = u32::try_from(k).map_err(|_| PyOverflowError::new_err("too many bits"))?;
        let bytes: Vec<u8> = self
            .inner
            .getrandbits_words(k)
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let int = py.get_type::<pyo3::types::PyLong>();
        Ok(int
            .call_method1("from_bytes", (PyBytes::new(py, &bytes), "little"))?
            .into())
    }
}

/// Nanoseconds per operation, measured in Rust over `n` runs: "event_slots",
/// "event_descriptors", "event_call", "payload4" (a 4-item payload dict), "iso_same_second",
/// "iso_new_second", "datetime", "randrange_small" (n = 37), "randrange_large" (n = 10**12),
/// "random".
#[pyfunction]
pub fn glue_bench(py: Python<'_>, what: &str, n: u64) -> PyResult<f64> {
    use std::time::Instant;
    // std::hint::black_box needs Rust 1.66; a volatile read keeps values alive as well.
    fn black_box<T>(value: T) -> T {
        // SAFETY: reads a live value once and forgets the original (a move).
        unsafe {
            let copy = std::ptr::read_volatile(&value);
            std::mem::forget(value);
            copy
        }
    }
    let sink = event_sink(py)?;
    let type_ = intern!(py, "agent.state_changed");
    let payload = PyDict::new(py);
    let time = datetime_from_us(py, 123_456_789)?;
    let time = time.as_ref(py);
    let mut iso = IsoText::new();
    let mut rng = mt::MersenneTwister::from_seed(0);
    let start = Instant::now();
    match what {
        "event_slots" | "event_descriptors" | "event_call" => {
            let path = match what {
                "event_slots" => Some(EventPath::Slots),
                "event_descriptors" => Some(EventPath::Descriptors),
                _ => None,
            };
            for _ in 0..n {
                let ev = match path {
                    Some(path) => sink.new_event_by(py, path, type_, payload, time)?,
                    None => sink.new_event_call(py, type_, payload, time)?,
                };
                black_box(ev);
            }
        }
        "event_owned" => {
            for _ in 0..n {
                let payload = new_dict(py, 0);
                black_box(sink.new_event_with(py, type_, payload, time)?);
            }
        }
        "event_slots_fresh_dict" => {
            for _ in 0..n {
                let payload = new_dict(py, 0);
                black_box(sink.new_event(py, type_, payload.as_ref(py), time)?);
            }
        }
        "payload4" => {
            for i in 0..n {
                let d = payload!(py, {
                    "agent_id" => "a-17",
                    "state" => intern!(py, "available"),
                    "reason" => None::<&str>,
                    "count" => i as i64,
                })?;
                black_box(d);
            }
        }
        "iso_same_second" => {
            for i in 0..n {
                black_box(iso.text(black_box(200_000_000_000_000 + (i % 999_999) as i64))?);
            }
        }
        "iso_new_second" => {
            for i in 0..n {
                black_box(iso.text(black_box(200_000_000_000_000 + i as i64 * 1_000_001))?);
            }
        }
        "iso_py" => {
            for i in 0..n {
                black_box(iso.py_text(py, black_box(200_000_000_000_000 + (i % 999_999) as i64))?);
            }
        }
        "datetime" => {
            for i in 0..n {
                black_box(datetime_from_us(py, i as i64 * 1_000_001)?);
            }
        }
        "randrange_small" => {
            for _ in 0..n {
                black_box(rng.randrange(black_box(37)));
            }
        }
        "randrange_large" => {
            for _ in 0..n {
                black_box(rng.randrange(black_box(1_000_000_000_000)));
            }
        }
        "random" => {
            for _ in 0..n {
                black_box(rng.random());
            }
        }
        _ => return Err(PyValueError::new_err(format!("unknown benchmark {what:?}"))),
    }
    let elapsed = start.elapsed();
    Ok(elapsed.as_nanos() as f64 / n.max(1) as f64)
}
