//! Queries and persistence (engine.py's "Queries" and "Persistence" sections): estimated
//! wait, the views for desktops and wallboards (`sparklecomm.acd.views`), configurations, and
//! `to_snapshot` / `from_snapshot` in exactly persistence.py's format ("sparklecomm.acd/1"),
//! so that a snapshot written by either engine loads into the other.
//!
//! `to_snapshot` writes the records as `dump_engine` does. `from_snapshot` first loads the data
//! with persistence.py's `load_engine` into a throwaway Python engine — the reference checks
//! the data and raises its errors, and turns the JSON values into records (enums, defaults of
//! older snapshots, `int()` of timer fields) — then copies those records and rebuilds the
//! derived indexes as `_restore_indexes` does. Loading is rare; the double work keeps every
//! error and every accepted value exactly as the Python engine's.

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyList, PyString, PyTuple, PyType};

use super::{channel_py, getattr, state_py, CompiledEngine, USF};
use crate::model::*;
use crate::types::{Channel, ChannelSet};

const FORMAT: &str = "sparklecomm.acd/1";
/// Expression members come after the listed members in member order (engine.py).
const EXPRESSION_ORDER_BASE: i64 = 1_000_000;
const AGENT_STATES: [AgentState; 6] = [
    AgentState::LoggedOut,
    AgentState::Available,
    AgentState::Reserved,
    AgentState::Busy,
    AgentState::WrapUp,
    AgentState::Break,
];

fn sec(us: i64) -> f64 {
    us as f64 / USF
}

fn id_of(obj: &PyAny) -> PyResult<Id> {
    let text: &str = obj.extract()?;
    Ok(Id::from(text))
}

fn opt_id(obj: &PyAny) -> PyResult<Option<Id>> {
    if obj.is_none() {
        Ok(None)
    } else {
        id_of(obj).map(Some)
    }
}

/// The `value` of a Python enum member (or a plain string).
fn enum_value(obj: &PyAny) -> PyResult<String> {
    match obj.getattr("value") {
        Ok(v) => v.extract(),
        Err(_) => obj.extract(),
    }
}

fn value_error(what: String) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(what)
}

fn channel_of(obj: &PyAny) -> PyResult<Channel> {
    let name = enum_value(obj)?;
    Channel::parse(&name).ok_or_else(|| value_error(format!("{name:?} is not a valid Channel")))
}

fn agent_state_of(name: &str) -> PyResult<AgentState> {
    AGENT_STATES
        .iter()
        .copied()
        .find(|s| s.name() == name)
        .ok_or_else(|| value_error(format!("{name:?} is not a valid AgentState")))
}

fn interaction_state_of(name: &str) -> PyResult<InteractionState> {
    use InteractionState::*;
    [Queued, Scheduled, Offered, Active]
        .into_iter()
        .find(|s| s.name() == name)
        .ok_or_else(|| value_error(format!("{name:?} is not a valid InteractionState")))
}

fn role_of(name: &str) -> PyResult<Role> {
    [Role::Owner, Role::Consult, Role::Conference]
        .into_iter()
        .find(|r| r.name() == name)
        .ok_or_else(|| value_error(format!("{name:?} is not a valid Role")))
}

fn offer_kind_of(name: &str) -> PyResult<&'static str> {
    match name {
        "queue" => Ok("queue"),
        "transfer" => Ok("transfer"),
        _ => Err(value_error(format!("unknown offer kind {name:?}"))),
    }
}

fn direction_of(name: &str) -> PyResult<&'static str> {
    match name {
        "inbound" => Ok("inbound"),
        "outbound" => Ok("outbound"),
        _ => Err(value_error(format!("unknown direction {name:?}"))),
    }
}

/// An interaction state's name as an interned Python string (as the enum's `value` is).
fn interaction_state_name(py: Python<'_>, state: InteractionState) -> &PyString {
    match state {
        InteractionState::Queued => intern!(py, "queued"),
        InteractionState::Scheduled => intern!(py, "scheduled"),
        InteractionState::Offered => intern!(py, "offered"),
        InteractionState::Active => intern!(py, "active"),
    }
}

/// The items of a Python dict (a record's field), in order.
fn dict_items(obj: &PyAny) -> PyResult<Vec<(&PyAny, &PyAny)>> {
    Ok(obj.downcast::<PyDict>()?.iter().collect())
}

impl CompiledEngine {
    // -- queries -----------------------------------------------------------------------------

    /// `_interaction_ewt`: estimated seconds until offered (None: no staffed agent).
    pub(super) fn interaction_ewt(&self, iid: &Id) -> Option<f64> {
        let it = &self.interactions[iid];
        match it.state {
            InteractionState::Offered => return Some(0.0),
            InteractionState::Active => return None,
            _ => {}
        }
        let position = self.position_of(iid, true)?;
        let ewt = Self::ewt(&self.queues[&it.queue_id], it.channel, position);
        if it.state == InteractionState::Scheduled {
            if let Some(due) = it.callback_due_at {
                return Some(py_max(sec(due - self.now), ewt.unwrap_or(0.0)));
            }
        }
        ewt
    }

    fn datetime_of(&self, py: Python<'_>, us: i64) -> PyResult<PyObject> {
        crate::glue::datetime_from_us(py, us)
    }

    // -- persistence: writing ----------------------------------------------------------------

    fn dump_queue<'p>(&self, py: Python<'p>, queue: &Queue) -> PyResult<&'p PyDict> {
        let d = PyDict::new(py);
        d.set_item(
            intern!(py, "config"),
            self.refs.queue_config_to_dict.call1(py, (&queue.cfg.py,))?,
        )?;
        d.set_item(intern!(py, "ordinal"), queue.ordinal)?;
        d.set_item(intern!(py, "rr_last"), queue.rr_last)?;
        let times = PyDict::new(py);
        for (ch, window) in &queue.handle_times {
            times.set_item(channel_py(py, *ch), PyList::new(py, window))?;
        }
        d.set_item(intern!(py, "handle_times"), times)?;
        Ok(d)
    }

    fn dump_agent<'p>(&self, py: Python<'p>, agent: &Agent) -> PyResult<&'p PyDict> {
        let d = PyDict::new(py);
        d.set_item(
            intern!(py, "config"),
            self.refs.agent_config_to_dict.call1(py, (&agent.cfg.py,))?,
        )?;
        d.set_item(intern!(py, "ordinal"), agent.ordinal)?;
        d.set_item(intern!(py, "state"), state_py(py, agent.state))?;
        d.set_item(intern!(py, "reason"), &agent.reason)?;
        d.set_item(intern!(py, "since"), agent.since)?;
        match &agent.since_iso {
            Some(text) => d.set_item(intern!(py, "since_iso"), text)?,
            None => d.set_item(intern!(py, "since_iso"), "")?,
        }
        d.set_item(intern!(py, "logged_in_at"), agent.logged_in_at)?;
        d.set_item(intern!(py, "aux_reason"), agent.aux_reason.as_deref())?;
        d.set_item(intern!(py, "offer"), agent.offer.as_deref())?;
        let interactions = PyDict::new(py);
        for (iid, ch) in &agent.interactions {
            interactions.set_item(&**iid, channel_py(py, *ch))?;
        }
        d.set_item(intern!(py, "interactions"), interactions)?;
        let mut rings: Vec<&str> = agent.rings.iter().map(|r| &**r).collect();
        rings.sort_unstable();
        d.set_item(intern!(py, "rings"), PyList::new(py, rings))?;
        let wrapups = PyList::empty(py);
        for w in &agent.wrapups {
            let wd = PyDict::new(py);
            wd.set_item(intern!(py, "interaction_id"), &w.py_interaction_id)?;
            wd.set_item(intern!(py, "channel"), channel_py(py, w.channel))?;
            wd.set_item(intern!(py, "queue_id"), &w.py_queue_id)?;
            wd.set_item(intern!(py, "started_at"), w.started_at)?;
            wd.set_item(intern!(py, "deadline"), w.deadline)?;
            wd.set_item(intern!(py, "timer_id"), w.timer_id)?;
            wd.set_item(intern!(py, "talk_us"), w.talk_us)?;
            wd.set_item(intern!(py, "hold_us"), w.hold_us)?;
            wd.set_item(intern!(py, "outbound"), w.outbound)?;
            wrapups.append(wd)?;
        }
        d.set_item(intern!(py, "wrapups"), wrapups)?;
        let load = PyDict::new(py);
        for &(ch, n) in &agent.load.entries {
            load.set_item(channel_py(py, ch), n)?;
        }
        d.set_item(intern!(py, "load"), load)?;
        d.set_item(intern!(py, "consecutive_misses"), agent.consecutive_misses)?;
        d.set_item(intern!(py, "handled"), agent.handled)?;
        d.set_item(intern!(py, "talk_us"), agent.talk_us)?;
        d.set_item(intern!(py, "idle_since"), agent.idle_since)?;
        Ok(d)
    }

    fn dump_interaction<'p>(&self, py: Python<'p>, it: &Interaction) -> PyResult<&'p PyDict> {
        let d = PyDict::new(py);
        d.set_item(intern!(py, "id"), &it.py_id)?;
        d.set_item(intern!(py, "channel"), channel_py(py, it.channel))?;
        d.set_item(intern!(py, "priority"), it.priority)?;
        d.set_item(intern!(py, "required_skills"), &it.required_skills)?;
        d.set_item(intern!(py, "customer_id"), &it.customer_id)?;
        // The record's own dict, as persistence.py writes it.
        d.set_item(intern!(py, "attributes"), &it.attributes)?;
        d.set_item(intern!(py, "created_at"), it.created_at)?;
        d.set_item(intern!(py, "queued_at"), it.queued_at)?;
        d.set_item(intern!(py, "queue_id"), &*it.queue_id)?;
        d.set_item(intern!(py, "seq"), it.seq)?;
        d.set_item(intern!(py, "state"), interaction_state_name(py, it.state))?;
        let entries = PyList::empty(py);
        for e in &it.entries {
            let ed = PyDict::new(py);
            ed.set_item(intern!(py, "queue_id"), &*e.queue_id)?;
            ed.set_item(intern!(py, "entered_at"), e.entered_at)?;
            ed.set_item(intern!(py, "level"), e.level)?;
            ed.set_item(intern!(py, "priority"), e.priority)?;
            ed.set_item(intern!(py, "listed"), e.listed)?;
            entries.append(ed)?;
        }
        d.set_item(intern!(py, "entries"), entries)?;
        let offers = PyList::empty(py);
        for o in &it.offers {
            let od = PyDict::new(py);
            od.set_item(intern!(py, "agent_id"), &*o.agent_id)?;
            od.set_item(intern!(py, "queue_id"), &*o.queue_id)?;
            od.set_item(intern!(py, "offered_at"), o.offered_at)?;
            od.set_item(intern!(py, "deadline"), o.deadline)?;
            od.set_item(intern!(py, "timer_id"), o.timer_id)?;
            od.set_item(intern!(py, "ring_all"), o.ring_all)?;
            offers.append(od)?;
        }
        d.set_item(intern!(py, "offers"), offers)?;
        d.set_item(intern!(py, "offer_kind"), it.offer_kind)?;
        d.set_item(intern!(py, "offer_attempts"), it.offer_attempts)?;
        let excluded = PyDict::new(py);
        for (aid, until) in &it.excluded {
            excluded.set_item(&**aid, until)?;
        }
        d.set_item(intern!(py, "excluded"), excluded)?;
        d.set_item(intern!(py, "agent_id"), it.agent_id.as_deref())?;
        let participants = PyList::empty(py);
        for (aid, p) in &it.participants {
            let pd = PyDict::new(py);
            pd.set_item(intern!(py, "agent_id"), &**aid)?;
            pd.set_item(intern!(py, "role"), p.role.name())?;
            pd.set_item(intern!(py, "joined_at"), p.joined_at)?;
            pd.set_item(intern!(py, "connected_at"), p.connected_at)?;
            participants.append(pd)?;
        }
        d.set_item(intern!(py, "participants"), participants)?;
        d.set_item(intern!(py, "leg_started_at"), it.leg_started_at)?;
        d.set_item(intern!(py, "hold_started_at"), it.hold_started_at)?;
        d.set_item(intern!(py, "leg_hold_us"), it.leg_hold_us)?;
        d.set_item(intern!(py, "hops"), it.hops)?;
        d.set_item(intern!(py, "max_wait_reached"), it.max_wait_reached)?;
        d.set_item(
            intern!(py, "original_channel"),
            it.original_channel.map(|c| c.name()),
        )?;
        d.set_item(intern!(py, "callback_phone"), it.callback_phone.as_deref())?;
        d.set_item(intern!(py, "callback_due_at"), it.callback_due_at)?;
        d.set_item(intern!(py, "callback_attempts"), it.callback_attempts)?;
        let timers = PyDict::new(py);
        for (name, tid) in &it.timers {
            timers.set_item(name, tid)?;
        }
        d.set_item(intern!(py, "timers"), timers)?;
        d.set_item(intern!(py, "direction"), it.direction)?;
        Ok(d)
    }

    // -- persistence: reading ----------------------------------------------------------------

    /// Copy the records of a Python engine that `load_engine` built (the data is checked).
    fn load_records(&mut self, py: Python<'_>, source: &PyAny) -> PyResult<()> {
        self.next_timer = getattr(source, "_next_timer")?;
        self.next_seq = getattr(source, "_next_seq")?;
        self.next_agent_ordinal = getattr(source, "_next_agent_ordinal")?;
        self.next_queue_ordinal = getattr(source, "_next_queue_ordinal")?;
        for (_, q) in dict_items(source.getattr("_queues")?)? {
            let qcfg = self.queue_cfg(q.getattr("config")?)?;
            let expression = match &qcfg.member_expression {
                Some(source) => Some(
                    crate::expr::compile(source, "member_expression").map_err(|e| e.to_py(py))?,
                ),
                None => None,
            };
            let listed: HashMap<Id, Membership> = qcfg
                .members
                .iter()
                .enumerate()
                .map(|(order, (aid, penalty, weight))| {
                    let m = Membership {
                        penalty: *penalty,
                        weight: *weight,
                        order: order as i64,
                    };
                    (aid.clone(), m)
                })
                .collect();
            let mut handle_times = Vec::new();
            for (ch, window) in dict_items(q.getattr("handle_times")?)? {
                handle_times.push((channel_of(ch)?, window.extract::<Vec<f64>>()?));
            }
            let qid = qcfg.id.clone();
            let queue = Queue {
                py_id: q.getattr("id")?.downcast::<PyString>()?.into(),
                ready: crate::ready::ReadyIndex::new(qcfg.strategy, qcfg.channels),
                cfg: qcfg,
                ordinal: getattr(q, "ordinal")?,
                members: Vec::new(),
                listed,
                rr_last: getattr(q, "rr_last")?,
                handle_times,
                staffed_agents: 0,
                staffed_capacity: ChannelCounts::default(),
                waiting: Vec::new(),
                waiting_count: 0,
                expression,
                scheduled: Vec::new(),
            };
            self.queues.insert(qid.clone(), Box::new(queue));
            self.queue_order.push(qid);
        }
        for (_, a) in dict_items(source.getattr("_agents")?)? {
            let agent = self.load_agent(a)?;
            self.agent_order.push(agent.id.clone());
            self.agents.insert(agent.id.clone(), Box::new(agent));
        }
        for (_, i) in dict_items(source.getattr("_interactions")?)? {
            let it = self.load_interaction(py, i)?;
            self.interaction_order
                .insert(it.created_seq, (it.id.clone(), it.py_id.clone_ref(py)));
            self.interactions.insert(it.id.clone(), Box::new(it));
        }
        for (tid, t) in dict_items(source.getattr("_timers")?)? {
            let (due, kind, a, b): (i64, &str, &str, &str) = t.extract()?;
            let kind = TimerKind::parse(kind)
                .ok_or_else(|| value_error(format!("unknown timer kind {kind:?}")))?;
            self.timers.insert(
                tid.extract()?,
                Timer {
                    due,
                    kind,
                    a: Id::from(a),
                    b: Id::from(b),
                },
            );
        }
        for (name, hours) in dict_items(source.getattr("_hours")?)? {
            self.hours.push((name.extract()?, hours.into()));
        }
        Ok(())
    }

    fn load_agent(&self, a: &PyAny) -> PyResult<Agent> {
        let cfg = self.agent_cfg(a.getattr("config")?)?;
        let since_iso: &PyString = a.getattr("since_iso")?.downcast()?;
        let mut interactions = Vec::new();
        for (iid, ch) in dict_items(a.getattr("interactions")?)? {
            interactions.push((id_of(iid)?, channel_of(ch)?));
        }
        let mut rings = Vec::new();
        for r in a.getattr("rings")?.iter()? {
            rings.push(id_of(r?)?);
        }
        rings.sort();
        let mut wrapups = Vec::new();
        for (_, w) in dict_items(a.getattr("wrapups")?)? {
            let wid = w.getattr("interaction_id")?;
            let wqid = w.getattr("queue_id")?;
            wrapups.push(Wrapup {
                interaction_id: id_of(wid)?,
                py_interaction_id: wid.downcast::<PyString>()?.into(),
                py_queue_id: wqid.downcast::<PyString>()?.into(),
                channel: channel_of(w.getattr("channel")?)?,
                queue_id: id_of(wqid)?,
                started_at: getattr(w, "started_at")?,
                deadline: getattr(w, "deadline")?,
                timer_id: getattr(w, "timer_id")?,
                talk_us: getattr(w, "talk_us")?,
                hold_us: getattr(w, "hold_us")?,
                outbound: getattr(w, "outbound")?,
            });
        }
        let mut load = ChannelCounts::default();
        for (ch, n) in dict_items(a.getattr("load")?)? {
            load.entries.push((channel_of(ch)?, n.extract()?));
        }
        Ok(Agent {
            id: cfg.id.clone(),
            py_id: a.getattr("id")?.downcast::<PyString>()?.into(),
            cfg,
            ordinal: getattr(a, "ordinal")?,
            state: agent_state_of(&enum_value(a.getattr("state")?)?)?,
            reason: getattr(a, "reason")?,
            since: getattr(a, "since")?,
            since_iso: if since_iso.to_str()?.is_empty() {
                None
            } else {
                Some(since_iso.into())
            },
            logged_in_at: getattr(a, "logged_in_at")?,
            aux_reason: getattr(a, "aux_reason")?,
            offer: opt_id(a.getattr("offer")?)?,
            interactions,
            rings,
            wrapups,
            load,
            consecutive_misses: getattr(a, "consecutive_misses")?,
            handled: getattr(a, "handled")?,
            talk_us: getattr(a, "talk_us")?,
            idle_since: getattr(a, "idle_since")?,
            queues: Vec::new(),
            index_keys: Vec::new(),
        })
    }

    fn load_interaction(&mut self, py: Python<'_>, i: &PyAny) -> PyResult<Interaction> {
        let required: &PyString = i.getattr("required_skills")?.downcast()?;
        let expression = self.compile(py, required.to_str()?, "required_skills")?;
        let py_id: &PyString = i.getattr("id")?.downcast()?;
        let iid: Id = Id::from(py_id.to_str()?);
        let queued_at: i64 = getattr(i, "queued_at")?;
        let seq: i64 = getattr(i, "seq")?;
        let mut entries = Vec::new();
        for (_, e) in dict_items(i.getattr("entries")?)? {
            let level: usize = getattr(e, "level")?;
            entries.push(QueueEntry {
                queue_id: id_of(e.getattr("queue_id")?)?,
                entered_at: getattr(e, "entered_at")?,
                level,
                priority: getattr(e, "priority")?,
                key: (0, queued_at, seq, iid.clone()), // recomputed by restore_indexes
                listed: getattr(e, "listed")?,
            });
        }
        let mut offers = Vec::new();
        for (_, o) in dict_items(i.getattr("offers")?)? {
            offers.push(Offer {
                agent_id: id_of(o.getattr("agent_id")?)?,
                queue_id: id_of(o.getattr("queue_id")?)?,
                offered_at: getattr(o, "offered_at")?,
                deadline: getattr(o, "deadline")?,
                timer_id: getattr(o, "timer_id")?,
                ring_all: getattr(o, "ring_all")?,
            });
        }
        let mut excluded = Vec::new();
        for (aid, until) in dict_items(i.getattr("excluded")?)? {
            excluded.push((id_of(aid)?, until.extract()?));
        }
        let mut participants = Vec::new();
        for (aid, p) in dict_items(i.getattr("participants")?)? {
            participants.push((
                id_of(aid)?,
                Participant {
                    role: role_of(&enum_value(p.getattr("role")?)?)?,
                    joined_at: getattr(p, "joined_at")?,
                    connected_at: getattr(p, "connected_at")?,
                },
            ));
        }
        let mut timers = Vec::new();
        for (name, tid) in dict_items(i.getattr("timers")?)? {
            timers.push((name.extract()?, tid.extract()?));
        }
        let original = i.getattr("original_channel")?;
        let created_seq = self.next_created;
        self.next_created += 1;
        Ok(Interaction {
            id: iid,
            py_id: py_id.into(),
            channel: channel_of(i.getattr("channel")?)?,
            priority: getattr(i, "priority")?,
            required_skills: required.into(),
            expression,
            customer_id: i.getattr("customer_id")?.into(),
            attributes: i.getattr("attributes")?.into(),
            created_at: getattr(i, "created_at")?,
            queued_at,
            queue_id: id_of(i.getattr("queue_id")?)?,
            seq,
            state: interaction_state_of(&enum_value(i.getattr("state")?)?)?,
            entries,
            offers,
            offer_kind: offer_kind_of(&getattr::<String>(i, "offer_kind")?)?,
            offer_attempts: getattr(i, "offer_attempts")?,
            excluded,
            agent_id: opt_id(i.getattr("agent_id")?)?,
            participants,
            leg_started_at: getattr(i, "leg_started_at")?,
            hold_started_at: getattr(i, "hold_started_at")?,
            leg_hold_us: getattr(i, "leg_hold_us")?,
            hops: getattr(i, "hops")?,
            max_wait_reached: getattr(i, "max_wait_reached")?,
            original_channel: if original.is_none() {
                None
            } else {
                Some(channel_of(original)?)
            },
            callback_phone: getattr(i, "callback_phone")?,
            callback_due_at: getattr(i, "callback_due_at")?,
            callback_attempts: getattr(i, "callback_attempts")?,
            timers,
            direction: direction_of(&getattr::<String>(i, "direction")?)?,
            created_seq,
        })
    }

    /// `_membership_for` on restore: listed terms first, else the member expression's.
    fn restored_membership(queue: &Queue, agent: &Agent) -> Option<Membership> {
        if let Some(m) = queue.listed.get(&agent.cfg.id) {
            return Some(*m);
        }
        match &queue.expression {
            Some(expr) if expr.matches(&agent.cfg.skills, &agent.cfg.attributes, 0) => {
                Some(Membership {
                    penalty: queue.cfg.member_expression_penalty,
                    weight: queue.cfg.member_expression_weight,
                    order: EXPRESSION_ORDER_BASE + agent.ordinal,
                })
            }
            _ => None,
        }
    }

    /// `_restore_indexes`: memberships, staffing, waiting lists, ready indexes and the heap,
    /// rebuilt from the records in the Python engine's order.
    fn restore_indexes(&mut self) -> PyResult<()> {
        for qid in self.queue_order.clone() {
            let queue = &self.queues[&qid];
            let candidates: Vec<Id> = if queue.expression.is_none() {
                queue.cfg.members.iter().map(|m| m.0.clone()).collect()
            } else {
                self.agent_order.clone()
            };
            for aid in candidates {
                let member = match self.agents.get(&aid) {
                    Some(agent) => Self::restored_membership(&self.queues[&qid], agent),
                    None => None,
                };
                if let Some(m) = member {
                    self.agents
                        .get_mut(&aid)
                        .expect("agent")
                        .queues
                        .push((qid.clone(), m));
                    self.queues
                        .get_mut(&qid)
                        .expect("queue")
                        .members
                        .push((aid, m));
                }
            }
        }
        for aid in &self.agent_order {
            let agent = &self.agents[aid];
            if agent.staffed() {
                for (qid, _) in &agent.queues {
                    let queue = self.queues.get_mut(qid).expect("queue");
                    queue.staffed_agents += 1;
                    for &(ch, n) in &agent.cfg.capacity {
                        queue.staffed_capacity.add(ch, n);
                    }
                }
            }
        }
        let priority_points = self.priority_points;
        for iid in self.ordered_ids()
            .cloned()
            .collect::<Vec<Id>>()
        {
            let n = self.interactions[&iid].entries.len();
            for index in 0..n {
                let it = &self.interactions[&iid];
                let entry = &it.entries[index];
                let cfg = match self.queues.get(&entry.queue_id) {
                    Some(q) => &q.cfg,
                    None => {
                        return Err(pyo3::exceptions::PyKeyError::new_err(
                            entry.queue_id.to_string(),
                        ))
                    }
                };
                if entry.level >= cfg.level_max_penalty.len() {
                    return Err(pyo3::exceptions::PyIndexError::new_err(
                        "list index out of range",
                    ));
                }
                let base = (cfg.weight + entry.priority as f64 * priority_points) * USF;
                let key: WaitKey = (
                    round_half_even(cfg.ageing_rate * it.queued_at as f64 - base),
                    it.queued_at,
                    it.seq,
                    it.id.clone(),
                );
                let entry = &mut self
                    .interactions
                    .get_mut(&iid)
                    .expect("interaction")
                    .entries[index];
                entry.key = key;
                if entry.listed {
                    entry.listed = false;
                    self.list_entry(&iid, index);
                }
            }
            let it = &self.interactions[&iid];
            if it.state == InteractionState::Scheduled {
                match self.queues.get_mut(&it.queue_id) {
                    Some(q) => q.scheduled.push(iid.clone()),
                    None => {
                        return Err(pyo3::exceptions::PyKeyError::new_err(
                            it.queue_id.to_string(),
                        ))
                    }
                }
            }
        }
        for aid in self.agent_order.clone() {
            self.reindex(&aid);
        }
        self.work.clear();
        self.heap = self
            .timers
            .iter()
            .map(|(tid, t)| std::cmp::Reverse((t.due, *tid)))
            .collect::<BinaryHeap<_>>();
        Ok(())
    }
}

/// Python's `max(a, b)` of two floats (the first unless the second is greater).
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

#[pymethods]
impl CompiledEngine {
    /// Estimated seconds until offered (None: no staffed agent to estimate from).
    fn estimated_wait(&mut self, py: Python<'_>, interaction_id: &PyAny) -> PyResult<Option<f64>> {
        self.query_now(py)?;
        let iid = self.interaction_id_of(py, interaction_id)?;
        Ok(self.interaction_ewt(&iid))
    }

    /// The interaction as a desktop shows it (`views.InteractionSnapshot`).
    fn interaction_snapshot(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
    ) -> PyResult<PyObject> {
        self.query_now(py)?;
        let iid = self.interaction_id_of(py, interaction_id)?;
        let it = &self.interactions[&iid];
        let kw = PyDict::new(py);
        kw.set_item(intern!(py, "interaction_id"), &*it.id)?;
        kw.set_item(intern!(py, "state"), interaction_state_name(py, it.state))?;
        kw.set_item(intern!(py, "channel"), channel_py(py, it.channel))?;
        kw.set_item(intern!(py, "queue_id"), &*it.queue_id)?;
        kw.set_item(
            intern!(py, "queue_ids"),
            PyTuple::new(py, it.entries.iter().map(|e| &*e.queue_id)),
        )?;
        kw.set_item(intern!(py, "priority"), it.priority)?;
        kw.set_item(intern!(py, "agent_id"), it.agent_id.as_deref())?;
        kw.set_item(
            intern!(py, "offered_to"),
            PyTuple::new(py, it.offers.iter().map(|o| &*o.agent_id)),
        )?;
        let participants = PyDict::new(py);
        for (aid, p) in &it.participants {
            participants.set_item(&**aid, p.role.name())?;
        }
        kw.set_item(intern!(py, "participants"), participants)?;
        kw.set_item(
            intern!(py, "ringing"),
            PyTuple::new(
                py,
                it.participants
                    .iter()
                    .filter(|(_, p)| p.connected_at.is_none())
                    .map(|(a, _)| &**a)
                    .collect::<Vec<&str>>(),
            ),
        )?;
        kw.set_item(intern!(py, "position"), self.position_of(&iid, false))?;
        kw.set_item(intern!(py, "ewt_seconds"), self.interaction_ewt(&iid))?;
        kw.set_item(intern!(py, "wait_seconds"), sec(self.now - it.queued_at))?;
        kw.set_item(
            intern!(py, "created_at"),
            self.datetime_of(py, it.created_at)?,
        )?;
        kw.set_item(
            intern!(py, "queued_at"),
            self.datetime_of(py, it.queued_at)?,
        )?;
        kw.set_item(intern!(py, "on_hold"), it.hold_started_at.is_some())?;
        // `from_us(due) if due else None`: an instant of 0 counts as none.
        let due: PyObject = match it.callback_due_at {
            Some(due) if due != 0 => self.datetime_of(py, due)?,
            _ => py.None(),
        };
        kw.set_item(intern!(py, "callback_due_at"), due)?;
        kw.set_item(intern!(py, "callback_attempts"), it.callback_attempts)?;
        kw.set_item(intern!(py, "customer_id"), &it.customer_id)?;
        kw.set_item(intern!(py, "required_skills"), &it.required_skills)?;
        kw.set_item(
            intern!(py, "attributes"),
            py.import("builtins")?
                .getattr("dict")?
                .call1((&it.attributes,))?,
        )?;
        kw.set_item(intern!(py, "callback_phone"), it.callback_phone.as_deref())?;
        kw.set_item(intern!(py, "direction"), it.direction)?;
        let views = py.import("sparklecomm.acd.views")?;
        Ok(views
            .getattr("InteractionSnapshot")?
            .call((), Some(kw))?
            .into())
    }

    /// Waiting count, longest wait, agents by state and the waiting list (by position).
    #[args("*", limit = "None")]
    fn queue_snapshot(
        &mut self,
        py: Python<'_>,
        queue_id: &PyAny,
        limit: Option<&PyAny>,
    ) -> PyResult<PyObject> {
        self.query_now(py)?;
        let qid = self.queue_id_of(py, queue_id, "queue_id")?;
        let now = self.now;
        let queue = &self.queues[&qid];
        let mut by_state = [0i64; 6];
        for (aid, _) in &queue.members {
            let state = self.agents[aid].state;
            by_state[AGENT_STATES
                .iter()
                .position(|s| *s == state)
                .expect("state")] += 1;
        }
        let mut rows: Vec<(&WaitKey, &Interaction, &QueueEntry)> = Vec::new();
        let mut offered = 0i64;
        // Any order: the rows are sorted by their (unique) keys, the offered only counted.
        for it in self.interactions.values() {
            if let Some(entry) = it.entry(&qid) {
                match it.state {
                    InteractionState::Offered => offered += 1,
                    InteractionState::Queued | InteractionState::Scheduled => {
                        rows.push((&entry.key, it, entry))
                    }
                    InteractionState::Active => {}
                }
            }
        }
        rows.sort_by(|a, b| a.0.cmp(b.0));
        let mut longest = 0.0f64;
        for (i, row) in rows.iter().enumerate() {
            let wait = sec(now - row.1.queued_at);
            if i == 0 || wait > longest {
                longest = wait;
            }
        }
        // `rows[:limit]`, with Python's slice rules (and errors).
        let limit_obj: PyObject = match limit {
            Some(l) => l.into(),
            None => py.None(),
        };
        let slice = py
            .import("builtins")?
            .getattr("slice")?
            .call1((py.None(), limit_obj))?;
        let (_, stop, _): (isize, isize, isize) =
            slice.call_method1("indices", (rows.len(),))?.extract()?;
        let rate = queue.cfg.ageing_rate;
        let score_now = round_half_even(rate * now as f64);
        let views = py.import("sparklecomm.acd.views")?;
        let waiting_entry = views.getattr("WaitingEntry")?;
        let mut waiting: Vec<PyObject> = Vec::new();
        for &(key, it, entry) in rows.iter().take(stop.max(0) as usize) {
            let mut per_channel = 0i64;
            let mut position = 0i64;
            for (ch, lists) in &queue.waiting {
                for keys in lists {
                    if !keys.is_empty() {
                        let n = keys.rank(key) as i64;
                        position += n;
                        if *ch == it.channel {
                            per_channel += n;
                        }
                    }
                }
            }
            let mut ewt = Self::ewt(queue, it.channel, per_channel + 1);
            if it.state == InteractionState::Scheduled {
                if let Some(due) = it.callback_due_at {
                    ewt = Some(py_max(sec(due - now), ewt.unwrap_or(0.0)));
                }
            }
            let kw = PyDict::new(py);
            kw.set_item(intern!(py, "interaction_id"), &*it.id)?;
            kw.set_item(intern!(py, "channel"), channel_py(py, it.channel))?;
            kw.set_item(intern!(py, "state"), interaction_state_name(py, it.state))?;
            kw.set_item(intern!(py, "priority"), entry.priority)?;
            kw.set_item(intern!(py, "position"), position + 1)?;
            kw.set_item(intern!(py, "wait_seconds"), sec(now - it.queued_at))?;
            kw.set_item(intern!(py, "ewt_seconds"), ewt)?;
            kw.set_item(intern!(py, "level"), entry.level)?;
            kw.set_item(intern!(py, "score"), (score_now - key.0) as f64 / USF)?;
            kw.set_item(intern!(py, "primary"), it.queue_id == qid)?;
            waiting.push(waiting_entry.call((), Some(kw))?.into());
        }
        let states = PyDict::new(py);
        for (state, n) in AGENT_STATES.iter().zip(by_state) {
            states.set_item(state.name(), n)?;
        }
        let kw = PyDict::new(py);
        kw.set_item(intern!(py, "queue_id"), &*qid)?;
        kw.set_item(intern!(py, "name"), &queue.cfg.name)?;
        kw.set_item(intern!(py, "strategy"), queue.cfg.strategy.name())?;
        kw.set_item(intern!(py, "waiting"), queue.waiting_count)?;
        kw.set_item(intern!(py, "scheduled_callbacks"), queue.scheduled.len())?;
        kw.set_item(intern!(py, "offered"), offered)?;
        kw.set_item(intern!(py, "longest_wait_seconds"), longest)?;
        kw.set_item(intern!(py, "staffed_agents"), queue.staffed_agents)?;
        kw.set_item(intern!(py, "agents_by_state"), states)?;
        kw.set_item(
            intern!(py, "service_level_seconds"),
            queue.cfg.service_level_seconds,
        )?;
        kw.set_item(intern!(py, "entries"), PyTuple::new(py, waiting))?;
        kw.set_item(intern!(py, "open"), self.open_now(py, &qid)?)?;
        Ok(views.getattr("QueueSnapshot")?.call((), Some(kw))?.into())
    }

    /// State, reason, since, current work and load per channel of one agent.
    fn agent_snapshot(&mut self, py: Python<'_>, agent_id: &PyAny) -> PyResult<PyObject> {
        self.query_now(py)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let agent = &self.agents[&aid];
        let kw = PyDict::new(py);
        kw.set_item(intern!(py, "agent_id"), &*agent.id)?;
        kw.set_item(intern!(py, "name"), agent.cfg.py.getattr(py, "name")?)?;
        kw.set_item(intern!(py, "state"), state_py(py, agent.state))?;
        kw.set_item(intern!(py, "reason"), &agent.reason)?;
        kw.set_item(intern!(py, "since"), self.datetime_of(py, agent.since)?)?;
        kw.set_item(intern!(py, "seconds_in_state"), sec(self.now - agent.since))?;
        let pending = match &agent.aux_reason {
            Some(r) if agent.state != AgentState::Break => Some(r.as_str()),
            _ => None,
        };
        kw.set_item(intern!(py, "pending_break"), pending)?;
        kw.set_item(intern!(py, "offer"), agent.offer.as_deref())?;
        kw.set_item(
            intern!(py, "interactions"),
            PyTuple::new(py, agent.interactions.iter().map(|(i, _)| &**i)),
        )?;
        kw.set_item(
            intern!(py, "wrapups"),
            PyTuple::new(py, agent.wrapups.iter().map(|w| &*w.interaction_id)),
        )?;
        let load = PyDict::new(py);
        for &(ch, n) in &agent.load.entries {
            if n != 0 {
                load.set_item(channel_py(py, ch), n)?;
            }
        }
        kw.set_item(intern!(py, "load"), load)?;
        let capacity = PyDict::new(py);
        for &(ch, n) in &agent.cfg.capacity {
            capacity.set_item(ch.name(), n)?;
        }
        kw.set_item(intern!(py, "capacity"), capacity)?;
        let routable: ChannelSet = Self::routable_channels(agent);
        kw.set_item(
            intern!(py, "routable_channels"),
            PyTuple::new(py, routable.iter().map(|c| c.name()).collect::<Vec<&str>>()),
        )?;
        let mut queues: Vec<(i64, &str)> = agent
            .queues
            .iter()
            .map(|(q, _)| (self.queues[q].ordinal, &**q))
            .collect();
        queues.sort_by_key(|r| r.0);
        kw.set_item(
            intern!(py, "queues"),
            PyTuple::new(py, queues.into_iter().map(|r| r.1)),
        )?;
        kw.set_item(intern!(py, "consecutive_misses"), agent.consecutive_misses)?;
        kw.set_item(intern!(py, "handled"), agent.handled)?;
        let views = py.import("sparklecomm.acd.views")?;
        Ok(views.getattr("AgentSnapshot")?.call((), Some(kw))?.into())
    }

    /// The (normalized) configuration of a queue.
    fn queue_config(&self, py: Python<'_>, queue_id: &PyAny) -> PyResult<PyObject> {
        let qid = self.queue_id_of(py, queue_id, "queue_id")?;
        Ok(self.queues[&qid].cfg.py.clone_ref(py))
    }

    /// The (normalized) configuration of an agent.
    fn agent_config(&self, py: Python<'_>, agent_id: &PyAny) -> PyResult<PyObject> {
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        Ok(self.agents[&aid].cfg.py.clone_ref(py))
    }

    /// (agent_id, state, reason) for every agent, e.g. for a wallboard.
    fn iter_agent_states(&self, py: Python<'_>) -> PyResult<PyObject> {
        let rows = PyList::empty(py);
        for aid in &self.agent_order {
            let agent = &self.agents[aid];
            rows.append((&*agent.id, agent.state.name(), &agent.reason))?;
        }
        Ok(PyIterator::from_object(py, rows)?.into())
    }

    /// The complete state as JSON data, in persistence.py's format (`dump_engine`).
    fn to_snapshot(&self, py: Python<'_>) -> PyResult<PyObject> {
        let out = PyDict::new(py);
        out.set_item(intern!(py, "format"), FORMAT)?;
        let cfg = self.engine_config.as_ref(py);
        let config = PyDict::new(py);
        for name in [
            "max_consecutive_misses",
            "missed_offers_reason",
            "reject_counts_as_miss",
            "priority_points",
            "handle_time_window",
            "max_overflow_hops",
            "expression_cache_size",
        ] {
            config.set_item(name, cfg.getattr(name)?)?;
        }
        match &self.break_reasons {
            None => config.set_item(intern!(py, "break_reasons"), py.None())?,
            Some(codes) => {
                let mut codes: Vec<&str> = codes.iter().map(|c| c.as_str()).collect();
                codes.sort_unstable();
                config.set_item(intern!(py, "break_reasons"), PyList::new(py, codes))?;
            }
        }
        out.set_item(intern!(py, "config"), config)?;
        self.sync_rng(py)?;
        let state = self.rng.call_method0(py, "getstate")?;
        let (version, internal, gauss): (PyObject, &PyAny, PyObject) = state.extract(py)?;
        let rng = PyList::empty(py);
        rng.append(version)?;
        rng.append(PyList::new(
            py,
            internal.iter()?.collect::<PyResult<Vec<&PyAny>>>()?,
        ))?;
        rng.append(gauss)?;
        out.set_item(intern!(py, "rng"), rng)?;
        let counters = PyDict::new(py);
        counters.set_item(intern!(py, "next_timer"), self.next_timer)?;
        counters.set_item(intern!(py, "next_seq"), self.next_seq)?;
        counters.set_item(intern!(py, "next_agent_ordinal"), self.next_agent_ordinal)?;
        counters.set_item(intern!(py, "next_queue_ordinal"), self.next_queue_ordinal)?;
        out.set_item(intern!(py, "counters"), counters)?;
        let queues = PyList::empty(py);
        for qid in &self.queue_order {
            queues.append(self.dump_queue(py, &self.queues[qid])?)?;
        }
        out.set_item(intern!(py, "queues"), queues)?;
        let agents = PyList::empty(py);
        for aid in &self.agent_order {
            agents.append(self.dump_agent(py, &self.agents[aid])?)?;
        }
        out.set_item(intern!(py, "agents"), agents)?;
        let interactions = PyList::empty(py);
        for iid in self.ordered_ids() {
            interactions.append(self.dump_interaction(py, &self.interactions[iid])?)?;
        }
        out.set_item(intern!(py, "interactions"), interactions)?;
        // A Python dict of timers iterates in insertion order: ascending ids.
        let ordered: BTreeMap<u64, &Timer> = self.timers.iter().map(|(k, t)| (*k, t)).collect();
        let timers = PyList::empty(py);
        for (tid, t) in ordered {
            let row = PyList::empty(py);
            row.append(tid)?;
            row.append(t.due)?;
            row.append(t.kind.name())?;
            row.append(&*t.a)?;
            row.append(&*t.b)?;
            timers.append(row)?;
        }
        out.set_item(intern!(py, "timers"), timers)?;
        let spec_of = py.import("sparklecomm.core.hours")?.getattr("spec_of")?;
        let hours = PyDict::new(py);
        for (name, h) in &self.hours {
            hours.set_item(name, spec_of.call1((h,))?)?;
        }
        out.set_item(intern!(py, "business_hours"), hours)?;
        Ok(out.into())
    }

    /// Rebuild an engine from `to_snapshot` output (of either engine); same future behaviour.
    #[classmethod]
    fn from_snapshot(
        _cls: &PyType,
        py: Python<'_>,
        data: &PyAny,
        clock: PyObject,
    ) -> PyResult<CompiledEngine> {
        // The reference loads (and checks) the data: its errors, its conversions.
        let persistence = py.import("sparklecomm.acd.persistence")?;
        let reference = py.import("sparklecomm.acd.engine")?.getattr("AcdEngine")?;
        let source =
            persistence
                .getattr("load_engine")?
                .call1((reference, data, clock.clone_ref(py)))?;
        // What the reference accepts but this engine cannot hold (a timer of an unknown kind,
        // a number out of range) is refused as corrupt, as `load_engine` refuses bad data.
        let build = || -> PyResult<CompiledEngine> {
            let mut engine = CompiledEngine::new(py, clock, Some(source.getattr("_config")?))?;
            engine.load_records(py, source)?;
            engine.restore_indexes()?;
            Ok(engine)
        };
        match build() {
            Ok(engine) => Ok(engine),
            Err(err) => {
                let detail = format!("Corrupt ACD engine snapshot: {}.", err.value(py).repr()?);
                let invalid = py
                    .import("sparklecomm.core.errors")?
                    .getattr("InvalidInput")?;
                Err(PyErr::from_value(invalid.call1((detail,))?))
            }
        }
    }
}
