//! The KPI accumulator's feed, compiled (analytics/kpis.py `KpiAccumulator`).
//!
//! [`KpiCore`] takes routing events in stream order and keeps the same state as the Python
//! accumulator: the (interval, queue) cells of raw counts and sums, the open legs, the
//! contacts not yet resolved, the agents' legs before wrap-up, the outbound contacts, each
//! agent's current state and each queue's service-level threshold. The reading side
//! (`report`) stays in Python: it asks for that state ([`KpiCore::cells`], `legs`, `agents`,
//! `thresholds`, `now`) and computes the figures with the very same code.
//!
//! Each handler is a line-by-line port of its Python twin, in the same order of effects
//! (cells are created in the same order, so float sums add up in the same order and reports
//! are identical to the last bit; tests/analytics/test_kpi_core.py compares both on random
//! and simulated streams). Payload values are read with Python's own rules (`p[key]`,
//! `p.get(key)`, `float(...)`, truth values). One difference on input the platform never
//! produces: the ids used as keys (interaction, queue and agent ids) must be strings here,
//! where the Python accumulator takes any hashable value; another value is refused with
//! `InvalidInput` naming the field.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{ffi, intern, AsPyPointer};

use crate::glue::{event_sink, utc_datetime_to_us, EventSink};
use crate::model::Id;
use crate::ready::{FxHasher, FxMap};

type FxSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// kpis.py `DEFAULT_SERVICE_LEVEL_SECONDS`.
const DEFAULT_SERVICE_LEVEL_SECONDS: f64 = 20.0;

const INBOUND: u8 = 0;
const CALLBACK: u8 = 1;

/// The names of [`Tally`]'s fields in the order [`Tally::values`] gives them.
const TALLY_FIELDS: [&str; 31] = [
    "offered",
    "answered",
    "answered_within",
    "abandoned",
    "short_abandoned",
    "abandoned_within",
    "overflowed",
    "diverted",
    "callbacks_requested",
    "callbacks_answered",
    "callbacks_failed",
    "callbacks_cancelled",
    "transferred",
    "handled",
    "talk_seconds",
    "hold_seconds",
    "wrapup_seconds",
    "wait_answered_seconds",
    "wait_abandoned_seconds",
    "longest_wait",
    "available_seconds",
    "reserved_seconds",
    "busy_seconds",
    "wrap_up_seconds",
    "break_seconds",
    "outbound",
    "outbound_handled",
    "outbound_handle_seconds",
    "surveys",
    "csat_points",
    "surveys_satisfied",
];

/// kpis.py `Tally`: raw counts and sums of one (interval, key) cell.
#[derive(Clone, Default)]
struct Tally {
    offered: i64,
    answered: i64,
    answered_within: i64,
    abandoned: i64,
    short_abandoned: i64,
    abandoned_within: i64,
    overflowed: i64,
    diverted: i64,
    callbacks_requested: i64,
    callbacks_answered: i64,
    callbacks_failed: i64,
    callbacks_cancelled: i64,
    transferred: i64,
    handled: i64,
    talk_seconds: f64,
    hold_seconds: f64,
    wrapup_seconds: f64,
    wait_answered_seconds: f64,
    wait_abandoned_seconds: f64,
    longest_wait: f64,
    /// Agent time by state: available, reserved, busy, wrap_up, break ([`state_slot`]).
    agent_seconds: [f64; 5],
    outbound: i64,
    outbound_handled: i64,
    outbound_handle_seconds: f64,
    surveys: i64,
    csat_points: f64,
    surveys_satisfied: i64,
}

impl Tally {
    /// The fields as Python values, in [`TALLY_FIELDS`] order.
    fn values(&self, py: Python<'_>) -> PyObject {
        let ints = |v: i64| v.into_py(py);
        let floats = |v: f64| v.into_py(py);
        let items: Vec<PyObject> = vec![
            ints(self.offered),
            ints(self.answered),
            ints(self.answered_within),
            ints(self.abandoned),
            ints(self.short_abandoned),
            ints(self.abandoned_within),
            ints(self.overflowed),
            ints(self.diverted),
            ints(self.callbacks_requested),
            ints(self.callbacks_answered),
            ints(self.callbacks_failed),
            ints(self.callbacks_cancelled),
            ints(self.transferred),
            ints(self.handled),
            floats(self.talk_seconds),
            floats(self.hold_seconds),
            floats(self.wrapup_seconds),
            floats(self.wait_answered_seconds),
            floats(self.wait_abandoned_seconds),
            floats(self.longest_wait),
            floats(self.agent_seconds[0]),
            floats(self.agent_seconds[1]),
            floats(self.agent_seconds[2]),
            floats(self.agent_seconds[3]),
            floats(self.agent_seconds[4]),
            ints(self.outbound),
            ints(self.outbound_handled),
            floats(self.outbound_handle_seconds),
            ints(self.surveys),
            floats(self.csat_points),
            ints(self.surveys_satisfied),
        ];
        PyTuple::new(py, items).into_py(py)
    }

    /// An answer after `wait` seconds (kpis.py `_on_accepted`, for a queue's cell and the
    /// overall one alike).
    fn answer(&mut self, wait: f64, threshold: f64) {
        self.answered += 1;
        self.wait_answered_seconds += wait;
        if wait <= threshold {
            self.answered_within += 1;
        }
        if wait > self.longest_wait {
            self.longest_wait = wait;
        }
    }

    /// kpis.py `_abandon_tally`.
    fn abandon(&mut self, wait: f64, threshold: f64, short: f64) {
        self.abandoned += 1;
        if wait < short {
            self.short_abandoned += 1;
        } else {
            self.wait_abandoned_seconds += wait;
            if wait <= threshold {
                self.abandoned_within += 1;
            }
        }
        if wait > self.longest_wait {
            self.longest_wait = wait;
        }
    }
}

/// kpis.py `_AGENT_STATE_SLOT`: which agent-time sum a state counts in.
fn state_slot(state: &str) -> Option<usize> {
    match state {
        "available" => Some(0),
        "reserved" => Some(1),
        "busy" => Some(2),
        "wrap_up" => Some(3),
        "break" => Some(4),
        _ => None,
    }
}

/// Python's `x // y` for floats (floatobject.c `float_floor_div`), bit for bit.
fn py_floordiv(vx: f64, wx: f64) -> f64 {
    let mut m = vx % wx;
    let mut div = (vx - m) / wx;
    if m != 0.0 {
        if (wx < 0.0) != (m < 0.0) {
            m += wx;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(wx);
    }
    let _ = m;
    if div != 0.0 {
        let mut floordiv = div.floor();
        if div - floordiv > 0.5 {
            floordiv += 1.0;
        }
        floordiv
    } else {
        0.0f64.copysign(vx / wx)
    }
}

/// An interned queue or agent id (an index in [`KpiCore::names`]; 0 is the overall key "").
type Name = u32;

const OVERALL: Name = 0;

/// `int(ts // iv)` for a whole, positive `iv` (intervals are whole seconds), without the
/// slow `fmod` of [`py_floordiv`] where it gives the same: there, every multiple of `iv`
/// below 2**52 is exact, so Python's `(ts - fmod(ts, iv)) / iv` is exactly the floor of the
/// true quotient, which a rounded quotient corrected by exact products finds too.
fn floor_bucket(ts: f64, iv: f64) -> i64 {
    const EXACT: f64 = 4_503_599_627_370_496.0; // 2**52
    if iv > 0.0 && iv.fract() == 0.0 && ts.abs() < EXACT / iv.max(1.0) {
        let mut q = (ts / iv).floor();
        if q * iv > ts {
            q -= 1.0;
        } else if (q + 1.0) * iv <= ts {
            q += 1.0;
        }
        return q as i64;
    }
    py_floordiv(ts, iv) as i64
}

/// kpis.py `_Leg`: a contact waiting in one queue.
#[derive(Clone, Copy)]
struct Leg {
    queue: Name,
    bucket: i64,
    entered: f64,
    kind: u8,
    counted: bool,
}

/// An agent's leg before its wrap-up ends: queue, bucket, counted.
type Work = (Name, i64, bool);

/// The agents' legs of one interaction before their wrap-up ends, by agent: nearly always
/// one (kept inline), more during a consultation or a ring-all race.
enum WorkLegs {
    One(Name, Work),
    Many(Vec<(Name, Work)>),
}

impl WorkLegs {
    fn get(&self, agent: Name) -> Option<Work> {
        match self {
            WorkLegs::One(a, w) => (*a == agent).then_some(*w),
            WorkLegs::Many(list) => list.iter().find(|(a, _)| *a == agent).map(|(_, w)| *w),
        }
    }

    fn set(&mut self, agent: Name, work: Work) {
        match self {
            WorkLegs::One(a, w) if *a == agent => *w = work,
            WorkLegs::One(a, w) => *self = WorkLegs::Many(vec![(*a, *w), (agent, work)]),
            WorkLegs::Many(list) => match list.iter_mut().find(|(a, _)| *a == agent) {
                Some(slot) => slot.1 = work,
                None => list.push((agent, work)),
            },
        }
    }

    /// Takes the agent's leg out; true in the second place when none is left.
    fn pop(&mut self, agent: Name) -> (Option<Work>, bool) {
        match self {
            WorkLegs::One(a, w) if *a == agent => (Some(*w), true),
            WorkLegs::One(..) => (None, false),
            WorkLegs::Many(list) => match list.iter().position(|(a, _)| *a == agent) {
                Some(at) => {
                    let (_, work) = list.remove(at);
                    (Some(work), list.is_empty())
                }
                None => (None, false),
            },
        }
    }
}

/// An agent's current state (the payload's value, kept for `agents()`) and since when.
struct AgentSpell {
    agent: Name,
    state: PyObject,
    slot: Option<usize>,
    since: f64,
}

/// A payload, read the way Python reads a mapping: `p[key]` and `p.get(key)`.
struct PayloadView<'py> {
    obj: &'py PyAny,
    exact_dict: bool,
}

impl<'py> PayloadView<'py> {
    fn new(obj: &'py PyAny) -> Self {
        // SAFETY: a live object.
        let exact_dict = unsafe { ffi::PyDict_CheckExact(obj.as_ptr()) } != 0;
        PayloadView { obj, exact_dict }
    }

    /// The value of `key` in a plain dict (None when missing).
    fn dict_get(&self, key: &PyString) -> PyResult<Option<&'py PyAny>> {
        let py = self.obj.py();
        // SAFETY: live objects, GIL held; the result is borrowed from the dict, which outlives
        // the borrow ('py).
        unsafe {
            let v = ffi::PyDict_GetItemWithError(self.obj.as_ptr(), key.as_ptr());
            if v.is_null() {
                if !ffi::PyErr_Occurred().is_null() {
                    return Err(PyErr::fetch(py));
                }
                return Ok(None);
            }
            Ok(Some(py.from_borrowed_ptr(v)))
        }
    }

    /// `p[key]`.
    fn item(&self, key: &PyString) -> PyResult<&'py PyAny> {
        if self.exact_dict {
            match self.dict_get(key)? {
                Some(v) => Ok(v),
                None => Err(PyKeyError::new_err(key.to_object(self.obj.py()))),
            }
        } else {
            self.obj.get_item(key)
        }
    }

    /// `p.get(key)` (Python's None when missing).
    fn get(&self, key: &PyString) -> PyResult<&'py PyAny> {
        if self.exact_dict {
            let py = self.obj.py();
            // SAFETY: None lives for ever; borrowed (nothing registered with the GIL pool).
            Ok(self
                .dict_get(key)?
                .unwrap_or_else(|| unsafe { py.from_borrowed_ptr(ffi::Py_None()) }))
        } else {
            self.obj.call_method1(intern!(self.obj.py(), "get"), (key,))
        }
    }
}

/// `float(value)`.
fn to_float(value: &PyAny) -> PyResult<f64> {
    // SAFETY: live object, GIL held.
    unsafe {
        if ffi::PyFloat_CheckExact(value.as_ptr()) != 0 {
            return Ok(ffi::PyFloat_AS_DOUBLE(value.as_ptr()));
        }
        let f = ffi::PyNumber_Float(value.as_ptr());
        if f.is_null() {
            return Err(PyErr::fetch(value.py()));
        }
        let v = ffi::PyFloat_AS_DOUBLE(f);
        ffi::Py_DECREF(f);
        Ok(v)
    }
}

/// The wait in a leg's queue: the payload's `queue_wait_seconds`, else since the leg began.
fn queue_wait(p: &PayloadView<'_>, leg: &Leg, ts: f64) -> PyResult<f64> {
    let wait = p.get(intern!(p.obj.py(), "queue_wait_seconds"))?;
    if wait.is_none() {
        Ok(ts - leg.entered)
    } else {
        to_float(wait)
    }
}

/// `float(value or 0.0)`.
fn float_or_zero(value: &PyAny) -> PyResult<f64> {
    if value.is_true()? {
        to_float(value)
    } else {
        Ok(0.0)
    }
}

/// The string of a value used as an id, or `InvalidInput` naming the field.
fn text_of<'a>(value: &'a PyAny, field: &str) -> PyResult<&'a str> {
    match value.downcast::<PyString>() {
        Ok(s) => s.to_str(),
        Err(_) => Err(invalid_input(
            value.py(),
            format!(
                "Event payload field {field} must be a string here, not {}.",
                value.get_type().name().unwrap_or("?")
            ),
            field,
        )),
    }
}

fn invalid_input(py: Python<'_>, detail: String, field: &str) -> PyErr {
    let made = (|| -> PyResult<PyErr> {
        let class = py.import("sparklecomm.core.errors")?.getattr("InvalidInput")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("field", field)?;
        Ok(PyErr::from_value(class.call((detail,), Some(kwargs))?))
    })();
    match made {
        Ok(e) | Err(e) => e,
    }
}

/// Event types with a handler (kpis.py `KpiAccumulator._handlers`).
#[derive(Clone, Copy)]
enum Kind {
    Created,
    Overflowed,
    Queued,
    Accepted,
    Abandoned,
    Diverted,
    CallbackRequested,
    CallbackExhausted,
    CallbackFailed,
    Transferred,
    WrapupEnded,
    StateChanged,
    QueueConfig,
    SurveyAnswered,
}

fn kind_of(type_: &str) -> Option<Kind> {
    Some(match type_ {
        "agent.state_changed" => Kind::StateChanged,
        "interaction.created" => Kind::Created,
        "interaction.accepted" => Kind::Accepted,
        "interaction.wrapup_ended" => Kind::WrapupEnded,
        "interaction.abandoned" => Kind::Abandoned,
        "interaction.overflowed" => Kind::Overflowed,
        "interaction.queued" => Kind::Queued,
        "interaction.diverted" => Kind::Diverted,
        "interaction.callback_requested" => Kind::CallbackRequested,
        "callback.exhausted" => Kind::CallbackExhausted,
        "callback.attempt_failed" => Kind::CallbackFailed,
        "interaction.transferred" => Kind::Transferred,
        "queue.created" | "queue.updated" => Kind::QueueConfig,
        "survey.answered" => Kind::SurveyAnswered,
        _ => return None,
    })
}

/// Seconds from 1970-01-01 to the engine's epoch (2020-01-01), in microseconds.
const UNIX_TO_EPOCH_US: i64 = 1_577_836_800 * 1_000_000;

/// The accumulator's state and feed (see the module documentation). Sendable: the live
/// statistics feed and read their accumulators from the server's worker threads (under the
/// GIL, one at a time).
#[pyclass]
pub struct KpiCore {
    iv: f64,
    short: f64,
    sl_fixed: Option<f64>,
    since: f64,
    until: f64,
    /// Queue and agent ids, interned ([`Name`]).
    names: Vec<Id>,
    name_at: FxMap<Id, Name>,
    /// Cells in first-use order, and where each (bucket, key) is.
    cells: Vec<(i64, Name, Tally)>,
    cell_at: FxMap<(i64, Name), usize>,
    thresholds: FxMap<Name, f64>,
    legs: FxMap<Id, Leg>,
    contacts: FxMap<Id, (i64, bool)>,
    /// Agent legs before wrap-up, by interaction then agent.
    work: FxMap<Id, WorkLegs>,
    outbound: FxSet<Id>,
    /// Agents in first-seen order, and where each is.
    agents: Vec<AgentSpell>,
    agent_at: FxMap<Name, usize>,
    now: Option<f64>,
    last_moment: Option<PyObject>,
    last_ts: f64,
    events: u64,
}

impl KpiCore {
    /// `int(ts // self._iv)`.
    fn bucket(&self, ts: f64) -> i64 {
        floor_bucket(ts, self.iv)
    }

    fn counted(&self, ts: f64) -> bool {
        self.since <= ts && ts < self.until
    }

    /// The interned `id`.
    fn name(&mut self, id: &str) -> Name {
        if let Some(&n) = self.name_at.get(id) {
            return n;
        }
        let n = self.names.len() as Name;
        let id: Id = Id::from(id);
        self.names.push(id.clone());
        self.name_at.insert(id, n);
        n
    }

    /// The interned id of a payload value (a string, else `InvalidInput`).
    fn name_of(&mut self, value: &PyAny, field: &str) -> PyResult<Name> {
        Ok(self.name(text_of(value, field)?))
    }

    /// Where `self._cells[bucket, key]` is (made, in first-use order, when missing).
    fn cell_index(&mut self, bucket: i64, key: Name) -> usize {
        match self.cell_at.get(&(bucket, key)) {
            Some(&at) => at,
            None => {
                let at = self.cells.len();
                self.cells.push((bucket, key, Tally::default()));
                self.cell_at.insert((bucket, key), at);
                at
            }
        }
    }

    /// `self._cells[bucket, key]` (made, in first-use order, when missing).
    fn cell(&mut self, bucket: i64, key: Name) -> &mut Tally {
        let at = self.cell_index(bucket, key);
        &mut self.cells[at].2
    }

    /// kpis.py `_threshold`.
    fn threshold(&self, queue: Name) -> f64 {
        match self.sl_fixed {
            Some(t) => t,
            None => self
                .thresholds
                .get(&queue)
                .copied()
                .unwrap_or(DEFAULT_SERVICE_LEVEL_SECONDS),
        }
    }

    fn work_pop(&mut self, iid: &str, agent: Name) -> Option<Work> {
        let (work, empty) = self.work.get_mut(iid)?.pop(agent);
        if empty {
            self.work.remove(iid);
        }
        work
    }

    fn work_get(&self, iid: &str, agent: Name) -> Option<Work> {
        self.work.get(iid)?.get(agent)
    }

    fn work_set(&mut self, iid: Id, agent: Name, work: Work) {
        match self.work.get_mut(&iid) {
            Some(legs) => legs.set(agent, work),
            None => {
                self.work.insert(iid, WorkLegs::One(agent, work));
            }
        }
    }

    /// The interned agent of a payload's `agent_id` when it is a string (None otherwise:
    /// `isinstance(agent, str)` in kpis.py).
    fn agent_of(&mut self, p: &PayloadView<'_>) -> PyResult<Option<Name>> {
        let agent = p.get(intern!(p.obj.py(), "agent_id"))?;
        match agent.downcast::<PyString>() {
            Ok(a) => Ok(Some(self.name(a.to_str()?))),
            Err(_) => Ok(None),
        }
    }

    /// The agent leg of the payload's interaction and agent (taken out when `take`), else
    /// the payload's queue at `ts` (`_on_transferred` and `_on_wrapup_ended`).
    fn work_or_now(&mut self, p: &PayloadView<'_>, iid: &str, ts: f64, take: bool) -> PyResult<Work> {
        let work = match self.agent_of(p)? {
            Some(agent) if take => self.work_pop(iid, agent),
            Some(agent) => self.work_get(iid, agent),
            None => None,
        };
        Ok(match work {
            Some(w) => w,
            None => (
                self.name_of(p.item(intern!(p.obj.py(), "queue_id"))?, "queue_id")?,
                self.bucket(ts),
                self.counted(ts),
            ),
        })
    }

    /// kpis.py `_open_leg`.
    fn open_leg(&mut self, iid: &str, queue: Name, ts: f64, kind: u8) {
        let counted = self.counted(ts);
        let bucket = self.bucket(ts);
        let leg = Leg {
            queue,
            bucket,
            entered: ts,
            kind,
            counted,
        };
        match self.legs.get_mut(iid) {
            Some(slot) => *slot = leg,
            None => {
                self.legs.insert(Id::from(iid), leg);
            }
        }
        if counted && kind == INBOUND {
            self.cell(bucket, queue).offered += 1;
        }
    }

    fn handle(&mut self, py: Python<'_>, kind: Kind, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        match kind {
            Kind::Created => self.on_created(py, p, ts),
            Kind::Overflowed => self.on_overflowed(py, p, ts),
            Kind::Queued => self.on_queued(py, p, ts),
            Kind::Accepted => self.on_accepted(py, p, ts),
            Kind::Abandoned => self.on_abandoned(py, p, ts),
            Kind::Diverted => self.on_diverted(py, p),
            Kind::CallbackRequested => self.on_callback_requested(py, p, ts),
            Kind::CallbackExhausted => self.on_callback_exhausted(py, p, ts),
            Kind::CallbackFailed => self.on_callback_failed(py, p, ts),
            Kind::Transferred => self.on_transferred(py, p, ts),
            Kind::WrapupEnded => self.on_wrapup_ended(py, p, ts),
            Kind::StateChanged => self.on_state_changed(py, p, ts),
            Kind::QueueConfig => self.on_queue_config(py, p),
            Kind::SurveyAnswered => self.on_survey_answered(py, p, ts),
        }
    }

    fn on_queue_config(&mut self, py: Python<'_>, p: &PayloadView<'_>) -> PyResult<()> {
        let config = p.get(intern!(py, "config"))?;
        // SAFETY: a live object.
        let is_dict = unsafe { ffi::PyDict_Check(config.as_ptr()) } != 0;
        let is_mapping = is_dict
            || config.is_instance(
                py.import("collections.abc")?
                    .getattr(intern!(py, "Mapping"))?
                    .downcast()?,
            )?;
        if !is_mapping {
            return Ok(());
        }
        let sl = PayloadView::new(config).get(intern!(py, "service_level_seconds"))?;
        // isinstance(sl, int | float) and not isinstance(sl, bool)
        // SAFETY: live object.
        let number = unsafe {
            (ffi::PyLong_Check(sl.as_ptr()) != 0 || ffi::PyFloat_Check(sl.as_ptr()) != 0)
                && ffi::PyBool_Check(sl.as_ptr()) == 0
        };
        if number {
            let value = to_float(sl)?;
            let queue = self.name(p.item(intern!(py, "queue_id"))?.str()?.to_str()?);
            self.thresholds.insert(queue, value);
        }
        Ok(())
    }

    fn on_created(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let iid = p.item(intern!(py, "interaction_id"))?;
        let queue_id = p.item(intern!(py, "queue_id"))?;
        let counted = self.counted(ts);
        let bucket = self.bucket(ts);
        let direction = p.get(intern!(py, "direction"))?;
        let outbound = match direction.downcast::<PyString>() {
            Ok(s) => s.to_str()? == "outbound",
            Err(_) => false,
        };
        let iid: Id = Id::from(text_of(iid, "interaction_id")?);
        let queue = self.name_of(queue_id, "queue_id")?;
        if outbound {
            self.outbound.insert(iid);
            if counted {
                self.cell(bucket, queue).outbound += 1;
                self.cell(bucket, OVERALL).outbound += 1;
            }
            return Ok(());
        }
        self.contacts.insert(iid.clone(), (bucket, counted));
        if counted {
            self.cell(bucket, OVERALL).offered += 1;
        }
        self.legs.insert(
            iid,
            Leg {
                queue,
                bucket,
                entered: ts,
                kind: INBOUND,
                counted,
            },
        );
        if counted {
            self.cell(bucket, queue).offered += 1;
        }
        Ok(())
    }

    fn on_overflowed(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let iid = text_of(p.item(intern!(py, "interaction_id"))?, "interaction_id")?;
        let leg = self.legs.remove(iid);
        let mut kind = INBOUND;
        if let Some(leg) = leg {
            kind = leg.kind;
            if leg.counted {
                self.cell(leg.bucket, leg.queue).overflowed += 1;
            }
        }
        let queue = self.name_of(p.item(intern!(py, "queue_id"))?, "queue_id")?;
        self.open_leg(iid, queue, ts, kind);
        Ok(())
    }

    fn on_queued(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let reason = p.get(intern!(py, "reason"))?;
        let returned = match reason.downcast::<PyString>() {
            Ok(s) => s.to_str()? == "transfer_returned",
            Err(_) => false,
        };
        if returned {
            let iid = text_of(p.item(intern!(py, "interaction_id"))?, "interaction_id")?;
            let queue = self.name_of(p.item(intern!(py, "queue_id"))?, "queue_id")?;
            self.open_leg(iid, queue, ts, INBOUND);
        }
        Ok(())
    }

    fn on_transferred(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let iid = text_of(p.item(intern!(py, "interaction_id"))?, "interaction_id")?;
        let (queue, bucket, counted) = self.work_or_now(p, iid, ts, false)?;
        if counted {
            self.cell(bucket, queue).transferred += 1;
            self.cell(bucket, OVERALL).transferred += 1;
        }
        let to_queue = p.get(intern!(py, "to_queue_id"))?;
        if to_queue.is_true()? {
            let to_queue = self.name_of(to_queue, "to_queue_id")?;
            self.open_leg(iid, to_queue, ts, INBOUND);
        }
        Ok(())
    }

    fn on_accepted(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let iid_text = text_of(p.item(intern!(py, "interaction_id"))?, "interaction_id")?;
        let queue = self.name_of(p.item(intern!(py, "queue_id"))?, "queue_id")?;
        let (iid, leg): (Id, Option<Leg>) = match self.legs.remove_entry(iid_text) {
            Some((iid, leg)) => (iid, Some(leg)),
            None => (Id::from(iid_text), None),
        };
        let (bucket, counted);
        if let Some(leg) = &leg {
            bucket = leg.bucket;
            counted = leg.counted;
            if counted {
                let at = self.cell_index(bucket, leg.queue);
                if leg.kind == CALLBACK {
                    self.cells[at].2.callbacks_answered += 1;
                } else {
                    let wait = queue_wait(p, leg, ts)?;
                    let threshold = self.threshold(leg.queue);
                    self.cells[at].2.answer(wait, threshold);
                }
            }
        } else {
            bucket = self.bucket(ts);
            counted = self.counted(ts);
        }
        let contact = match &leg {
            Some(l) if l.kind != INBOUND => None,
            _ => self.contacts.remove(&iid),
        };
        match contact {
            Some((cbucket, true)) => {
                let at = self.cell_index(cbucket, OVERALL);
                let wait = float_or_zero(p.get(intern!(py, "wait_seconds"))?)?;
                let threshold = self.threshold(queue);
                self.cells[at].2.answer(wait, threshold);
            }
            _ => {
                if let Some(l) = &leg {
                    if l.kind == CALLBACK && l.counted {
                        self.cell(l.bucket, OVERALL).callbacks_answered += 1;
                    }
                }
            }
        }
        if let Some(agent) = self.agent_of(p)? {
            self.work_set(iid, agent, (queue, bucket, counted));
        }
        Ok(())
    }

    fn on_abandoned(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let iid = text_of(p.item(intern!(py, "interaction_id"))?, "interaction_id")?;
        let leg = self.legs.remove(iid);
        if let Some(leg) = leg {
            if leg.kind == CALLBACK {
                if leg.counted {
                    self.cell(leg.bucket, leg.queue).callbacks_cancelled += 1;
                    self.cell(leg.bucket, OVERALL).callbacks_cancelled += 1;
                }
                return Ok(());
            }
            if leg.counted {
                let wait = queue_wait(p, &leg, ts)?;
                let threshold = self.threshold(leg.queue);
                let short = self.short;
                self.cell(leg.bucket, leg.queue)
                    .abandon(wait, threshold, short);
            }
        }
        if let Some((cbucket, true)) = self.contacts.remove(iid) {
            let wait = float_or_zero(p.get(intern!(py, "wait_seconds"))?)?;
            let short = self.short;
            let at = self.cell_index(cbucket, OVERALL);
            let queue_id = p.item(intern!(py, "queue_id"))?;
            let threshold = match self.sl_fixed {
                Some(t) => t,
                None => {
                    let queue = self.name_of(queue_id, "queue_id")?;
                    self.threshold(queue)
                }
            };
            self.cells[at].2.abandon(wait, threshold, short);
        }
        Ok(())
    }

    fn on_diverted(&mut self, py: Python<'_>, p: &PayloadView<'_>) -> PyResult<()> {
        let iid = text_of(p.item(intern!(py, "interaction_id"))?, "interaction_id")?;
        if let Some(leg) = self.legs.remove(iid) {
            if leg.counted {
                self.cell(leg.bucket, leg.queue).diverted += 1;
            }
        }
        if let Some((cbucket, true)) = self.contacts.remove(iid) {
            self.cell(cbucket, OVERALL).diverted += 1;
        }
        Ok(())
    }

    fn on_callback_requested(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let iid = text_of(p.item(intern!(py, "interaction_id"))?, "interaction_id")?;
        let leg = match self.legs.remove(iid) {
            Some(leg) => leg,
            None => Leg {
                queue: self.name_of(p.item(intern!(py, "queue_id"))?, "queue_id")?,
                bucket: self.bucket(ts),
                entered: ts,
                kind: INBOUND,
                counted: self.counted(ts),
            },
        };
        if leg.counted {
            self.cell(leg.bucket, leg.queue).callbacks_requested += 1;
        }
        if let Some((cbucket, true)) = self.contacts.remove(iid) {
            self.cell(cbucket, OVERALL).callbacks_requested += 1;
        }
        self.legs.insert(
            Id::from(iid),
            Leg {
                entered: ts,
                kind: CALLBACK,
                ..leg
            },
        );
        Ok(())
    }

    fn on_callback_failed(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let iid = text_of(p.item(intern!(py, "interaction_id"))?, "interaction_id")?;
        let work = match self.agent_of(p)? {
            Some(agent) => self.work_pop(iid, agent),
            None => None,
        };
        if !p.get(intern!(py, "retry_at"))?.is_none() && !self.legs.contains_key(iid) {
            let (bucket, counted) = match work {
                Some(w) => (w.1, w.2),
                None => (self.bucket(ts), self.counted(ts)),
            };
            let queue = self.name_of(p.item(intern!(py, "queue_id"))?, "queue_id")?;
            self.legs.insert(
                Id::from(iid),
                Leg {
                    queue,
                    bucket,
                    entered: ts,
                    kind: CALLBACK,
                    counted,
                },
            );
        }
        Ok(())
    }

    fn on_callback_exhausted(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let iid = text_of(p.item(intern!(py, "interaction_id"))?, "interaction_id")?;
        let (bucket, counted, queue) = match self.legs.remove(iid) {
            Some(leg) => (leg.bucket, leg.counted, leg.queue),
            None => (
                self.bucket(ts),
                self.counted(ts),
                self.name_of(p.item(intern!(py, "queue_id"))?, "queue_id")?,
            ),
        };
        if counted {
            self.cell(bucket, queue).callbacks_failed += 1;
            self.cell(bucket, OVERALL).callbacks_failed += 1;
        }
        Ok(())
    }

    fn on_wrapup_ended(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let iid = text_of(p.item(intern!(py, "interaction_id"))?, "interaction_id")?;
        let (queue, bucket, counted) = self.work_or_now(p, iid, ts, true)?;
        let outbound = self.outbound.remove(iid);
        if !counted {
            return Ok(());
        }
        let talk = float_or_zero(p.get(intern!(py, "talk_seconds"))?)?;
        let hold = float_or_zero(p.get(intern!(py, "hold_seconds"))?)?;
        let wrap = float_or_zero(p.get(intern!(py, "wrapup_seconds"))?)?;
        for key in [queue, OVERALL] {
            let cell = self.cell(bucket, key);
            if outbound {
                // The agent's own contact: apart from the inbound handle times.
                cell.outbound_handled += 1;
                cell.outbound_handle_seconds += talk + hold + wrap;
            } else {
                cell.handled += 1;
                cell.talk_seconds += talk;
                cell.hold_seconds += hold;
                cell.wrapup_seconds += wrap;
            }
        }
        Ok(())
    }

    fn on_survey_answered(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        if !(self.since <= ts && ts < self.until) {
            return Ok(());
        }
        let score = p.get(intern!(py, "score"))?;
        let top = p.get(intern!(py, "max_score"))?;
        // type(x) is int (and, a difference, within i64).
        // SAFETY: live objects.
        let exact_ints = unsafe {
            ffi::PyLong_CheckExact(score.as_ptr()) != 0 && ffi::PyLong_CheckExact(top.as_ptr()) != 0
        };
        if !exact_ints {
            return Ok(());
        }
        let (score, top) = match (score.extract::<i64>(), top.extract::<i64>()) {
            (Ok(s), Ok(t)) => (s, t),
            _ => return Ok(()),
        };
        if !(1 <= score && score <= top) || top < 2 {
            return Ok(());
        }
        let points = (score - 1) as f64 * 100.0 / (top - 1) as f64;
        let satisfied = if top >= 4 { score >= top - 1 } else { score == top };
        let bucket = self.bucket(ts);
        let queue_id = p.get(intern!(py, "queue_id"))?;
        let mut keys: Vec<Name> = Vec::with_capacity(2);
        if let Ok(q) = queue_id.downcast::<PyString>() {
            let q = q.to_str()?;
            if !q.is_empty() {
                keys.push(self.name(q));
            }
        }
        keys.push(OVERALL);
        for key in keys {
            let cell = self.cell(bucket, key);
            cell.surveys += 1;
            cell.csat_points += points;
            if satisfied {
                cell.surveys_satisfied += 1;
            }
        }
        Ok(())
    }

    fn on_state_changed(&mut self, py: Python<'_>, p: &PayloadView<'_>, ts: f64) -> PyResult<()> {
        let agent = self.name_of(p.item(intern!(py, "agent_id"))?, "agent_id")?;
        let at = self.agent_at.get(&agent).copied();
        let previous: Option<(Option<usize>, f64)> = match at {
            Some(i) => Some((self.agents[i].slot, self.agents[i].since)),
            None => {
                let since_text = p.get(intern!(py, "previous_since"))?;
                let state = p.get(intern!(py, "previous_state"))?;
                match (since_text.downcast::<PyString>(), state.downcast::<PyString>()) {
                    (Ok(since_text), Ok(state)) => {
                        let parsed = py
                            .import("datetime")?
                            .getattr(intern!(py, "datetime"))?
                            .call_method1(intern!(py, "fromisoformat"), (since_text,))
                            .and_then(|m| m.call_method0(intern!(py, "timestamp")));
                        match parsed {
                            Ok(ts) => Some((state_slot(state.to_str()?), ts.extract()?)),
                            Err(e) if e.is_instance_of::<pyo3::exceptions::PyValueError>(py) => {
                                None
                            }
                            Err(e) => return Err(e),
                        }
                    }
                    _ => None,
                }
            }
        };
        if let Some((Some(slot), mut start)) = previous {
            if self.since > start {
                start = self.since;
            }
            let end = if self.until < ts { self.until } else { ts };
            if start < end {
                let bucket = self.bucket(start);
                if end <= (bucket + 1) as f64 * self.iv {
                    self.cell(bucket, OVERALL).agent_seconds[slot] += end - start;
                } else {
                    self.add_agent_time(slot, start, end);
                }
            }
        }
        let state = p.item(intern!(py, "state"))?;
        let slot = match state.downcast::<PyString>() {
            Ok(s) => state_slot(s.to_str()?),
            Err(_) => None,
        };
        let spell = AgentSpell {
            agent,
            state: state.into_py(py),
            slot,
            since: ts,
        };
        match at {
            Some(i) => self.agents[i] = spell,
            None => {
                self.agent_at.insert(agent, self.agents.len());
                self.agents.push(spell);
            }
        }
        Ok(())
    }

    /// kpis.py `_add_agent_time`, for a known state's slot.
    fn add_agent_time(&mut self, slot: usize, mut start: f64, mut end: f64) {
        if self.since > start {
            start = self.since;
        }
        if self.until < end {
            end = self.until;
        }
        let iv = self.iv;
        while start < end {
            let bucket = self.bucket(start);
            let mut stop = (bucket + 1) as f64 * iv;
            if !(stop < end) {
                stop = end;
            }
            self.cell(bucket, OVERALL).agent_seconds[slot] += stop - start;
            start = stop;
        }
    }

    /// `moment.timestamp()`: computed here for a UTC datetime (as Python does it: whole
    /// microseconds since 1970 divided by a million, exact below 2**53), else asked of
    /// Python.
    fn timestamp(moment: &PyAny) -> PyResult<f64> {
        if let Some(us) = utc_datetime_to_us(moment)? {
            let unix_us = us + UNIX_TO_EPOCH_US;
            if unix_us.unsigned_abs() < 1 << 53 {
                return Ok(unix_us as f64 / 1e6);
            }
        }
        moment
            .call_method0(intern!(moment.py(), "timestamp"))?
            .extract()
    }

    /// One event: its time, the count, its handler (kpis.py `feed_all`'s loop body).
    fn feed_one(&mut self, py: Python<'_>, sink: &EventSink, event: &PyAny) -> PyResult<()> {
        // SAFETY: a live object; the slots read are borrowed from it.
        let fields = unsafe { sink.slots_of(event.as_ptr()) };
        let (type_, payload, moment): (&PyAny, &PyAny, &PyAny) = match fields {
            // SAFETY: borrowed from the live event.
            Some([t, p, m]) => unsafe {
                (
                    py.from_borrowed_ptr(t),
                    py.from_borrowed_ptr(p),
                    py.from_borrowed_ptr(m),
                )
            },
            None => {
                let moment = event.getattr(intern!(py, "time"))?;
                let type_ = event.getattr(intern!(py, "type"))?;
                (type_, event, moment) // the payload is read below, only when handled
            }
        };
        let from_slots = fields.is_some();
        let same = match &self.last_moment {
            Some(last) => last.as_ptr() == moment.as_ptr(),
            None => false,
        };
        let ts = if same {
            self.last_ts
        } else if moment.is_none() {
            match self.now {
                Some(now) => now,
                None => {
                    return Err(invalid_input(
                        py,
                        "The first event fed needs a time.".to_string(),
                        "time",
                    ))
                }
            }
        } else {
            let ts = Self::timestamp(moment)?;
            self.last_ts = ts;
            self.last_moment = Some(moment.into_py(py));
            if self.now.map_or(true, |now| ts > now) {
                self.now = Some(ts);
            }
            ts
        };
        self.events += 1;
        // The handler table is a dict keyed by type: a str subclass with its own __eq__
        // or __hash__ is not looked up the same way (never produced).
        let kind = match type_.downcast::<PyString>() {
            Ok(s) => kind_of(s.to_str()?),
            Err(_) => None,
        };
        if let Some(kind) = kind {
            let payload = if from_slots {
                payload
            } else {
                event.getattr(intern!(py, "payload"))?
            };
            self.handle(py, kind, &PayloadView::new(payload), ts)?;
        }
        Ok(())
    }
}

#[pymethods]
impl KpiCore {
    /// The accumulator's configuration, as kpis.py keeps it: interval, short-abandon
    /// threshold, fixed service-level threshold (None: per queue), window as timestamps.
    #[new]
    fn py_new(
        interval_seconds: f64,
        short_abandon_seconds: f64,
        service_level_seconds: Option<f64>,
        since: f64,
        until: f64,
    ) -> Self {
        KpiCore {
            iv: interval_seconds,
            short: short_abandon_seconds,
            sl_fixed: service_level_seconds,
            since,
            until,
            names: vec![Id::from("")],
            name_at: [(Id::from(""), OVERALL)].into_iter().collect(),
            cells: Vec::new(),
            cell_at: FxMap::default(),
            thresholds: FxMap::default(),
            legs: FxMap::default(),
            contacts: FxMap::default(),
            work: FxMap::default(),
            outbound: FxSet::default(),
            agents: Vec::new(),
            agent_at: FxMap::default(),
            now: None,
            last_moment: None,
            last_ts: 0.0,
            events: 0,
        }
    }

    /// Take events into account in stream order (kpis.py `feed_all`); on an error the
    /// events before the one at fault stay counted, as there.
    fn feed_all(&mut self, py: Python<'_>, events: &PyAny) -> PyResult<()> {
        let sink = event_sink(py)?;
        // SAFETY: a live object.
        if unsafe { ffi::PyList_CheckExact(events.as_ptr()) } != 0 {
            let list = events.as_ptr();
            let mut i = 0;
            // SAFETY: GIL held; the list's length is read again at each step (a handler
            // running Python code could change it), and each event is held (a reference of
            // our own, released after) while it is handled, without the GIL pool's
            // bookkeeping.
            unsafe {
                while i < ffi::PyList_GET_SIZE(list) {
                    let event = ffi::PyList_GET_ITEM(list, i);
                    ffi::Py_INCREF(event);
                    let done = self.feed_one(py, sink, py.from_borrowed_ptr(event));
                    ffi::Py_DECREF(event);
                    done?;
                    i += 1;
                }
            }
            return Ok(());
        }
        for event in events.iter()? {
            self.feed_one(py, sink, event?)?;
        }
        Ok(())
    }

    /// The names of the values of each cell's tally, in order (kpis.py `Tally` slots).
    #[staticmethod]
    fn tally_fields() -> Vec<&'static str> {
        TALLY_FIELDS.to_vec()
    }

    /// The cells in first-use order: `(bucket, key, values)` (key "" is overall).
    fn cells(&self, py: Python<'_>) -> Vec<(i64, PyObject, PyObject)> {
        self.cells
            .iter()
            .map(|(b, k, t)| {
                let key = PyString::new(py, &self.names[*k as usize]).into_py(py);
                (*b, key, t.values(py))
            })
            .collect()
    }

    /// The open legs: `(interaction_id, queue_id, bucket, entered, kind, counted)`.
    fn legs(&self) -> Vec<(String, String, i64, f64, u8, bool)> {
        self.legs
            .iter()
            .map(|(iid, l)| {
                (
                    iid.to_string(),
                    self.names[l.queue as usize].to_string(),
                    l.bucket,
                    l.entered,
                    l.kind,
                    l.counted,
                )
            })
            .collect()
    }

    /// Each agent's current state and since when, in first-seen order.
    fn agents(&self, py: Python<'_>) -> Vec<(String, PyObject, f64)> {
        self.agents
            .iter()
            .map(|a| {
                let agent = self.names[a.agent as usize].to_string();
                (agent, a.state.clone_ref(py), a.since)
            })
            .collect()
    }

    /// Each queue's service-level threshold seen in its configuration events.
    fn thresholds(&self) -> Vec<(String, f64)> {
        self.thresholds
            .iter()
            .map(|(q, t)| (self.names[*q as usize].to_string(), *t))
            .collect()
    }

    /// The time of the latest event fed (a timestamp), None before any.
    #[getter]
    fn now(&self) -> Option<f64> {
        self.now
    }

    /// Events fed so far.
    #[getter]
    fn events(&self) -> u64 {
        self.events
    }
}

#[cfg(test)]
mod tests {
    use super::py_floordiv;

    #[test]
    fn floordiv_like_python() {
        assert_eq!(py_floordiv(7.0, 2.0), 3.0);
        assert_eq!(py_floordiv(-7.0, 2.0), -4.0);
        assert_eq!(py_floordiv(1_700_000_123.5, 1800.0), 944_444.0);
        assert_eq!(py_floordiv(3600.0, 1800.0), 2.0);
    }

    #[test]
    fn fast_bucket_is_python_floordiv() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for iv in [1.0, 60.0, 900.0, 1800.0, 86400.0] {
            for i in 0..200_000u64 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Timestamps around 2026, on and near interval boundaries, and negative ones.
                let base = 1.77e9 + (i % 5000) as f64 * iv;
                let ts = match i % 4 {
                    0 => base,
                    1 => f64::from_bits(base.to_bits() - 1 - (x % 3)),
                    2 => base + (x % 1_000_000) as f64 / 1e6,
                    _ => -base / 3.0 + (x % 977) as f64 * 0.37,
                };
                assert_eq!(
                    super::floor_bucket(ts, iv),
                    py_floordiv(ts, iv) as i64,
                    "{ts} // {iv}"
                );
            }
        }
    }
}

