//! The routing engine (`CompiledEngine`): engine.py's `AcdEngine` ported to Rust.
//!
//! The same commands, events, errors, random draws, queries and snapshots as the Python
//! engine (docs/routing-core.md). This file holds the plumbing (a command's begin/finish,
//! events, errors, timers), agent state and the ready indexes, queueing and routing (both
//! paths: an arrival finds an agent; an agent who becomes free takes the best waiting
//! interaction across its queues), offers, accept, complete and wrap-up. The other command
//! groups are in `engine/`: queue rules (`rules.rs`), agent states (`agents.rs`),
//! configuration (`config.rs`), transfers (`transfer.rs`), outbound work and callbacks
//! (`outbound.rs`), queries and snapshots (`snapshot.rs`).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::glue::{event_sink, utc_datetime_to_us, IsoText};
use crate::model::*;
use crate::mt::MersenneTwister;
use crate::pyfast::{EventList, Payload};

mod agents;
mod config;
mod outbound;
mod rules;
mod snapshot;
mod transfer;
use crate::ready::{Draw, FxMap, Key};
use crate::sorted::SortedVec;
use crate::types::{Channel, ChannelSet, Strategy, ALL_CHANNELS};

const USF: f64 = 1_000_000.0;
const MAX_PRIORITY: i64 = 100;

/// The Python objects the engine calls (cold paths) and builds events with.
struct PyRefs {
    to_us: PyObject,
    check_attributes: PyObject,
    queue_config_to_dict: PyObject,
    agent_config_to_dict: PyObject,
    utc: PyObject,
    datetime_type: PyObject,
    invalid: PyObject,
    not_found: PyObject,
    conflict: PyObject,
    permission: PyObject,
}

impl PyRefs {
    fn load(py: Python<'_>) -> PyResult<PyRefs> {
        let model = py.import("sparklecomm.acd.model")?;
        let persistence = py.import("sparklecomm.acd.persistence")?;
        let errors = py.import("sparklecomm.core.errors")?;
        let dt = py.import("datetime")?;
        Ok(PyRefs {
            to_us: model.getattr("to_us")?.into(),
            check_attributes: model.getattr("check_attributes")?.into(),
            queue_config_to_dict: persistence.getattr("queue_config_to_dict")?.into(),
            agent_config_to_dict: persistence.getattr("agent_config_to_dict")?.into(),
            utc: dt.getattr("UTC")?.into(),
            datetime_type: dt.getattr("datetime")?.into(),
            invalid: errors.getattr("InvalidInput")?.into(),
            not_found: errors.getattr("NotFound")?.into(),
            conflict: errors.getattr("Conflict")?.into(),
            permission: errors.getattr("PermissionDenied")?.into(),
        })
    }
}

/// Channel names as interned Python strings (event payloads).
fn channel_py(py: Python<'_>, ch: Channel) -> &PyString {
    match ch {
        Channel::Voice => intern!(py, "voice"),
        Channel::Chat => intern!(py, "chat"),
        Channel::Email => intern!(py, "email"),
        Channel::Callback => intern!(py, "callback"),
        Channel::Task => intern!(py, "task"),
    }
}

fn state_py(py: Python<'_>, state: AgentState) -> &PyString {
    match state {
        AgentState::LoggedOut => intern!(py, "logged_out"),
        AgentState::Available => intern!(py, "available"),
        AgentState::Reserved => intern!(py, "reserved"),
        AgentState::Busy => intern!(py, "busy"),
        AgentState::WrapUp => intern!(py, "wrap_up"),
        AgentState::Break => intern!(py, "break"),
    }
}

fn strategy_py(py: Python<'_>, strategy: Strategy) -> &PyString {
    match strategy {
        Strategy::RingAll => intern!(py, "ring-all"),
        Strategy::RoundRobin => intern!(py, "round-robin"),
        Strategy::Linear => intern!(py, "linear"),
        Strategy::LongestIdle => intern!(py, "longest-idle"),
        Strategy::FewestInteractions => intern!(py, "fewest-interactions"),
        Strategy::LeastTalkTime => intern!(py, "least-talk-time"),
        Strategy::Random => intern!(py, "random"),
        Strategy::WeightedRandom => intern!(py, "weighted-random"),
        Strategy::BestSkill => intern!(py, "best-skill"),
    }
}

fn domain_error(py: Python<'_>, class: &PyObject, detail: String, field: &str) -> PyErr {
    let kwargs = PyDict::new(py);
    if let Err(e) = kwargs.set_item("field", field) {
        return e;
    }
    match class.call(py, (detail,), Some(kwargs)) {
        Ok(exc) => PyErr::from_value(exc.into_ref(py)),
        Err(e) => e,
    }
}


/// Python's `repr()` of a string, as the engine's messages quote identifiers.
fn repr(py: Python<'_>, s: &str) -> String {
    PyString::new(py, s)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| format!("'{s}'"))
}

/// Random draws: the engine's `random.Random` run in Rust (bit-exact), or, for another
/// kind of generator, through its own `randrange`.
struct Drawer<'a> {
    py: Python<'a>,
    mt: &'a mut Option<MersenneTwister>,
    rng: &'a PyObject,
}

impl<'a> Draw for Drawer<'a> {
    fn randrange(&mut self, n: u64) -> u64 {
        if let Some(mt) = self.mt.as_mut() {
            return mt.randrange(n);
        }
        self.rng
            .call_method1(self.py, intern!(self.py, "randrange"), (n,))
            .and_then(|v| v.extract::<u64>(self.py))
            .expect("random.Random.randrange failed")
    }
}

/// An argument with a Python default: unlike `Option`, an explicit `None` is kept (and
/// refused by the checks as the Python engine refuses it).
pub(super) struct Given<'p>(Option<&'p PyAny>);

impl<'p> FromPyObject<'p> for Given<'p> {
    fn extract(ob: &'p PyAny) -> PyResult<Self> {
        Ok(Given(Some(ob)))
    }
}

impl<'p> Given<'p> {
    pub(super) fn missing() -> Self {
        Given(None)
    }
}

enum Work {
    Agent(Id),
    Interaction(Id),
}

#[pyclass]
pub struct CompiledEngine {
    refs: PyRefs,
    clock: PyObject,
    rng: PyObject,
    /// `rng` run in Rust (None when it is not exactly a `random.Random`); handed back to
    /// `rng` whenever Python may look at it (the `rng` property, snapshots).
    mt: Option<MersenneTwister>,
    /// ISO text of "now" and of offer expiries (each keeps its last second).
    now_text: IsoText,
    expiry_text: IsoText,
    /// The normalized `EngineConfig` given (its settings as given, for `to_snapshot`).
    engine_config: PyObject,
    priority_points: f64,
    max_consecutive_misses: i64,
    missed_offers_reason: String,
    reject_counts_as_miss: bool,
    handle_time_window: usize,
    max_overflow_hops: i64,
    /// Break reason codes agents may use (None: any); the missed-offers reason always.
    break_reasons: Option<std::collections::HashSet<String>>,
    expression_cache_size: usize,
    expressions: FxMap<String, crate::expr::Expr>,
    agents: FxMap<Id, Box<Agent>>,
    agent_order: Vec<Id>,
    queues: FxMap<Id, Box<Queue>>,
    queue_order: Vec<Id>,
    interactions: FxMap<Id, Box<Interaction>>,
    /// Interactions by creation order (a Python dict's iteration order).
    interaction_order: BTreeMap<u64, (Id, Py<PyString>)>,
    next_created: u64,
    timers: FxMap<u64, Timer>,
    heap: BinaryHeap<Reverse<(i64, u64)>>,
    next_timer: u64,
    next_seq: i64,
    next_agent_ordinal: i64,
    next_queue_ordinal: i64,
    events: EventList,
    now: i64,
    now_dt: PyObject,
    now_iso: Option<Py<PyString>>,
    work: VecDeque<Work>,
    /// `reindex`'s buffer (an agent's new entries; kept between calls).
    index_scratch: Vec<(Id, IndexEntry)>,
    /// The interaction dropped last and its Python id (see `start_wrapup`).
    dropped: Option<(Id, Py<PyString>)>,
    /// Queues whose last staffed member just left (leave_when_empty), acted on at the end.
    to_empty: Vec<Id>,
    /// Business hours by name: Python `BusinessHours` objects (asked `is_open(now)`).
    hours: Vec<(String, PyObject)>,
}

fn getattr<'p, T: FromPyObject<'p>>(obj: &'p PyAny, name: &str) -> PyResult<T> {
    obj.getattr(name)?.extract()
}

impl CompiledEngine {
    // -- plumbing ----------------------------------------------------------------------------

    fn begin(&mut self, py: Python<'_>) -> PyResult<i64> {
        let moment = self.clock.call_method0(py, intern!(py, "now"))?;
        if !moment.is(&self.now_dt) {
            self.now = self.to_us(py, moment.as_ref(py))?;
            self.now_dt = moment;
            self.now_iso = None;
        }
        self.events.clear(py);
        self.work.clear();
        self.to_empty.clear();
        Ok(self.now)
    }

    /// The current instant for a query (no command: nothing else is reset).
    fn query_now(&mut self, py: Python<'_>) -> PyResult<()> {
        let moment = self.clock.call_method0(py, intern!(py, "now"))?;
        if !moment.is(&self.now_dt) {
            self.now = self.to_us(py, moment.as_ref(py))?;
            self.now_dt = moment;
            self.now_iso = None;
        }
        Ok(())
    }

    fn finish(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        if !self.work.is_empty() || !self.to_empty.is_empty() {
            self.dispatch(py)?;
        }
        self.events.take_list(py)
    }

    /// Hands the draws made in Rust back to the Python generator.
    fn sync_rng(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(mt) = &self.mt {
            mt.store_into(self.rng.as_ref(py))?;
        }
        Ok(())
    }

    /// Microseconds since EPOCH of an aware datetime (model.py `to_us`).
    fn to_us(&self, py: Python<'_>, moment: &PyAny) -> PyResult<i64> {
        match utc_datetime_to_us(moment)? {
            Some(us) => Ok(us),
            None => self.refs.to_us.call1(py, (moment,))?.extract(py),
        }
    }

    /// The current instant as ISO text (computed once per instant).
    fn iso(&mut self, py: Python<'_>) -> PyResult<Py<PyString>> {
        Self::iso_of(
            py,
            &mut self.now_iso,
            &mut self.now_text,
            &self.now_dt,
            &self.refs,
            self.now,
        )
    }

    /// `iso` from the fields it uses (for callers holding a record of the engine).
    fn iso_of(
        py: Python<'_>,
        now_iso: &mut Option<Py<PyString>>,
        now_text: &mut IsoText,
        now_dt: &PyObject,
        refs: &PyRefs,
        now: i64,
    ) -> PyResult<Py<PyString>> {
        if let Some(text) = now_iso {
            return Ok(text.clone_ref(py));
        }
        let moment = now_dt.as_ref(py);
        let utc = moment
            .getattr(intern!(py, "tzinfo"))?
            .is(refs.utc.as_ref(py))
            && moment.get_type().is(refs.datetime_type.as_ref(py));
        let text: Py<PyString> = if utc {
            now_text.py_text(py, now)?.extract(py)?
        } else {
            moment.call_method0(intern!(py, "isoformat"))?.extract()?
        };
        *now_iso = Some(text.clone_ref(py));
        Ok(text)
    }

    /// `from_us(us).isoformat()`.
    fn from_us_iso(&self, py: Python<'_>, us: i64) -> PyResult<PyObject> {
        crate::glue::IsoText::default().py_text(py, us)
    }

    fn emit(&mut self, py: Python<'_>, type_: &PyString, payload: &PyDict) -> PyResult<()> {
        let event = event_sink(py)?.new_event(py, type_, payload, self.now_dt.as_ref(py))?;
        self.events.push(event);
        Ok(())
    }

    /// `emit` for a payload built with `Payload` (the hot path: the dict moves into the event).
    fn emit_payload(&mut self, py: Python<'_>, type_: &PyString, payload: Payload) -> PyResult<()> {
        let event = event_sink(py)?.new_event_with(
            py,
            type_,
            payload.finish(py),
            self.now_dt.as_ref(py),
        )?;
        self.events.push(event);
        Ok(())
    }

    fn invalid(&self, py: Python<'_>, detail: String, field: &str) -> PyErr {
        domain_error(py, &self.refs.invalid, detail, field)
    }
    fn not_found(&self, py: Python<'_>, detail: String, field: &str) -> PyErr {
        domain_error(py, &self.refs.not_found, detail, field)
    }
    fn conflict(&self, py: Python<'_>, detail: String, field: &str) -> PyErr {
        domain_error(py, &self.refs.conflict, detail, field)
    }
    fn permission(&self, py: Python<'_>, detail: String, field: &str) -> PyErr {
        domain_error(py, &self.refs.permission, detail, field)
    }

    fn agent_id_of(&self, py: Python<'_>, agent_id: &PyAny, field: &str) -> PyResult<Id> {
        if let Ok(s) = agent_id.downcast::<PyString>() {
            if let Some((id, _)) = self.agents.get_key_value(s.to_str()?) {
                return Ok(id.clone());
            }
        }
        Err(self.not_found(py, format!("No agent {}.", agent_id.repr()?), field))
    }

    fn queue_id_of(&self, py: Python<'_>, queue_id: &PyAny, field: &str) -> PyResult<Id> {
        if let Ok(s) = queue_id.downcast::<PyString>() {
            if let Some((id, _)) = self.queues.get_key_value(s.to_str()?) {
                return Ok(id.clone());
            }
        }
        Err(self.not_found(py, format!("No queue {}.", queue_id.repr()?), field))
    }

    fn interaction_id_of(&self, py: Python<'_>, interaction_id: &PyAny) -> PyResult<Id> {
        if let Ok(s) = interaction_id.downcast::<PyString>() {
            if let Some((id, _)) = self.interactions.get_key_value(s.to_str()?) {
                return Ok(id.clone());
            }
        }
        Err(self.not_found(
            py,
            format!(
                "No interaction {} in routing (unknown or already ended).",
                interaction_id.repr()?
            ),
            "interaction_id",
        ))
    }

    fn compile(&mut self, py: Python<'_>, source: &str, field: &str) -> PyResult<crate::expr::Expr> {
        if let Some(expr) = self.expressions.get(source) {
            return Ok(expr.clone());
        }
        let expr = crate::expr::compile(source, field).map_err(|e| e.to_py(py))?;
        if self.expressions.len() >= self.expression_cache_size {
            self.expressions.clear();
        }
        self.expressions.insert(source.to_string(), expr.clone());
        Ok(expr)
    }

    /// engine.py `_check_new_id`: the id of an interaction about to be created (and the
    /// Python str it came as).
    fn check_new_id(&self, py: Python<'_>, interaction_id: &PyAny) -> PyResult<(Id, Py<PyString>)> {
        let text = match interaction_id.downcast::<PyString>() {
            Ok(s) if (1..=200).contains(&s.len()?) => s,
            _ => {
                return Err(self.invalid(
                    py,
                    "interaction_id must be a non-empty string.".into(),
                    "interaction_id",
                ))
            }
        };
        if self.interactions.contains_key(text.to_str()?) {
            return Err(self.conflict(
                py,
                format!("Interaction {} exists already.", interaction_id.repr()?),
                "interaction_id",
            ));
        }
        Ok((Id::from(text.to_str()?), text.into()))
    }

    /// engine.py `_check_customer`: None or a string of at most 200 characters.
    fn check_customer(&self, py: Python<'_>, customer_id: Option<&PyAny>) -> PyResult<PyObject> {
        match customer_id {
            None => Ok(py.None()),
            Some(c) => {
                let ok = c.is_none()
                    || matches!(c.downcast::<PyString>().map(|s| s.len()), Ok(Ok(n)) if n <= 200);
                if !ok {
                    return Err(self.invalid(
                        py,
                        "customer_id must be a string.".into(),
                        "customer_id",
                    ));
                }
                Ok(c.into())
            }
        }
    }

    /// model.py `check_attributes` (a new dict when none are given).
    fn check_attributes(&self, py: Python<'_>, attributes: Option<&PyAny>) -> PyResult<PyObject> {
        match attributes {
            Some(a) if !a.is_none() => self.refs.check_attributes.call1(py, (a,)),
            _ => Ok(PyDict::new(py).into()),
        }
    }

    /// A new interaction record, queued (the caller changes what differs), created now.
    #[allow(clippy::too_many_arguments)]
    fn new_interaction(
        &mut self,
        py: Python<'_>,
        iid: &Id,
        py_id: &Py<PyString>,
        channel: Channel,
        qid: &Id,
        (priority, required_skills, expression): (i64, Py<PyString>, crate::expr::Expr),
        (customer_id, attributes): (PyObject, PyObject),
    ) -> Interaction {
        let created_seq = self.next_created;
        self.next_created += 1;
        Interaction {
            id: iid.clone(),
            py_id: py_id.clone_ref(py),
            channel,
            priority,
            required_skills,
            expression,
            customer_id,
            attributes,
            created_at: self.now,
            queued_at: self.now,
            queue_id: qid.clone(),
            seq: 0,
            state: InteractionState::Queued,
            entries: Vec::new(),
            offers: Vec::new(),
            offer_kind: "queue",
            offer_attempts: 0,
            excluded: Vec::new(),
            agent_id: None,
            participants: Vec::new(),
            leg_started_at: None,
            hold_started_at: None,
            leg_hold_us: 0,
            hops: 0,
            max_wait_reached: false,
            original_channel: None,
            callback_phone: None,
            callback_due_at: None,
            callback_attempts: 0,
            timers: Vec::new(),
            direction: "inbound",
            created_seq,
        }
    }

    /// End the owner's leg: (talk us, hold us); talk excludes hold (engine.py `_close_leg`).
    fn close_leg(&mut self, iid: &Id) -> (i64, i64) {
        let now = self.now;
        let it = self.interactions.get_mut(iid).expect("interaction");
        if let Some(h) = it.hold_started_at.take() {
            it.leg_hold_us += now - h;
        }
        let started = it.leg_started_at.unwrap_or(now);
        let hold = it.leg_hold_us;
        let talk = (now - started - hold).max(0);
        it.leg_started_at = Some(now);
        it.leg_hold_us = 0;
        (talk, hold)
    }

    /// engine.py `_detach_owner`: nobody handles the interaction any more.
    fn detach_owner(&mut self, iid: &Id) {
        let it = self.interactions.get_mut(iid).expect("interaction");
        it.agent_id = None;
        it.participants.clear();
        it.leg_started_at = None;
    }

    /// Interaction ids in creation order (a Python dict's iteration order).
    fn ordered_ids(&self) -> impl Iterator<Item = &Id> + '_ {
        self.interaction_order.values().map(|(id, _)| id)
    }

    fn add_interaction(&mut self, it: Interaction) {
        self.interaction_order
            .insert(it.created_seq, (it.id.clone(), it.py_id.clone()));
        self.interactions.insert(it.id.clone(), Box::new(it));
    }

    /// model.py `parse_channel`: `Channel(str(value))`.
    pub(super) fn parse_channel(&self, py: Python<'_>, value: &PyAny) -> PyResult<Channel> {
        let text = value.str()?;
        match Channel::parse(text.to_str()?) {
            Some(ch) => Ok(ch),
            None => {
                let names: Vec<&str> = ALL_CHANNELS.iter().map(|c| c.name()).collect();
                Err(self.invalid(
                    py,
                    format!(
                        "Unknown channel {}; expected one of {}.",
                        value.repr()?,
                        names.join(", ")
                    ),
                    "channel",
                ))
            }
        }
    }

    fn check_reason(&self, py: Python<'_>, reason: &PyAny, field: &str) -> PyResult<()> {
        let ok = match reason.downcast::<PyString>() {
            Ok(s) => {
                let n = s.to_str()?.chars().count();
                (1..=100).contains(&n)
            }
            Err(_) => false,
        };
        if ok {
            Ok(())
        } else {
            Err(self.invalid(
                py,
                format!("{field} must be a non-empty string of at most 100 characters."),
                field,
            ))
        }
    }

    // -- timers ------------------------------------------------------------------------------

    fn schedule(&mut self, due: i64, kind: TimerKind, a: Id, b: Id) -> u64 {
        let tid = self.next_timer;
        self.next_timer += 1;
        self.timers.insert(tid, Timer { due, kind, a, b });
        self.heap.push(Reverse((due, tid)));
        if self.heap.len() > 2 * self.timers.len() + 4096 {
            self.heap = self.timers.iter().map(|(i, t)| Reverse((t.due, *i))).collect();
        }
        tid
    }

    fn cancel(&mut self, tid: u64) {
        self.timers.remove(&tid);
    }

    // -- agent state and the ready indexes ---------------------------------------------------

    fn refresh(&mut self, py: Python<'_>, agent_id: &Id, reason: &str) -> PyResult<()> {
        let now = self.now;
        // One look-up of the agent for the state, its event and its index entries.
        let agent = self.agents.get_mut(agent_id).expect("agent");
        let mut reason: &str = reason;
        let state = if agent.logged_in_at.is_none() {
            AgentState::LoggedOut
        } else if !agent.interactions.is_empty() {
            if !agent.rings.is_empty() && agent.rings.len() == agent.interactions.len() {
                AgentState::Reserved
            } else {
                AgentState::Busy
            }
        } else if agent.offer.is_some() {
            AgentState::Reserved
        } else if !agent.wrapups.is_empty() {
            AgentState::WrapUp
        } else if let Some(aux) = &agent.aux_reason {
            if !aux.is_empty() {
                reason = aux;
            }
            AgentState::Break
        } else {
            AgentState::Available
        };
        let previous = agent.state;
        let mut event = None;
        if state != previous || (state == AgentState::Break && reason != agent.reason) {
            let reason = reason.to_string();
            let load = Payload::new(py, agent.load.entries.len())?;
            for &(ch, n) in &agent.load.entries {
                if n != 0 {
                    load.int(py, channel_py(py, ch), n)?;
                }
            }
            let previous_since: PyObject = match &agent.since_iso {
                Some(text) => text.clone_ref(py).into(),
                None => crate::glue::IsoText::default().py_text(py, agent.since)?,
            };
            let iso = Self::iso_of(
                py,
                &mut self.now_iso,
                &mut self.now_text,
                &self.now_dt,
                &self.refs,
                now,
            )?;
            let p = Payload::new(py, 9)?;
            p.obj(py, intern!(py, "agent_id"), agent.py_id.as_ref(py))?;
            p.obj(py, intern!(py, "state"), state_py(py, state))?;
            p.text(py, intern!(py, "reason"), &reason)?;
            p.obj(py, intern!(py, "since"), iso.as_ref(py))?;
            p.obj(py, intern!(py, "previous_state"), state_py(py, previous))?;
            p.text(py, intern!(py, "previous_reason"), &agent.reason)?;
            p.obj(py, intern!(py, "previous_since"), previous_since.as_ref(py))?;
            p.float(
                py,
                intern!(py, "previous_seconds"),
                (now - agent.since) as f64 / USF,
            )?;
            p.obj(py, intern!(py, "load"), load.finish(py).as_ref(py))?;
            if state == AgentState::Available {
                agent.idle_since = now;
            }
            agent.state = state;
            agent.reason = reason;
            agent.since = now;
            agent.since_iso = Some(iso);
            event = Some(p);
        }
        if !agent.index_keys.is_empty()
            || (agent.logged_in_at.is_some() && agent.aux_reason.is_none() && agent.offer.is_none())
        {
            // Emits nothing: the event still comes out before any routing it leads to.
            Self::reindex_agent(
                agent,
                &mut self.queues,
                &mut self.index_scratch,
                &mut self.work,
            );
        }
        if let Some(p) = event {
            self.emit_payload(py, intern!(py, "agent.state_changed"), p)?;
        }
        Ok(())
    }

    fn routable_channels(agent: &Agent) -> ChannelSet {
        let mut channels = ChannelSet::EMPTY;
        if agent.logged_in_at.is_some() && agent.aux_reason.is_none() && agent.offer.is_none() {
            let load = &agent.load;
            let cfg = &agent.cfg;
            if cfg.voice_blocks_other_channels
                && (load.get(Channel::Voice) != 0 || load.get(Channel::Callback) != 0)
            {
                for ch in [Channel::Voice, Channel::Callback] {
                    let n = load.get(ch);
                    if n != 0 && n < cfg.capacity_of(ch) {
                        channels.insert(ch);
                    }
                }
            } else {
                for &(ch, n) in &cfg.capacity {
                    if load.get(ch) < n {
                        channels.insert(ch);
                    }
                }
            }
        }
        channels
    }

    /// Put the agent in exactly the ready indexes it belongs in now, with fresh keys.
    fn reindex(&mut self, agent_id: &Id) {
        let agent = self.agents.get_mut(agent_id).expect("agent");
        Self::reindex_agent(
            agent,
            &mut self.queues,
            &mut self.index_scratch,
            &mut self.work,
        );
    }

    /// `reindex` of an agent record at hand (`scratch`: the engine's buffer).
    fn reindex_agent(
        agent: &mut Agent,
        queues: &mut FxMap<Id, Box<Queue>>,
        scratch: &mut Vec<(Id, IndexEntry)>,
        work: &mut VecDeque<Work>,
    ) {
        let agent_id = &agent.id;
        let channels = Self::routable_channels(agent);
        if channels.is_empty() {
            for (qid, (penalty, key, chans)) in agent.index_keys.drain(..) {
                queues
                    .get_mut(&qid)
                    .expect("queue")
                    .ready
                    .delete(penalty, &key, chans);
            }
            return;
        }
        // The new entries, in membership order (a buffer kept between calls).
        let mut desired = std::mem::take(scratch);
        desired.clear();
        let old = &agent.index_keys;
        let load_sum = agent.load.sum();
        let idle = agent.idle_since;
        let mut matched = 0;
        for (qid, member) in &agent.queues {
            let queue = queues.get_mut(qid).expect("queue");
            let was = old.iter().find(|(q, _)| q == qid).map(|(_, e)| e);
            if was.is_some() {
                matched += 1;
            }
            let chans = channels.intersection(queue.cfg.channels);
            if chans.is_empty() {
                if let Some(e) = was {
                    queue.ready.delete(e.0, &e.1, e.2);
                }
                continue;
            }
            let order = member.order;
            let key = match queue.cfg.strategy {
                Strategy::LongestIdle => Key::new(&[load_sum, idle, order], agent_id.clone()),
                Strategy::FewestInteractions => {
                    Key::new(&[agent.handled, load_sum, idle, order], agent_id.clone())
                }
                Strategy::LeastTalkTime => {
                    Key::new(&[agent.talk_us, load_sum, idle, order], agent_id.clone())
                }
                Strategy::BestSkill => {
                    let skill = queue.cfg.best_skill.as_deref().unwrap_or("");
                    let level = agent.cfg.skill_levels.get(skill).copied().unwrap_or(0);
                    Key::new(&[-level, load_sum, idle, order], agent_id.clone())
                }
                Strategy::WeightedRandom => Key::new(&[member.weight, order], agent_id.clone()),
                _ => Key::new(&[order], agent_id.clone()),
            };
            match was {
                None => queue.ready.insert(member.penalty, key.clone(), chans),
                Some(e) => {
                    if e.0 != member.penalty || e.1 != key || e.2 != chans {
                        queue
                            .ready
                            .change((e.0, &e.1, e.2), (member.penalty, key.clone(), chans));
                    }
                }
            }
            desired.push((qid.clone(), (member.penalty, key, chans)));
        }
        if matched < old.len() {
            // Entries in queues the agent is no longer a member of (not left by the
            // configuration changes, which drop them first; kept for safety).
            for (qid, e) in old {
                if !agent.queues.iter().any(|(q, _)| q == qid) {
                    queues.get_mut(qid).expect("queue").ready.delete(e.0, &e.1, e.2);
                }
            }
        }
        let any = !desired.is_empty();
        let agent_id = agent_id.clone();
        *scratch = std::mem::replace(&mut agent.index_keys, desired);
        if any {
            work.push_back(Work::Agent(agent_id));
        }
    }

    fn staff(&mut self, agent_id: &Id, delta: i64) {
        let queues: Vec<Id> = self.agents[agent_id].queues.iter().map(|(q, _)| q.clone()).collect();
        for qid in &queues {
            self.staff_queue(agent_id, qid, delta);
        }
    }

    fn staff_queue(&mut self, agent_id: &Id, qid: &Id, delta: i64) {
        let agent = &self.agents[agent_id];
        let queue = self.queues.get_mut(qid).expect("queue");
        queue.staffed_agents += delta;
        for &(ch, n) in &agent.cfg.capacity {
            queue.staffed_capacity.add(ch, delta * n);
        }
        if delta < 0 && queue.staffed_agents == 0 && queue.cfg.leave_when_empty {
            // Acted on once the command's changes are done.
            self.to_empty.push(qid.clone());
        }
    }

    // -- waiting lists -----------------------------------------------------------------------

    fn list_entry(&mut self, iid: &Id, index: usize) {
        let it = self.interactions.get_mut(iid).expect("interaction");
        let channel = it.channel;
        let entry = &mut it.entries[index];
        let queue = self.queues.get_mut(&entry.queue_id).expect("queue");
        let levels = queue.cfg.level_max_penalty.len();
        let pos = match queue.waiting.iter().position(|(c, _)| *c == channel) {
            Some(p) => p,
            None => {
                queue
                    .waiting
                    .push((channel, (0..levels).map(|_| SortedVec::default()).collect()));
                queue.waiting.len() - 1
            }
        };
        queue.waiting[pos].1[entry.level].add(entry.key.clone());
        entry.listed = true;
        queue.waiting_count += 1;
    }

    fn unlist_entry(&mut self, iid: &Id, index: usize) {
        let it = self.interactions.get_mut(iid).expect("interaction");
        let channel = it.channel;
        let entry = &mut it.entries[index];
        let queue = self.queues.get_mut(&entry.queue_id).expect("queue");
        let lists = &mut queue
            .waiting
            .iter_mut()
            .find(|(c, _)| *c == channel)
            .expect("waiting list")
            .1;
        lists[entry.level].remove(&entry.key);
        entry.listed = false;
        queue.waiting_count -= 1;
    }

    fn unlist_all(&mut self, iid: &Id) {
        let it = self.interactions.get_mut(iid).expect("interaction");
        let channel = it.channel;
        for entry in it.entries.iter_mut() {
            if entry.listed {
                let queue = self.queues.get_mut(&entry.queue_id).expect("queue");
                let lists = &mut queue
                    .waiting
                    .iter_mut()
                    .find(|(c, _)| *c == channel)
                    .expect("waiting list")
                    .1;
                lists[entry.level].remove(&entry.key);
                entry.listed = false;
                queue.waiting_count -= 1;
            }
        }
    }

    fn list_all(&mut self, iid: &Id) {
        let n = self.interactions[iid].entries.len();
        for index in 0..n {
            if !self.interactions[iid].entries[index].listed {
                self.list_entry(iid, index);
            }
        }
    }

    /// Take the interaction out of every queue (lists, timers, exclusions).
    fn leave_queues(&mut self, iid: &Id) {
        self.unlist_all(iid);
        let it = self.interactions.get_mut(iid).expect("interaction");
        if it.state == InteractionState::Scheduled {
            for entry in &it.entries {
                if let Some(queue) = self.queues.get_mut(&entry.queue_id) {
                    queue.scheduled.retain(|i| i != iid);
                }
            }
        }
        it.entries.clear();
        let timers: Vec<u64> = it
            .timers
            .iter()
            .filter(|(n, _)| n != "callback")
            .map(|(_, t)| *t)
            .collect();
        it.timers.retain(|(n, _)| n == "callback");
        it.excluded.clear();
        for tid in timers {
            self.cancel(tid);
        }
    }

    fn drop_interaction(&mut self, iid: &Id) {
        self.leave_queues(iid);
        let it = self.interactions.remove(iid).expect("interaction");
        // Its Python id, for the wrap-up that follows a completion.
        self.dropped = Some((it.id.clone(), it.py_id));
        for offer in &it.offers {
            self.cancel(offer.timer_id);
        }
        for (_, tid) in &it.timers {
            self.cancel(*tid);
        }
        self.interaction_order.remove(&it.created_seq);
    }

    // -- queries used by events -------------------------------------------------------------

    fn places(queue: &Queue, key: &WaitKey, channel: Channel) -> (i64, i64) {
        let (mut ahead, mut same) = (0i64, 0i64);
        for (ch, lists) in &queue.waiting {
            for keys in lists {
                if !keys.is_empty() {
                    let n = keys.rank(key) as i64;
                    ahead += n;
                    if *ch == channel {
                        same += n;
                    }
                }
            }
        }
        (ahead + 1, same + 1)
    }

    fn ewt(queue: &Queue, channel: Channel, position: i64) -> Option<f64> {
        let ready = queue.ready.count(channel) as i64;
        if position <= ready {
            return Some(0.0);
        }
        let staffed = queue.staffed_capacity.get(channel);
        if staffed <= 0 {
            return None;
        }
        let aht = match queue.handle_times.iter().find(|(c, _)| *c == channel) {
            Some((_, w)) if !w.is_empty() => {
                let mut total = 0.0;
                for x in w {
                    total += x;
                }
                total / w.len() as f64
            }
            _ => queue.cfg.default_handle_seconds,
        };
        Some(((position - ready) as f64 * aht) / staffed as f64)
    }

    // -- queueing and routing ----------------------------------------------------------------

    fn enqueue(
        &mut self,
        py: Python<'_>,
        iid: &Id,
        qid: &Id,
        reason: &str,
        keep_place: bool,
        route_now: bool,
    ) -> PyResult<()> {
        let now = self.now;
        let priority_points = self.priority_points;
        if !keep_place {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.interactions.get_mut(iid).expect("interaction").seq = seq;
        }
        if let Some((rule, div)) = self.entry_rule(py, iid, qid, reason)? {
            return self.send_away(py, iid, qid, rule, &div);
        }
        let priority = self.effective_priority(py, iid, qid)?;
        let queue = &self.queues[qid];
        let (rate, weight) = (queue.cfg.ageing_rate, queue.cfg.weight);
        let timers_needed = !queue.cfg.relaxation.is_empty() || queue.cfg.max_wait_seconds.is_some();
        let it = self.interactions.get_mut(iid).expect("interaction");
        it.queue_id = qid.clone();
        it.state = InteractionState::Queued;
        it.offer_kind = "queue";
        it.max_wait_reached = false;
        let base = (weight + priority as f64 * priority_points) * USF;
        let key: WaitKey = (
            round_half_even(rate * it.queued_at as f64 - base),
            it.queued_at,
            it.seq,
            it.id.clone(),
        );
        it.entries = vec![QueueEntry {
            queue_id: qid.clone(),
            entered_at: now,
            level: 0,
            priority,
            key: key.clone(),
            listed: false,
        }];
        let channel = it.channel;
        let queued_at = it.queued_at;
        let route_now = route_now && self.work.is_empty() && self.to_empty.is_empty();
        if !route_now {
            self.list_entry(iid, 0);
        }
        if timers_needed {
            self.schedule_entry_timers(iid, qid, 0, true);
        }
        let queue = &self.queues[qid];
        let (position, same) = Self::places(queue, &key, channel);
        let ewt = Self::ewt(queue, channel, same);
        let score = (round_half_even(rate * now as f64) - key.0) as f64 / USF;
        let queued_text: PyObject = if queued_at == now {
            self.iso(py)?.into()
        } else {
            self.from_us_iso(py, queued_at)?
        };
        let p = Payload::new(py, 10)?;
        p.obj(py, intern!(py, "interaction_id"), self.interactions[iid].py_id.as_ref(py))?;
        p.obj(py, intern!(py, "queue_id"), self.queues[qid].py_id.as_ref(py))?;
        p.none(py, intern!(py, "agent_id"))?;
        p.obj(py, intern!(py, "channel"), channel_py(py, channel))?;
        p.text(py, intern!(py, "reason"), reason)?;
        p.int(py, intern!(py, "priority"), priority)?;
        p.int(py, intern!(py, "position"), position)?;
        p.opt_float(py, intern!(py, "ewt_seconds"), ewt)?;
        p.obj(py, intern!(py, "queued_at"), queued_text.as_ref(py))?;
        p.float(py, intern!(py, "score"), score)?;
        self.emit_payload(py, intern!(py, "interaction.queued"), p)?;
        if !route_now {
            self.work.push_back(Work::Interaction(iid.clone()));
            return Ok(());
        }
        self.route_interaction(py, iid)?;
        if self.interactions[iid].state == InteractionState::Queued {
            self.list_entry(iid, 0);
        }
        Ok(())
    }

    fn dispatch(&mut self, py: Python<'_>) -> PyResult<()> {
        while !self.to_empty.is_empty() {
            let qid = self.to_empty.remove(0);
            let empty = self.queues.get(&qid).map_or(false, |q| q.staffed_agents == 0);
            if empty {
                self.empty_queue(py, &qid)?;
            }
        }
        while let Some(work) = self.work.pop_front() {
            match work {
                Work::Agent(aid) => {
                    let go = self
                        .agents
                        .get(&aid)
                        .map_or(false, |a| !a.index_keys.is_empty());
                    if go {
                        self.route_agent(py, &aid)?;
                    }
                }
                Work::Interaction(iid) => {
                    let go = self
                        .interactions
                        .get(&iid)
                        .map_or(false, |it| it.state == InteractionState::Queued);
                    if go {
                        self.route_interaction(py, &iid)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn eligible(it: &Interaction, agent: &Agent, relax: i64) -> bool {
        if !it.excluded.is_empty() && it.excluded.iter().any(|(a, _)| *a == agent.id) {
            return false;
        }
        if it.expression.is_empty() {
            return true;
        }
        it.expression
            .matches(&agent.cfg.skills, &agent.cfg.attributes, relax)
    }

    /// Interaction side: the best available agent of its queues, by tier then strategy.
    fn route_interaction(&mut self, py: Python<'_>, iid: &Id) -> PyResult<()> {
        let mut chosen: Option<(Vec<Id>, Id, bool)> = None;
        {
            let it = &self.interactions[iid];
            let channel = it.channel;
            // Without a requirement or exclusions every indexed agent qualifies.
            let anyone = it.expression.is_empty() && it.excluded.is_empty();
            let mut draw = Drawer {
                py,
                mt: &mut self.mt,
                rng: &self.rng,
            };
            let agents = &self.agents;
            'queues: for entry in &it.entries {
                let queue = &self.queues[&entry.queue_id];
                let index = &queue.ready;
                let limit = queue.cfg.level_max_penalty[entry.level];
                let ring_all = queue.cfg.strategy == Strategy::RingAll;
                if anyone && !ring_all {
                    // The lowest tier with agents on the channel is the answer if allowed.
                    if let Some(penalty) = index.lowest(channel) {
                        if limit.map_or(true, |l| penalty <= l) {
                            let aid = index.first(penalty, &mut draw, queue.rr_last, channel);
                            chosen = Some((vec![aid], entry.queue_id.clone(), false));
                            break;
                        }
                    }
                    continue;
                }
                if !index.serves(channel) {
                    continue;
                }
                let relax = queue.cfg.level_relax[entry.level];
                for penalty in index.tiers(limit, channel) {
                    if ring_all {
                        let all: Vec<Id> = index
                            .candidates(penalty, &mut draw, queue.rr_last, channel)
                            .filter(|aid| anyone || Self::eligible(it, &agents[*aid], relax))
                            .cloned()
                            .collect();
                        if !all.is_empty() {
                            chosen = Some((all, entry.queue_id.clone(), true));
                            break 'queues;
                        }
                        continue;
                    }
                    let found = index
                        .candidates(penalty, &mut draw, queue.rr_last, channel)
                        .find(|aid| Self::eligible(it, &agents[*aid], relax))
                        .cloned();
                    if let Some(aid) = found {
                        chosen = Some((vec![aid], entry.queue_id.clone(), false));
                        break 'queues;
                    }
                }
            }
        }
        if let Some((agents, qid, ring_all)) = chosen {
            self.offer_to(py, iid, &agents, &qid, ring_all)?;
        }
        Ok(())
    }

    /// Agent side: the best-scoring waiting interaction across all the agent's queues.
    fn route_agent(&mut self, py: Python<'_>, aid: &Id) -> PyResult<()> {
        let now = self.now;
        let agent = &self.agents[aid];
        let mut channels: Option<ChannelSet> = None;
        let mut best: Option<((i64, i64, i64, i64), Id, Id)> = None;
        for (qid, member) in &agent.queues {
            let queue = &self.queues[qid];
            if queue.waiting_count == 0 {
                continue;
            }
            let chans = *channels.get_or_insert_with(|| {
                let mut set = ChannelSet::EMPTY;
                for (_, entry) in &agent.index_keys {
                    set.0 |= entry.2 .0;
                }
                set
            });
            let rate = queue.cfg.ageing_rate;
            for (ch, lists) in &queue.waiting {
                if !chans.contains(*ch) {
                    continue;
                }
                for (level, keys) in lists.iter().enumerate() {
                    if keys.is_empty() {
                        continue;
                    }
                    if let Some(limit) = queue.cfg.level_max_penalty[level] {
                        if member.penalty > limit {
                            continue;
                        }
                    }
                    let relax = queue.cfg.level_relax[level];
                    for key in keys.iter() {
                        let it = &self.interactions[&key.3];
                        if Self::eligible(it, agent, relax) {
                            let rank = (
                                key.0 - round_half_even(rate * now as f64),
                                key.1,
                                key.2,
                                queue.ordinal,
                            );
                            if best.as_ref().map_or(true, |b| rank < b.0) {
                                best = Some((rank, it.id.clone(), qid.clone()));
                            }
                            break;
                        }
                    }
                }
            }
        }
        if let Some((_, iid, qid)) = best {
            self.offer(py, &iid, aid, &qid)?;
        }
        Ok(())
    }

    fn offer(&mut self, py: Python<'_>, iid: &Id, aid: &Id, qid: &Id) -> PyResult<()> {
        self.offer_to(py, iid, std::slice::from_ref(aid), qid, false)
    }

    /// Offer the interaction to `agents` (several: ring-all) on behalf of queue `qid`.
    fn offer_to(
        &mut self,
        py: Python<'_>,
        iid: &Id,
        agents: &[Id],
        qid: &Id,
        ring_all: bool,
    ) -> PyResult<()> {
        let now = self.now;
        self.unlist_all(iid);
        let queue = &self.queues[qid];
        let timeout = queue.cfg.offer_timeout_us;
        let strategy = queue.cfg.strategy;
        let deadline = now + timeout;
        let expires = self.expiry_text.py_text(py, deadline)?;
        let it = self.interactions.get_mut(iid).expect("interaction");
        it.state = InteractionState::Offered;
        it.offer_attempts += 1;
        for aid in agents {
            let tid = self.schedule(deadline, TimerKind::Offer, iid.clone(), aid.clone());
            let it = self.interactions.get_mut(iid).expect("interaction");
            let ch = it.channel;
            let (level, entry_priority) = match it.entry(qid) {
                Some(e) => (Some(e.level), e.priority),
                None => (None, it.priority),
            };
            it.offers.push(Offer {
                agent_id: aid.clone(),
                queue_id: qid.clone(),
                offered_at: now,
                deadline,
                timer_id: tid,
                ring_all,
            });
            let agent = self.agents.get_mut(aid).expect("agent");
            agent.offer = Some(iid.clone());
            agent.load.add(ch, 1);
            let agent_py = agent.py_id.clone_ref(py);
            let member = agent.queues.iter().find(|(q, _)| q == qid).map(|(_, m)| *m);
            let queue = self.queues.get_mut(qid).expect("queue");
            if let Some(m) = member {
                if it.offer_kind == "queue" {
                    queue.rr_last = m.order;
                }
            }
            let p = Payload::new(py, 14)?;
            p.obj(py, intern!(py, "interaction_id"), it.py_id.as_ref(py))?;
            p.obj(py, intern!(py, "queue_id"), queue.py_id.as_ref(py))?;
            p.obj(py, intern!(py, "agent_id"), agent_py.as_ref(py))?;
            p.obj(py, intern!(py, "channel"), channel_py(py, ch))?;
            p.text(py, intern!(py, "kind"), it.offer_kind)?;
            p.int(py, intern!(py, "attempt"), it.offer_attempts)?;
            p.boolean(py, intern!(py, "ring_all"), ring_all)?;
            p.obj(py, intern!(py, "strategy"), strategy_py(py, strategy))?;
            p.opt_int(py, intern!(py, "penalty"), member.map(|m| m.penalty))?;
            p.opt_int(py, intern!(py, "level"), level.map(|l| l as i64))?;
            p.int(py, intern!(py, "priority"), entry_priority)?;
            p.float(
                py,
                intern!(py, "wait_seconds"),
                (now - it.queued_at) as f64 / USF,
            )?;
            p.float(py, intern!(py, "timeout_seconds"), timeout as f64 / USF)?;
            p.obj(py, intern!(py, "expires_at"), expires.as_ref(py))?;
            self.emit_payload(py, intern!(py, "interaction.offered"), p)?;
            self.refresh(py, aid, "offered")?;
        }
        Ok(())
    }

    fn withdraw(&mut self, py: Python<'_>, iid: &Id, aid: &Id, reason: &str) -> PyResult<()> {
        let offer = self.end_offer(iid, aid);
        let p = self.interaction_payload(py, iid, Some(aid), &offer.queue_id)?;
        p.set_item(intern!(py, "reason"), reason)?;
        p.set_item(
            intern!(py, "ring_seconds"),
            (self.now - offer.offered_at) as f64 / USF,
        )?;
        self.emit(py, intern!(py, "interaction.offer_withdrawn"), p)?;
        self.refresh(py, aid, "offer_withdrawn")
    }

    fn end_offer(&mut self, iid: &Id, aid: &Id) -> Offer {
        let it = self.interactions.get_mut(iid).expect("interaction");
        let pos = it
            .offers
            .iter()
            .position(|o| &o.agent_id == aid)
            .expect("offer");
        let offer = it.offers.remove(pos);
        let ch = it.channel;
        self.timers.remove(&offer.timer_id);
        let agent = self.agents.get_mut(aid).expect("agent");
        agent.offer = None;
        agent.load.add(ch, -1);
        offer
    }

    fn interaction_payload<'p>(
        &self,
        py: Python<'p>,
        iid: &Id,
        agent_id: Option<&Id>,
        queue_id: &Id,
    ) -> PyResult<&'p PyDict> {
        let it = &self.interactions[iid];
        let p = PyDict::new(py);
        p.set_item(intern!(py, "interaction_id"), &*it.id)?;
        p.set_item(intern!(py, "queue_id"), &**queue_id)?;
        p.set_item(intern!(py, "agent_id"), agent_id.map(|a| &**a))?;
        p.set_item(intern!(py, "channel"), channel_py(py, it.channel))?;
        Ok(p)
    }

    fn set_it_timer(&mut self, iid: &Id, name: String, due: i64, kind: TimerKind, a: Id, b: Id) {
        let old = {
            let it = self.interactions.get_mut(iid).expect("interaction");
            let pos = it.timers.iter().position(|(n, _)| *n == name);
            pos.map(|p| it.timers.remove(p).1)
        };
        if let Some(tid) = old {
            self.cancel(tid);
        }
        let tid = self.schedule(due, kind, a, b);
        self.interactions
            .get_mut(iid)
            .expect("interaction")
            .timers
            .push((name, tid));
    }

    fn exclude(&mut self, iid: &Id, aid: &Id, qid: &Id) {
        let delay = match self.queues.get(qid) {
            Some(q) => seconds_to_us(q.cfg.reoffer_delay_seconds),
            None => 0,
        };
        if delay <= 0 {
            return;
        }
        let until = self.now + delay;
        let it = self.interactions.get_mut(iid).expect("interaction");
        match it.excluded.iter_mut().find(|(a, _)| a == aid) {
            Some(e) => e.1 = until,
            None => it.excluded.push((aid.clone(), until)),
        }
        self.set_it_timer(
            iid,
            format!("unexclude:{aid}"),
            until,
            TimerKind::Unexclude,
            iid.clone(),
            aid.clone(),
        );
    }

    fn count_miss(&mut self, aid: &Id, reason: &str) -> String {
        let max = self.max_consecutive_misses;
        let agent = self.agents.get_mut(aid).expect("agent");
        agent.consecutive_misses += 1;
        if agent.consecutive_misses >= max {
            agent.consecutive_misses = 0;
            if agent.aux_reason.is_none() {
                if agent.staffed() {
                    self.staff(aid, -1);
                }
                let agent = self.agents.get_mut(aid).expect("agent");
                agent.aux_reason = Some(self.missed_offers_reason.clone());
            }
            return self.missed_offers_reason.clone();
        }
        reason.to_string()
    }

    /// No offer left and none accepted: back to waiting, in the same place in line.
    fn return_to_queue(&mut self, py: Python<'_>, iid: &Id) -> PyResult<()> {
        let it = &self.interactions[iid];
        let qid = it.queue_id.clone();
        if it.offer_kind == "transfer" {
            return self.enqueue(py, iid, &qid, "transfer_returned", false, false);
        }
        if it.max_wait_reached {
            self.leave_queues(iid);
            let div = self.queues[&qid].cfg.on_max_wait.clone();
            return self.send_away(py, iid, &qid, "max_wait", &div);
        }
        let it = self.interactions.get_mut(iid).expect("interaction");
        it.state = InteractionState::Queued;
        self.list_all(iid);
        self.work.push_back(Work::Interaction(iid.clone()));
        Ok(())
    }

    fn on_offer_timeout(&mut self, py: Python<'_>, iid: &Id, aid: &Id) -> PyResult<()> {
        let offer = self.end_offer(iid, aid);
        let misses = self.agents[aid].consecutive_misses + 1;
        let p = self.interaction_payload(py, iid, Some(aid), &offer.queue_id)?;
        p.set_item(
            intern!(py, "ring_seconds"),
            (self.now - offer.offered_at) as f64 / USF,
        )?;
        p.set_item(intern!(py, "consecutive_misses"), misses)?;
        self.emit(py, intern!(py, "interaction.offer_timed_out"), p)?;
        self.exclude(iid, aid, &offer.queue_id);
        let reason = self.count_miss(aid, "offer_timed_out");
        self.refresh(py, aid, &reason)?;
        if self.interactions[iid].offers.is_empty() {
            self.return_to_queue(py, iid)?;
        }
        Ok(())
    }

    fn on_unexclude(&mut self, iid: &Id, aid: &Id) {
        let name = format!("unexclude:{aid}");
        let it = self.interactions.get_mut(iid).expect("interaction");
        it.timers.retain(|(n, _)| *n != name);
        it.excluded.retain(|(a, _)| a != aid);
        if it.state == InteractionState::Queued {
            self.work.push_back(Work::Interaction(iid.clone()));
        }
    }

    fn start_wrapup(
        &mut self,
        py: Python<'_>,
        aid: &Id,
        iid: &Id,
        channel: Channel,
        qid: &Id,
        talk: i64,
        hold: i64,
        cause: &str,
        outbound: bool,
    ) -> PyResult<()> {
        // Still wrapping up an earlier leg of the same interaction (offered back to this
        // agent): that wrap-up ends first, its load unit and timer with it.
        if self.agents[aid].wrapups.iter().any(|w| &w.interaction_id == iid) {
            self.close_wrapup(py, aid, iid, "replaced", cause)?;
        }
        let now = self.now;
        let (seconds, wrapup_us) = match self.queues.get(qid) {
            Some(q) => (q.cfg.wrapup_seconds, q.cfg.wrapup_us),
            None => (Some(0.0), Some(0)),
        };
        let agent = self.agents.get_mut(aid).expect("agent");
        agent.interactions.retain(|(i, _)| i != iid);
        agent.rings.retain(|i| i != iid);
        agent.talk_us += talk;
        let py_interaction_id = match self.interactions.get(iid) {
            Some(it) => it.py_id.clone_ref(py),
            None => match &self.dropped {
                Some((id, py_id)) if id == iid => py_id.clone_ref(py),
                _ => PyString::new(py, iid).into(),
            },
        };
        let py_queue_id = match self.queues.get(qid) {
            Some(q) => q.py_id.clone_ref(py),
            None => PyString::new(py, qid).into(),
        };
        let agent = self.agents.get_mut(aid).expect("agent");
        let mut wrap = Wrapup {
            interaction_id: iid.clone(),
            py_interaction_id,
            py_queue_id,
            channel,
            queue_id: qid.clone(),
            started_at: now,
            deadline: None,
            timer_id: None,
            talk_us: talk,
            hold_us: hold,
            outbound,
        };
        match seconds {
            None => {
                put_wrapup(agent, wrap);
                self.refresh(py, aid, cause)
            }
            Some(s) if s > 0.0 => {
                let deadline = now + wrapup_us.expect("wrap-up us");
                wrap.deadline = Some(deadline);
                wrap.timer_id =
                    Some(self.schedule(deadline, TimerKind::Wrapup, aid.clone(), iid.clone()));
                put_wrapup(self.agents.get_mut(aid).expect("agent"), wrap);
                self.refresh(py, aid, cause)
            }
            Some(_) => {
                put_wrapup(agent, wrap);
                self.close_wrapup(py, aid, iid, "none", cause)
            }
        }
    }

    fn close_wrapup(
        &mut self,
        py: Python<'_>,
        aid: &Id,
        iid: &Id,
        reason: &str,
        cause: &str,
    ) -> PyResult<()> {
        let now = self.now;
        let agent = self.agents.get_mut(aid).expect("agent");
        let pos = agent
            .wrapups
            .iter()
            .position(|w| &w.interaction_id == iid)
            .expect("wrap-up");
        let wrap = agent.wrapups.remove(pos);
        agent.load.add(wrap.channel, -1);
        if let Some(tid) = wrap.timer_id {
            self.timers.remove(&tid);
        }
        let wrapup = now - wrap.started_at;
        let handle = wrap.talk_us + wrap.hold_us + wrapup;
        let p = Payload::new(py, 9)?;
        p.obj(py, intern!(py, "interaction_id"), wrap.py_interaction_id.as_ref(py))?;
        p.obj(py, intern!(py, "queue_id"), wrap.py_queue_id.as_ref(py))?;
        p.obj(py, intern!(py, "agent_id"), self.agents[aid].py_id.as_ref(py))?;
        p.obj(py, intern!(py, "channel"), channel_py(py, wrap.channel))?;
        p.text(py, intern!(py, "reason"), reason)?;
        p.float(py, intern!(py, "wrapup_seconds"), wrapup as f64 / USF)?;
        p.float(py, intern!(py, "talk_seconds"), wrap.talk_us as f64 / USF)?;
        p.float(py, intern!(py, "hold_seconds"), wrap.hold_us as f64 / USF)?;
        p.float(py, intern!(py, "handle_seconds"), handle as f64 / USF)?;
        self.emit_payload(py, intern!(py, "interaction.wrapup_ended"), p)?;
        let window_size = self.handle_time_window;
        if let Some(queue) = self.queues.get_mut(&wrap.queue_id) {
            if !wrap.outbound {
                let pos = match queue.handle_times.iter().position(|(c, _)| *c == wrap.channel) {
                    Some(p) => p,
                    None => {
                        queue.handle_times.push((wrap.channel, Vec::new()));
                        queue.handle_times.len() - 1
                    }
                };
                let window = &mut queue.handle_times[pos].1;
                window.push(handle as f64 / USF);
                if window.len() > window_size {
                    window.remove(0);
                }
            }
        }
        self.refresh(py, aid, cause)
    }

    // -- configuration -----------------------------------------------------------------------

    fn queue_cfg(&self, cfg: &PyAny) -> PyResult<QueueCfg> {
        let id: String = getattr(cfg, "id")?;
        let strategy_name: String = cfg.getattr("strategy")?.getattr("value")?.extract()?;
        let strategy = Strategy::parse(&strategy_name).expect("normalized strategy");
        let mut channels = ChannelSet::EMPTY;
        for ch in cfg.getattr("channels")?.iter()? {
            let name: String = ch?.getattr("value")?.extract()?;
            channels.insert(Channel::parse(&name).expect("normalized channel"));
        }
        let offer_timeout: f64 = getattr(cfg, "offer_timeout_seconds")?;
        let wrapup_seconds: Option<f64> = getattr(cfg, "wrapup_seconds")?;
        let levels: usize = getattr(cfg, "levels")?;
        let mut level_max_penalty = Vec::with_capacity(levels);
        let mut level_relax = Vec::with_capacity(levels);
        for level in 0..levels {
            level_max_penalty.push(cfg.call_method1("level_max_penalty", (level,))?.extract()?);
            level_relax.push(cfg.call_method1("level_relax", (level,))?.extract()?);
        }
        let diversion = |name: &str| -> PyResult<Diversion> {
            let d = cfg.getattr(name)?;
            let queue_id: Option<String> = getattr(d, "queue_id")?;
            Ok(Diversion {
                queue_id: queue_id.map(|q| Id::from(q.as_str())),
                divert_to: getattr(d, "divert_to")?,
            })
        };
        let mut relaxation = Vec::new();
        for step in cfg.getattr("relaxation")?.iter()? {
            let step = step?;
            let add: Option<String> = getattr(step, "add_queue_id")?;
            relaxation.push(RelaxationStep {
                after_seconds: getattr(step, "after_seconds")?,
                max_penalty: getattr(step, "max_penalty")?,
                lower_levels: getattr(step, "lower_levels")?,
                add_queue_id: add.map(|q| Id::from(q.as_str())),
            });
        }
        let mut priority_rules = Vec::new();
        for rule in cfg.getattr("priority_rules")?.iter()? {
            let rule = rule?;
            priority_rules.push(PriorityRule {
                attribute: getattr(rule, "attribute")?,
                value: rule.getattr("value")?.into(),
                boost: getattr(rule, "boost")?,
            });
        }
        let cb = cfg.getattr("callback")?;
        let mut members = Vec::new();
        for m in cfg.getattr("members")?.iter()? {
            let m = m?;
            let aid: String = getattr(m, "agent_id")?;
            members.push((Id::from(aid.as_str()), getattr(m, "penalty")?, getattr(m, "weight")?));
        }
        Ok(QueueCfg {
            py: cfg.into(),
            id: Id::from(id.as_str()),
            strategy,
            channels,
            best_skill: getattr(cfg, "best_skill")?,
            service_level_seconds: getattr(cfg, "service_level_seconds")?,
            offer_timeout_us: seconds_to_us(offer_timeout),
            wrapup_seconds,
            wrapup_us: wrapup_seconds.map(seconds_to_us),
            reoffer_delay_seconds: getattr(cfg, "reoffer_delay_seconds")?,
            weight: getattr(cfg, "weight")?,
            ageing_rate: getattr(cfg, "ageing_rate")?,
            default_handle_seconds: getattr(cfg, "default_handle_seconds")?,
            level_max_penalty,
            level_relax,
            name: getattr(cfg, "name")?,
            max_wait_seconds: getattr(cfg, "max_wait_seconds")?,
            on_max_wait: diversion("on_max_wait")?,
            max_length: getattr(cfg, "max_length")?,
            on_full: diversion("on_full")?,
            ewt_threshold_seconds: getattr(cfg, "ewt_threshold_seconds")?,
            on_ewt: diversion("on_ewt")?,
            max_waiting_per_agent: getattr(cfg, "max_waiting_per_agent")?,
            on_ratio: diversion("on_ratio")?,
            join_when_empty: getattr(cfg, "join_when_empty")?,
            leave_when_empty: getattr(cfg, "leave_when_empty")?,
            on_empty: diversion("on_empty")?,
            hours: getattr(cfg, "hours")?,
            on_closed: diversion("on_closed")?,
            relaxation,
            priority_rules,
            callback: CallbackPolicy {
                enabled: getattr(cb, "enabled")?,
                max_attempts: getattr(cb, "max_attempts")?,
                retry_delay_seconds: getattr(cb, "retry_delay_seconds")?,
                max_delay_seconds: getattr(cb, "max_delay_seconds")?,
            },
            member_expression: getattr(cfg, "member_expression")?,
            member_expression_penalty: getattr(cfg, "member_expression_penalty")?,
            member_expression_weight: getattr(cfg, "member_expression_weight")?,
            members,
        })
    }

    fn agent_cfg(&self, cfg: &PyAny) -> PyResult<AgentCfg> {
        let id: String = getattr(cfg, "id")?;
        let skills_obj = cfg.getattr("skills")?;
        let attributes_obj = cfg.getattr("attributes")?;
        let mut skill_levels = HashMap::new();
        for item in skills_obj.call_method0("items")?.iter()? {
            let (name, level): (String, i64) = item?.extract()?;
            skill_levels.insert(name, level);
        }
        let mut capacity = ChannelVec::default();
        let cap = cfg.getattr("capacity")?;
        for ch in ALL_CHANNELS {
            // Normalized capacity maps Channel members (str enums) in channel order.
            if let Some(n) = cap.call_method1("get", (ch.name(),))?.extract::<Option<i64>>()? {
                capacity.push((ch, n));
            }
        }
        Ok(AgentCfg {
            py: cfg.into(),
            id: Id::from(id.as_str()),
            skills: crate::expr::Skills::from_py(skills_obj)?,
            skill_levels,
            attributes: crate::expr::Attributes::from_py(attributes_obj)?,
            capacity,
            voice_blocks_other_channels: getattr(cfg, "voice_blocks_other_channels")?,
        })
    }

    fn membership_payload<'p>(&self, py: Python<'p>, aid: &Id) -> PyResult<&'p PyList> {
        let agent = &self.agents[aid];
        let mut rows: Vec<(&Id, &Membership)> = agent.queues.iter().map(|(q, m)| (q, m)).collect();
        rows.sort_by_key(|(q, _)| self.queues[*q].ordinal);
        let list = PyList::empty(py);
        for (qid, m) in rows {
            let row = PyDict::new(py);
            row.set_item("queue_id", &**qid)?;
            row.set_item("penalty", m.penalty)?;
            row.set_item("weight", m.weight)?;
            list.append(row)?;
        }
        Ok(list)
    }

    fn set_membership(&mut self, aid: &Id, qid: &Id, member: Option<Membership>) {
        let old = self.agents[aid]
            .queues
            .iter()
            .find(|(q, _)| q == qid)
            .map(|(_, m)| *m);
        if old == member {
            return;
        }
        if old.is_some() {
            self.drop_index_entries(aid, qid);
            if self.agents[aid].staffed() {
                self.staff_queue(aid, qid, -1);
            }
            self.agents.get_mut(aid).expect("agent").queues.retain(|(q, _)| q != qid);
            self.queues.get_mut(qid).expect("queue").members.retain(|(a, _)| a != aid);
        }
        if let Some(m) = member {
            let staffed = self.agents[aid].staffed();
            self.agents.get_mut(aid).expect("agent").queues.push((qid.clone(), m));
            self.queues
                .get_mut(qid)
                .expect("queue")
                .members
                .push((aid.clone(), m));
            if staffed {
                let capacity = self.agents[aid].cfg.capacity.clone();
                let queue = self.queues.get_mut(qid).expect("queue");
                queue.staffed_agents += 1;
                for &(ch, n) in &capacity {
                    queue.staffed_capacity.add(ch, n);
                }
            }
        }
        self.reindex(aid);
    }

    fn emit_agent_queues(&mut self, py: Python<'_>, aid: &Id) -> PyResult<()> {
        let p = PyDict::new(py);
        p.set_item("agent_id", &**aid)?;
        p.set_item("queues", self.membership_payload(py, aid)?)?;
        self.emit(py, intern!(py, "agent.queues_changed"), p)
    }
}

/// `agent.wrapups[id] = wrap` as a Python dict does it: a wrap-up of the same interaction
/// (an id used again) is replaced in its place, and its timer is left to run.
fn put_wrapup(agent: &mut Agent, wrap: Wrapup) {
    match agent
        .wrapups
        .iter_mut()
        .find(|w| w.interaction_id == wrap.interaction_id)
    {
        Some(old) => *old = wrap,
        None => agent.wrapups.push(wrap),
    }
}

pub fn seconds_to_us(seconds: f64) -> i64 {
    round_half_even(seconds * USF)
}

#[pymethods]
impl CompiledEngine {
    #[new]
    #[args(config = "None")]
    fn new(py: Python<'_>, clock: PyObject, config: Option<&PyAny>) -> PyResult<Self> {
        let model = py.import("sparklecomm.acd.model")?;
        let config: &PyAny = match config {
            Some(c) => c,
            None => model.getattr("EngineConfig")?.call0()?,
        };
        let config = config.call_method0("normalized")?;
        let allowed = config.getattr("break_reasons")?;
        let break_reasons = if allowed.is_none() {
            None
        } else {
            let mut set = std::collections::HashSet::new();
            for code in allowed.iter()? {
                set.insert(code?.extract::<String>()?);
            }
            Some(set)
        };
        let epoch = model.getattr("EPOCH")?;
        Ok(CompiledEngine {
            refs: PyRefs::load(py)?,
            clock,
            mt: MersenneTwister::from_random(config.getattr("rng")?)?,
            now_text: IsoText::default(),
            expiry_text: IsoText::default(),
            rng: config.getattr("rng")?.into(),
            engine_config: config.into(),
            priority_points: getattr(config, "priority_points")?,
            max_consecutive_misses: getattr(config, "max_consecutive_misses")?,
            missed_offers_reason: getattr(config, "missed_offers_reason")?,
            reject_counts_as_miss: getattr(config, "reject_counts_as_miss")?,
            handle_time_window: getattr(config, "handle_time_window")?,
            max_overflow_hops: getattr(config, "max_overflow_hops")?,
            break_reasons,
            expression_cache_size: getattr(config, "expression_cache_size")?,
            expressions: FxMap::default(),
            agents: FxMap::default(),
            agent_order: Vec::new(),
            queues: FxMap::default(),
            queue_order: Vec::new(),
            interactions: FxMap::default(),
            interaction_order: BTreeMap::new(),
            next_created: 0,
            timers: FxMap::default(),
            heap: BinaryHeap::new(),
            next_timer: 1,
            next_seq: 1,
            next_agent_ordinal: 0,
            next_queue_ordinal: 0,
            events: EventList::default(),
            now: 0,
            now_dt: epoch.into(),
            now_iso: None,
            work: VecDeque::new(),
            index_scratch: Vec::new(),
            dropped: None,
            to_empty: Vec::new(),
            hours: Vec::new(),
        })
    }

    fn login(&mut self, py: Python<'_>, agent_id: &PyAny) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        if self.agents[&aid].logged_in_at.is_some() {
            return Err(self.conflict(
                py,
                format!("Agent {} is logged in already.", repr(py, &aid)),
                "agent_id",
            ));
        }
        {
            let agent = self.agents.get_mut(&aid).expect("agent");
            agent.logged_in_at = Some(now);
            agent.aux_reason = None;
            agent.handled = 0;
            agent.talk_us = 0;
            agent.consecutive_misses = 0;
        }
        self.staff(&aid, 1);
        let p = PyDict::new(py);
        p.set_item("agent_id", &*aid)?;
        p.set_item("queues", self.membership_payload(py, &aid)?)?;
        self.emit(py, intern!(py, "agent.logged_in"), p)?;
        self.refresh(py, &aid, "login")?;
        self.finish(py)
    }

    #[args(
        "*",
        priority = "None",
        required_skills = "None",
        customer_id = "None",
        attributes = "None"
    )]
    #[allow(clippy::too_many_arguments)]
    fn create_interaction(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        queue_id: &PyAny,
        channel: &PyAny,
        priority: Option<&PyAny>,
        required_skills: Option<&PyAny>,
        customer_id: Option<&PyAny>,
        attributes: Option<&PyAny>,
    ) -> PyResult<PyObject> {
        self.begin(py)?;
        let (iid, py_id) = self.check_new_id(py, interaction_id)?;
        let qid = self.queue_id_of(py, queue_id, "queue_id")?;
        // engine.py: the channel by its name, else parse_channel(channel) (which raises).
        let named = match channel.downcast::<PyString>() {
            Ok(s) => Channel::parse(s.to_str()?),
            Err(_) => None,
        };
        let ch = match named {
            Some(c) => c,
            None => self.parse_channel(py, channel)?,
        };
        if !self.queues[&qid].cfg.channels.contains(ch) {
            return Err(self.invalid(
                py,
                format!("Queue {} does not take {} interactions.", repr(py, &qid), ch.name()),
                "channel",
            ));
        }
        let priority: i64 = match priority {
            None => 0,
            Some(p) => {
                let is_int = p.is_instance_of::<pyo3::types::PyLong>()?
                    && !p.is_instance_of::<pyo3::types::PyBool>()?;
                if !is_int {
                    return Err(self.invalid(py, "priority must be an integer.".into(), "priority"));
                }
                let value: Option<i64> = p.extract().ok();
                match value {
                    Some(v) if (0..=MAX_PRIORITY).contains(&v) => v,
                    _ => {
                        return Err(self.invalid(
                            py,
                            format!("priority must be an integer from 0 to {MAX_PRIORITY}."),
                            "priority",
                        ))
                    }
                }
            }
        };
        let skills_text: Py<PyString> = match required_skills {
            None => PyString::new(py, "").into(),
            Some(s) => match s.downcast::<PyString>() {
                Ok(s) => s.into(),
                Err(_) => {
                    return Err(self.invalid(
                        py,
                        "required_skills must be a string.".into(),
                        "required_skills",
                    ))
                }
            },
        };
        let expression = self.compile(py, skills_text.as_ref(py).to_str()?, "required_skills")?;
        let customer = self.check_customer(py, customer_id)?;
        let attrs = self.check_attributes(py, attributes)?;
        let it = self.new_interaction(
            py,
            &iid,
            &py_id,
            ch,
            &qid,
            (priority, skills_text.clone_ref(py), expression),
            (customer.clone_ref(py), attrs.clone_ref(py)),
        );
        self.add_interaction(it);
        let p = Payload::new(py, 9)?;
        p.obj(py, intern!(py, "interaction_id"), py_id.as_ref(py))?;
        p.obj(py, intern!(py, "queue_id"), self.queues[&qid].py_id.as_ref(py))?;
        p.none(py, intern!(py, "agent_id"))?;
        p.obj(py, intern!(py, "channel"), channel_py(py, ch))?;
        p.int(py, intern!(py, "priority"), priority)?;
        p.obj(py, intern!(py, "required_skills"), skills_text.as_ref(py))?;
        p.obj(py, intern!(py, "customer_id"), customer.as_ref(py))?;
        p.obj(py, intern!(py, "attributes"), attrs.as_ref(py))?;
        p.obj(py, intern!(py, "created_at"), self.iso(py)?.as_ref(py))?;
        self.emit_payload(py, intern!(py, "interaction.created"), p)?;
        self.enqueue(py, &iid, &qid, "new", false, true)?;
        self.finish(py)
    }

    fn accept(&mut self, py: Python<'_>, interaction_id: &PyAny, agent_id: &PyAny) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let iid = self.interaction_id_of(py, interaction_id)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        {
            let it = &self.interactions[&iid];
            if it.state != InteractionState::Offered {
                return Err(self.conflict(
                    py,
                    format!("Interaction {} is {}, not being offered.", repr(py, &iid), it.state.name()),
                    "interaction_id",
                ));
            }
            if !it.offers.iter().any(|o| o.agent_id == aid) {
                return Err(self.permission(
                    py,
                    format!(
                        "Interaction {} is not offered to agent {}.",
                        repr(py, &iid),
                        repr(py, &aid)
                    ),
                    "agent_id",
                ));
            }
        }
        let offer = self.end_offer(&iid, &aid);
        let others: Vec<Id> = self.interactions[&iid]
            .offers
            .iter()
            .map(|o| o.agent_id.clone())
            .collect();
        for other in &others {
            self.withdraw(py, &iid, other, "accepted_elsewhere")?;
        }
        let it = &self.interactions[&iid];
        let entered = it.entry(&offer.queue_id).map_or(it.queued_at, |e| e.entered_at);
        let queue_wait = now - entered;
        if !it.entries.is_empty() || !it.timers.is_empty() || !it.excluded.is_empty() {
            self.leave_queues(&iid);
        }
        let it = self.interactions.get_mut(&iid).expect("interaction");
        it.connect_owner(&aid, now);
        let kind = it.offer_kind;
        it.offer_kind = "queue";
        let ch = it.channel;
        let queued_at = it.queued_at;
        let attempts = it.offer_attempts;
        let agent = self.agents.get_mut(&aid).expect("agent");
        agent.interactions.push((iid.clone(), ch));
        agent.load.add(ch, 1);
        agent.consecutive_misses = 0;
        agent.handled += 1;
        let sl = self
            .queues
            .get(&offer.queue_id)
            .map_or(0.0, |q| q.cfg.service_level_seconds);
        let offer_queue_py: PyObject = match self.queues.get(&offer.queue_id) {
            Some(q) => q.py_id.clone_ref(py).into(),
            None => PyString::new(py, &offer.queue_id).into(),
        };
        let queue_wait_seconds = queue_wait as f64 / USF;
        let p = Payload::new(py, 11)?;
        p.obj(py, intern!(py, "interaction_id"), self.interactions[&iid].py_id.as_ref(py))?;
        p.obj(py, intern!(py, "queue_id"), offer_queue_py.as_ref(py))?;
        p.obj(py, intern!(py, "agent_id"), self.agents[&aid].py_id.as_ref(py))?;
        p.obj(py, intern!(py, "channel"), channel_py(py, ch))?;
        p.text(py, intern!(py, "kind"), kind)?;
        p.float(py, intern!(py, "wait_seconds"), (now - queued_at) as f64 / USF)?;
        p.float(py, intern!(py, "queue_wait_seconds"), queue_wait_seconds)?;
        p.float(
            py,
            intern!(py, "ring_seconds"),
            (now - offer.offered_at) as f64 / USF,
        )?;
        p.float(py, intern!(py, "service_level_seconds"), sl)?;
        p.boolean(py, intern!(py, "within_service_level"), queue_wait_seconds <= sl)?;
        p.int(py, intern!(py, "attempt"), attempts)?;
        self.emit_payload(py, intern!(py, "interaction.accepted"), p)?;
        self.refresh(py, &aid, "accepted")?;
        self.finish(py)
    }

    #[args(disposition = "None")]
    fn complete(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
        disposition: Option<&PyAny>,
    ) -> PyResult<PyObject> {
        self.begin(py)?;
        // An owner whose phone still rings (handed the interaction before answering) may
        // complete it too: with no talk time.
        let (iid, aid) = self.owned_active(py, interaction_id, agent_id, false)?;
        let disposition: PyObject = match disposition {
            Some(d) if !d.is_none() => {
                self.check_reason(py, d, "disposition")?;
                d.into()
            }
            _ => py.None(),
        };
        if self.interactions[&iid].participants.len() > 1 {
            let others: Vec<Id> = self.interactions[&iid]
                .participants
                .iter()
                .filter(|(a, _)| *a != aid)
                .map(|(a, _)| a.clone())
                .collect();
            for other in &others {
                self.remove_participant(py, &iid, other, intern!(py, "completed").as_ref())?;
            }
        }
        let (talk, hold) = self.close_leg(&iid);
        let it = &self.interactions[&iid];
        let qid = it.queue_id.clone();
        let ch = it.channel;
        let outbound = it.direction == "outbound";
        let original_channel = it.original_channel.map(|c| c.name());
        let planned: Option<f64> = match self.queues.get(&qid) {
            Some(q) => q.cfg.wrapup_seconds,
            None => Some(0.0),
        };
        let it = &self.interactions[&iid];
        let queue_py: PyObject = match self.queues.get(&qid) {
            Some(q) => q.py_id.clone_ref(py).into(),
            None => PyString::new(py, &qid).into(),
        };
        let p = Payload::new(py, 9)?;
        p.obj(py, intern!(py, "interaction_id"), it.py_id.as_ref(py))?;
        p.obj(py, intern!(py, "queue_id"), queue_py.as_ref(py))?;
        p.obj(py, intern!(py, "agent_id"), self.agents[&aid].py_id.as_ref(py))?;
        p.obj(py, intern!(py, "channel"), channel_py(py, ch))?;
        p.obj(py, intern!(py, "disposition"), disposition.as_ref(py))?;
        p.float(py, intern!(py, "talk_seconds"), talk as f64 / USF)?;
        p.float(py, intern!(py, "hold_seconds"), hold as f64 / USF)?;
        p.opt_float(py, intern!(py, "wrapup_planned_seconds"), planned)?;
        p.opt_text(py, intern!(py, "original_channel"), original_channel)?;
        self.emit_payload(py, intern!(py, "interaction.completed"), p)?;
        self.drop_interaction(&iid);
        self.start_wrapup(py, &aid, &iid, ch, &qid, talk, hold, "completed", outbound)?;
        self.finish(py)
    }

    fn tick(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        while let Some(Reverse((due, tid))) = self.heap.peek().copied() {
            if due > now {
                break;
            }
            self.heap.pop();
            let timer = match self.timers.remove(&tid) {
                Some(t) => t,
                None => continue,
            };
            match timer.kind {
                TimerKind::Offer => self.on_offer_timeout(py, &timer.a, &timer.b)?,
                TimerKind::Wrapup => {
                    if !self.agents[&timer.a].wrapups.iter().any(|w| w.interaction_id == timer.b) {
                        // A wrap-up replaced by a later one of the same interaction (its agent
                        // took it back) and already ended: engine.py fails with this KeyError.
                        return Err(pyo3::exceptions::PyKeyError::new_err(timer.b.to_string()));
                    }
                    self.close_wrapup(py, &timer.a, &timer.b, "timer", "wrapup_ended")?
                }
                TimerKind::Unexclude => self.on_unexclude(&timer.a, &timer.b),
                TimerKind::Relax => self.on_relax(py, &timer.a, &timer.b)?,
                TimerKind::MaxWait => self.on_max_wait(py, &timer.a, &timer.b)?,
                TimerKind::Callback => self.on_callback_due(py, &timer.a)?,
            }
            if !self.work.is_empty() || !self.to_empty.is_empty() {
                self.dispatch(py)?;
            }
        }
        self.finish(py)
    }

    fn next_deadline(&mut self, py: Python<'_>) -> PyResult<PyObject> {
        while let Some(Reverse((_, tid))) = self.heap.peek().copied() {
            if self.timers.contains_key(&tid) {
                break;
            }
            self.heap.pop();
        }
        match self.heap.peek() {
            Some(Reverse((due, _))) => crate::glue::datetime_from_us(py, *due),
            None => Ok(py.None()),
        }
    }

    /// The engine's (normalized) `EngineConfig`.
    #[getter]
    fn config(&self, py: Python<'_>) -> PyResult<PyObject> {
        self.sync_rng(py)?;
        Ok(self.engine_config.clone_ref(py))
    }

    /// The engine's random generator (the `EngineConfig`'s `random.Random`).
    #[getter]
    fn rng(&self, py: Python<'_>) -> PyResult<PyObject> {
        self.sync_rng(py)?;
        Ok(self.rng.clone_ref(py))
    }

    fn interaction_ids(&self, py: Python<'_>) -> Vec<Py<PyString>> {
        // The Python ids are kept in the order itself: no look-up of each interaction.
        self.interaction_order
            .values()
            .map(|(_, py_id)| py_id.clone_ref(py))
            .collect()
    }

    fn agent_ids(&self) -> Vec<String> {
        self.agent_order.iter().map(|i| i.to_string()).collect()
    }

    fn queue_ids(&self) -> Vec<String> {
        self.queue_order.iter().map(|i| i.to_string()).collect()
    }

    /// (state, reason) of an agent, for tests.
    fn agent_state(&self, py: Python<'_>, agent_id: &PyAny) -> PyResult<(String, String)> {
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let agent = &self.agents[&aid];
        Ok((agent.state.name().to_string(), agent.reason.clone()))
    }
}

