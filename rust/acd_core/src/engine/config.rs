//! Configuration changes (engine.py's `add_queue` … `leave_queue`) and queue memberships,
//! listed or by member expression (`_relist`, `_build_queue`, `_possible_queues`,
//! `_candidate_members`, `_membership_for`, `_sync_memberships`, `_drop_index_entries`).
//!
//! The Python engine keeps an agent → listing-queues map and the set of queues with a member
//! expression to find the queues an agent may belong to; here they are found by a scan of the
//! queues in creation order (the same queues, in the same order: configuration changes are
//! rare, and the routing hot path never asks).

use std::collections::{HashMap, HashSet};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::{repr, CompiledEngine, Work, USF};
use crate::model::*;
use crate::ready::ReadyIndex;

/// Expression members come after the listed members in member order.
const EXPRESSION_ORDER_BASE: i64 = 1_000_000;

/// Python's `0` and `1`: the defaults of `join_queue`'s penalty and weight (passed on as
/// given: the event carries them, and the queue's configuration checks them).
fn zero() -> PyObject {
    Python::with_gil(|py| 0i64.into_py(py))
}
fn one() -> PyObject {
    Python::with_gil(|py| 1i64.into_py(py))
}

/// The listed members of a configuration: agent id → membership in configuration order.
fn listed_of(cfg: &QueueCfg) -> HashMap<Id, Membership> {
    cfg.members
        .iter()
        .enumerate()
        .map(|(order, (aid, penalty, weight))| {
            (
                aid.clone(),
                Membership {
                    penalty: *penalty,
                    weight: *weight,
                    order: order as i64,
                },
            )
        })
        .collect()
}

/// The compiled member expression of a configuration (model.py `compile_member_expression`;
/// not through the engine's cache, as in Python).
fn member_expression(py: Python<'_>, cfg: &QueueCfg) -> PyResult<Option<crate::expr::Expr>> {
    match &cfg.member_expression {
        None => Ok(None),
        Some(source) => crate::expr::compile(source, "member_expression")
            .map(Some)
            .map_err(|e| e.to_py(py)),
    }
}

impl CompiledEngine {
    pub(super) fn drop_index_entries(&mut self, aid: &Id, qid: &Id) {
        let agent = self.agents.get_mut(aid).expect("agent");
        if let Some(pos) = agent.index_keys.iter().position(|(q, _)| q == qid) {
            let (_, (penalty, key, chans)) = agent.index_keys.remove(pos);
            self.queues
                .get_mut(qid)
                .expect("queue")
                .ready
                .delete(penalty, &key, chans);
        }
    }

    /// Queues the agent is or could be a member of (listing it, or by expression), by
    /// creation order.
    fn possible_queues(&self, aid: &Id) -> Vec<Id> {
        let agent = &self.agents[aid];
        let mut found: Vec<(i64, Id)> = self
            .queues
            .iter()
            .filter(|(qid, queue)| {
                queue.expression.is_some()
                    || queue.listed.contains_key(aid)
                    || agent.queues.iter().any(|(q, _)| q == *qid)
            })
            .map(|(qid, queue)| (queue.ordinal, qid.clone()))
            .collect();
        found.sort_unstable_by_key(|f| f.0);
        found.into_iter().map(|f| f.1).collect()
    }

    fn candidate_members(&self, qid: &Id) -> Vec<Id> {
        let queue = &self.queues[qid];
        if queue.expression.is_some() {
            return self.agent_order.clone();
        }
        queue
            .cfg
            .members
            .iter()
            .filter_map(|(aid, _, _)| self.agents.get_key_value(aid).map(|(a, _)| a.clone()))
            .collect()
    }

    fn membership_for(&self, qid: &Id, aid: &Id) -> Option<Membership> {
        let queue = &self.queues[qid];
        if let Some(listed) = queue.listed.get(aid) {
            return Some(*listed);
        }
        let agent = &self.agents[aid];
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

    fn membership(&self, aid: &Id, qid: &Id) -> Option<Membership> {
        self.agents[aid]
            .queues
            .iter()
            .find(|(q, _)| q == qid)
            .map(|(_, m)| *m)
    }

    fn sync_memberships(&mut self, py: Python<'_>, qid: &Id, agent_ids: &[Id]) -> PyResult<()> {
        for aid in agent_ids {
            let before = self.membership(aid, qid);
            let after = self.membership_for(qid, aid);
            if before != after {
                self.set_membership(aid, qid, after);
                self.emit_agent_queues(py, aid)?;
            }
        }
        Ok(())
    }

    /// Every membership of the agent as it should be now (add_agent, update_agent).
    fn set_memberships(&mut self, aid: &Id) {
        for qid in self.possible_queues(aid) {
            let member = self.membership_for(&qid, aid);
            self.set_membership(aid, &qid, member);
        }
    }

    fn emit_config(
        &mut self,
        py: Python<'_>,
        type_: &PyString,
        key: &str,
        id: &Id,
        config: PyObject,
    ) -> PyResult<()> {
        let p = PyDict::new(py);
        p.set_item(key, &**id)?;
        p.set_item("config", config)?;
        self.emit(py, type_, p)
    }

    fn emit_queue_config(&mut self, py: Python<'_>, type_: &PyString, cfg: &PyAny) -> PyResult<()> {
        let qid: Id = Id::from(cfg.getattr("id")?.extract::<&str>()?);
        let dict = self.refs.queue_config_to_dict.call1(py, (cfg,))?;
        self.emit_config(py, type_, "queue_id", &qid, dict)
    }

    /// Swap in `cfg` (the same queue with other listed members), publish it, and bring the
    /// memberships in step (members after a removed one move up in member order).
    fn relist(&mut self, py: Python<'_>, qid: &Id, cfg: &PyAny) -> PyResult<()> {
        let qcfg = self.queue_cfg(cfg)?;
        let queue = self.queues.get_mut(qid).expect("queue");
        let mut affected: Vec<Id> = queue.cfg.members.iter().map(|m| m.0.clone()).collect();
        for (aid, _, _) in &qcfg.members {
            if !affected.contains(aid) {
                affected.push(aid.clone());
            }
        }
        queue.listed = listed_of(&qcfg);
        queue.cfg = qcfg;
        self.emit_queue_config(py, intern!(py, "queue.updated"), cfg)?;
        let affected: Vec<Id> = affected
            .into_iter()
            .filter_map(|aid| self.agents.get_key_value(&aid).map(|(a, _)| a.clone()))
            .collect();
        self.sync_memberships(py, qid, &affected)
    }

    /// The static sort key of a waiting interaction in the queue (engine.py `_wait_key`).
    fn wait_key(&self, qid: &Id, priority: i64, iid: &Id) -> WaitKey {
        let it = &self.interactions[iid];
        let cfg = &self.queues[qid].cfg;
        let base = (cfg.weight + priority as f64 * self.priority_points) * USF;
        (
            round_half_even(cfg.ageing_rate * it.queued_at as f64 - base),
            it.queued_at,
            it.seq,
            it.id.clone(),
        )
    }
}

#[pymethods]
impl CompiledEngine {
    /// Create a queue; agents listed or matching its member expression become members.
    fn add_queue(&mut self, py: Python<'_>, config: &PyAny) -> PyResult<PyObject> {
        self.begin(py)?;
        let cfg = config.call_method0(intern!(py, "normalized"))?;
        let qcfg = self.queue_cfg(cfg)?;
        if self.queues.contains_key(&qcfg.id) {
            return Err(self.conflict(
                py,
                format!("Queue {} exists already.", repr(py, &qcfg.id)),
                "id",
            ));
        }
        let qid = qcfg.id.clone();
        let queue = Queue {
            py_id: cfg.getattr(intern!(py, "id"))?.downcast::<PyString>()?.into(),
            ready: ReadyIndex::new(qcfg.strategy, qcfg.channels),
            listed: listed_of(&qcfg),
            expression: member_expression(py, &qcfg)?,
            cfg: qcfg,
            ordinal: self.next_queue_ordinal,
            members: Vec::new(),
            rr_last: -1,
            handle_times: Vec::new(),
            staffed_agents: 0,
            staffed_capacity: ChannelCounts::default(),
            waiting: Vec::new(),
            waiting_count: 0,
            scheduled: Vec::new(),
        };
        self.next_queue_ordinal += 1;
        self.queues.insert(qid.clone(), Box::new(queue));
        self.queue_order.push(qid.clone());
        self.emit_queue_config(py, intern!(py, "queue.created"), cfg)?;
        let candidates = self.candidate_members(&qid);
        self.sync_memberships(py, &qid, &candidates)?;
        self.finish(py)
    }

    /// Replace a queue's configuration; waiting interactions keep their place in line.
    fn update_queue(&mut self, py: Python<'_>, config: &PyAny) -> PyResult<PyObject> {
        self.begin(py)?;
        let cfg = config.call_method0(intern!(py, "normalized"))?;
        let qid = self.queue_id_of(py, cfg.getattr(intern!(py, "id"))?, "id")?;
        let qcfg = self.queue_cfg(cfg)?;
        for iid in self.ordered_ids() {
            let it = &self.interactions[iid];
            if it.entry(&qid).is_some() && !qcfg.channels.contains(it.channel) {
                return Err(self.conflict(
                    py,
                    format!(
                        "Interaction {} waits in {} on {}; the queue must keep that channel.",
                        repr(py, iid),
                        repr(py, &qid),
                        it.channel.name()
                    ),
                    "channels",
                ));
            }
        }
        let expression = member_expression(py, &qcfg)?;
        // Mutate: drop the derived indexes, swap the config, rebuild.
        let members: Vec<Id> = self.queues[&qid].members.iter().map(|m| m.0.clone()).collect();
        for aid in &members {
            self.drop_index_entries(aid, &qid);
        }
        let entries: Vec<Id> = self.ordered_ids()
            .filter(|iid| self.interactions[*iid].entry(&qid).is_some())
            .cloned()
            .collect();
        let index_of = |engine: &CompiledEngine, iid: &Id| -> usize {
            engine.interactions[iid]
                .entries
                .iter()
                .position(|e| e.queue_id == qid)
                .expect("entry")
        };
        for iid in &entries {
            let index = index_of(self, iid);
            if self.interactions[iid].entries[index].listed {
                self.unlist_entry(iid, index);
            }
        }
        let levels = qcfg.level_max_penalty.len();
        {
            let queue = self.queues.get_mut(&qid).expect("queue");
            queue.listed = listed_of(&qcfg);
            queue.ready = ReadyIndex::new(qcfg.strategy, qcfg.channels);
            queue.cfg = qcfg;
            queue.expression = expression;
            queue.waiting = Vec::new();
            queue.rr_last = -1;
        }
        for iid in &entries {
            let index = index_of(self, iid);
            let priority = self.effective_priority(py, iid, &qid)?;
            let key = self.wait_key(&qid, priority, iid);
            let it = self.interactions.get_mut(iid).expect("interaction");
            let entry = &mut it.entries[index];
            entry.level = entry.level.min(levels - 1);
            entry.priority = priority;
            entry.key = key;
            if it.state == InteractionState::Queued {
                self.list_entry(iid, index);
                self.work.push_back(Work::Interaction(iid.clone()));
            }
        }
        self.emit_queue_config(py, intern!(py, "queue.updated"), cfg)?;
        let mut seen: HashSet<Id> = members.iter().cloned().collect();
        let mut candidates = members.clone();
        for aid in self.candidate_members(&qid) {
            if seen.insert(aid.clone()) {
                candidates.push(aid);
            }
        }
        self.sync_memberships(py, &qid, &candidates)?;
        for aid in &members {
            self.reindex(aid);
        }
        self.finish(py)
    }

    /// Delete a queue that no interaction is waiting in or attached to.
    fn remove_queue(&mut self, py: Python<'_>, queue_id: &PyAny) -> PyResult<PyObject> {
        self.begin(py)?;
        let qid = self.queue_id_of(py, queue_id, "queue_id")?;
        for iid in self.ordered_ids() {
            let it = &self.interactions[iid];
            if it.queue_id == qid || it.entry(&qid).is_some() {
                return Err(self.conflict(
                    py,
                    format!(
                        "Queue {} still has interaction {}.",
                        repr(py, &qid),
                        repr(py, iid)
                    ),
                    "queue_id",
                ));
            }
        }
        let members: Vec<Id> = self.queues[&qid].members.iter().map(|m| m.0.clone()).collect();
        for aid in &members {
            self.set_membership(aid, &qid, None);
        }
        self.queues.remove(&qid);
        self.queue_order.retain(|q| *q != qid);
        let p = PyDict::new(py);
        p.set_item("queue_id", &*qid)?;
        self.emit(py, intern!(py, "queue.removed"), p)?;
        self.finish(py)
    }

    /// Register an agent (logged out) and work out its queue memberships.
    fn add_agent(&mut self, py: Python<'_>, config: &PyAny) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let cfg = config.call_method0(intern!(py, "normalized"))?;
        let acfg = self.agent_cfg(cfg)?;
        if self.agents.contains_key(&acfg.id) {
            return Err(self.conflict(
                py,
                format!("Agent {} exists already.", repr(py, &acfg.id)),
                "id",
            ));
        }
        let aid = acfg.id.clone();
        let agent = Agent {
            id: aid.clone(),
            py_id: cfg.getattr(intern!(py, "id"))?.downcast::<PyString>()?.into(),
            cfg: acfg,
            ordinal: self.next_agent_ordinal,
            state: AgentState::LoggedOut,
            reason: "created".to_string(),
            since: now,
            since_iso: None,
            logged_in_at: None,
            aux_reason: None,
            offer: None,
            interactions: Vec::new(),
            rings: Vec::new(),
            wrapups: Vec::new(),
            load: ChannelCounts::default(),
            consecutive_misses: 0,
            handled: 0,
            talk_us: 0,
            idle_since: now,
            queues: Vec::new(),
            index_keys: Vec::new(),
        };
        self.next_agent_ordinal += 1;
        self.agents.insert(aid.clone(), Box::new(agent));
        self.agent_order.push(aid.clone());
        let dict = self.refs.agent_config_to_dict.call1(py, (cfg,))?;
        self.emit_config(py, intern!(py, "agent.created"), "agent_id", &aid, dict)?;
        self.set_memberships(&aid);
        self.emit_agent_queues(py, &aid)?;
        self.finish(py)
    }

    /// Change an agent's name, skills, attributes or capacity (memberships follow).
    fn update_agent(&mut self, py: Python<'_>, config: &PyAny) -> PyResult<PyObject> {
        self.begin(py)?;
        let cfg = config.call_method0(intern!(py, "normalized"))?;
        let aid = self.agent_id_of(py, cfg.getattr(intern!(py, "id"))?, "id")?;
        let acfg = self.agent_cfg(cfg)?;
        let before = self.agents[&aid].queues.clone();
        let was_staffed = self.agents[&aid].staffed();
        if was_staffed {
            self.staff(&aid, -1);
        }
        self.agents.get_mut(&aid).expect("agent").cfg = acfg;
        if was_staffed {
            self.staff(&aid, 1);
        }
        let dict = self.refs.agent_config_to_dict.call1(py, (cfg,))?;
        self.emit_config(py, intern!(py, "agent.updated"), "agent_id", &aid, dict)?;
        self.set_memberships(&aid);
        // Compared as Python compares dicts: the same queues with the same terms, any order.
        let after = &self.agents[&aid].queues;
        let same = after.len() == before.len()
            && after.iter().all(|(q, m)| before.iter().any(|(b, n)| b == q && n == m));
        if !same {
            self.emit_agent_queues(py, &aid)?;
        }
        // Strategy keys (best-skill) may have changed: rebuild this agent's entries.
        let indexed: Vec<Id> = self.agents[&aid].index_keys.iter().map(|e| e.0.clone()).collect();
        for qid in &indexed {
            self.drop_index_entries(&aid, qid);
        }
        self.reindex(&aid);
        self.finish(py)
    }

    /// Delete a logged-out agent.
    fn remove_agent(&mut self, py: Python<'_>, agent_id: &PyAny) -> PyResult<PyObject> {
        self.begin(py)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let agent = &self.agents[&aid];
        if agent.logged_in_at.is_some() || !agent.wrapups.is_empty() {
            return Err(self.conflict(
                py,
                format!("Agent {} must be logged out first.", repr(py, &aid)),
                "agent_id",
            ));
        }
        let queues: Vec<Id> = agent.queues.iter().map(|m| m.0.clone()).collect();
        for qid in &queues {
            self.set_membership(&aid, qid, None);
        }
        self.agents.remove(&aid);
        self.agent_order.retain(|a| *a != aid);
        let p = PyDict::new(py);
        p.set_item("agent_id", &*aid)?;
        self.emit(py, intern!(py, "agent.removed"), p)?;
        self.finish(py)
    }

    /// The agent becomes a listed member of the queue (`penalty` = tier, `weight` for
    /// weighted-random), after the members listed already.
    #[args(agent_id, queue_id, "*", penalty = "zero()", weight = "one()")]
    fn join_queue(
        &mut self,
        py: Python<'_>,
        agent_id: &PyAny,
        queue_id: &PyAny,
        penalty: PyObject,
        weight: PyObject,
    ) -> PyResult<PyObject> {
        self.begin(py)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let qid = self.queue_id_of(py, queue_id, "queue_id")?;
        if self.queues[&qid].listed.contains_key(&aid) {
            return Err(self.conflict(
                py,
                format!(
                    "Agent {} is a member of queue {} already.",
                    repr(py, &aid),
                    repr(py, &qid)
                ),
                "agent_id",
            ));
        }
        let model = py.import(intern!(py, "sparklecomm.acd.model"))?;
        let member = model
            .getattr(intern!(py, "Member"))?
            .call1((&*aid, penalty.clone_ref(py), weight.clone_ref(py)))?;
        let old = self.queues[&qid].cfg.py.as_ref(py);
        let mut members: Vec<&PyAny> = old.getattr(intern!(py, "members"))?.iter()?.collect::<PyResult<_>>()?;
        members.push(member);
        let kwargs = PyDict::new(py);
        kwargs.set_item("members", PyTuple::new(py, members))?;
        let replace = py.import(intern!(py, "dataclasses"))?.getattr(intern!(py, "replace"))?;
        // normalized() checks the penalty and the weight.
        let cfg = replace
            .call((old,), Some(kwargs))?
            .call_method0(intern!(py, "normalized"))?;
        let p = PyDict::new(py);
        p.set_item("agent_id", &*aid)?;
        p.set_item("queue_id", &*qid)?;
        p.set_item("penalty", penalty)?;
        p.set_item("weight", weight)?;
        self.emit(py, intern!(py, "agent.queue_joined"), p)?;
        self.relist(py, &qid, cfg)?;
        self.finish(py)
    }

    /// The agent stops being a listed member of the queue (work in progress is unaffected);
    /// refused when not listed, or a member through the queue's member expression anyway.
    fn leave_queue(&mut self, py: Python<'_>, agent_id: &PyAny, queue_id: &PyAny) -> PyResult<PyObject> {
        self.begin(py)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let qid = self.queue_id_of(py, queue_id, "queue_id")?;
        let queue = &self.queues[&qid];
        if !queue.listed.contains_key(&aid) {
            return Err(self.conflict(
                py,
                format!(
                    "Agent {} is not a listed member of queue {}.",
                    repr(py, &aid),
                    repr(py, &qid)
                ),
                "agent_id",
            ));
        }
        let agent = &self.agents[&aid];
        if let Some(expr) = &queue.expression {
            if expr.matches(&agent.cfg.skills, &agent.cfg.attributes, 0) {
                return Err(self.conflict(
                    py,
                    format!(
                        "Agent {} matches the member expression of queue {} and would stay a \
                         member; change the expression or the agent's skills.",
                        repr(py, &aid),
                        repr(py, &qid)
                    ),
                    "agent_id",
                ));
            }
        }
        let old = queue.cfg.py.as_ref(py);
        let mut members: Vec<&PyAny> = Vec::new();
        for m in old.getattr(intern!(py, "members"))?.iter()? {
            let m = m?;
            if m.getattr(intern!(py, "agent_id"))?.extract::<&str>()? != &*aid {
                members.push(m);
            }
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item("members", PyTuple::new(py, members))?;
        let replace = py.import(intern!(py, "dataclasses"))?.getattr(intern!(py, "replace"))?;
        let cfg = replace.call((old,), Some(kwargs))?;
        let p = PyDict::new(py);
        p.set_item("agent_id", &*aid)?;
        p.set_item("queue_id", &*qid)?;
        self.emit(py, intern!(py, "agent.queue_left"), p)?;
        self.relist(py, &qid, cfg)?;
        self.finish(py)
    }
}
