//! Agent state commands (logout, breaks), offers declined, wrap-up ended by the agent,
//! hold / resume and abandoned interactions (engine.py's counterparts).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use super::{repr, CompiledEngine, USF};
use crate::model::*;

impl CompiledEngine {
    /// The active interaction and its owner (`answered`: the owner must be talking, not still
    /// ringing).
    pub(super) fn owned_active(
        &self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
        answered: bool,
    ) -> PyResult<(Id, Id)> {
        let iid = self.interaction_id_of(py, interaction_id)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let it = &self.interactions[&iid];
        if it.state != InteractionState::Active {
            return Err(self.conflict(
                py,
                format!(
                    "Interaction {} is {}, not connected to an agent.",
                    repr(py, &iid),
                    it.state.name()
                ),
                "interaction_id",
            ));
        }
        if it.agent_id.as_ref() != Some(&aid) {
            return Err(self.permission(
                py,
                format!(
                    "Interaction {} is handled by another agent, not {}.",
                    repr(py, &iid),
                    repr(py, &aid)
                ),
                "agent_id",
            ));
        }
        if answered && self.agents[&aid].rings.contains(&iid) {
            return Err(self.conflict(
                py,
                format!(
                    "Agent {} has not answered interaction {} yet: its phone still rings.",
                    repr(py, &aid),
                    repr(py, &iid)
                ),
                "agent_id",
            ));
        }
        Ok((iid, aid))
    }

    pub(super) fn check_offer(&self, py: Python<'_>, iid: &Id, aid: &Id) -> PyResult<()> {
        let it = &self.interactions[iid];
        if it.state != InteractionState::Offered {
            return Err(self.conflict(
                py,
                format!(
                    "Interaction {} is {}, not being offered.",
                    repr(py, iid),
                    it.state.name()
                ),
                "interaction_id",
            ));
        }
        if !it.offers.iter().any(|o| &o.agent_id == aid) {
            return Err(self.permission(
                py,
                format!(
                    "Interaction {} is not offered to agent {}.",
                    repr(py, iid),
                    repr(py, aid)
                ),
                "agent_id",
            ));
        }
        Ok(())
    }

    /// 1-based place in its queue (0 while offered, None when connected).
    pub(super) fn position_of(&self, iid: &Id, same_channel: bool) -> Option<i64> {
        let it = &self.interactions[iid];
        match it.state {
            InteractionState::Offered => return Some(0),
            InteractionState::Active => return None,
            _ => {}
        }
        let entry = it.entry(&it.queue_id)?;
        let queue = &self.queues[&it.queue_id];
        let mut ahead = 0i64;
        for (ch, lists) in &queue.waiting {
            if same_channel && *ch != it.channel {
                continue;
            }
            for keys in lists {
                if !keys.is_empty() {
                    ahead += keys.rank(&entry.key) as i64;
                }
            }
        }
        Some(ahead + 1)
    }

    fn pending_break_conflict(&self, py: Python<'_>, aid: &Id) -> PyResult<()> {
        if self.agents[aid].logged_in_at.is_none() {
            return Err(self.conflict(
                py,
                format!("Agent {} is not logged in.", repr(py, aid)),
                "agent_id",
            ));
        }
        Ok(())
    }
}

#[pymethods]
impl CompiledEngine {
    /// Log an agent out. Refused while it has an offer, an interaction or wrap-up.
    #[args(reason = "None")]
    fn logout(&mut self, py: Python<'_>, agent_id: &PyAny, reason: Option<&PyAny>) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let reason: &PyAny = reason.unwrap_or_else(|| PyString::new(py, "logout"));
        self.check_reason(py, reason, "reason")?;
        let reason: String = reason.extract()?;
        self.pending_break_conflict(py, &aid)?;
        let agent = &self.agents[&aid];
        if agent.offer.is_some() || !agent.interactions.is_empty() || !agent.wrapups.is_empty() {
            return Err(self.conflict(
                py,
                format!(
                    "Agent {} still has work (offer, interaction or wrap-up).",
                    repr(py, &aid)
                ),
                "agent_id",
            ));
        }
        let session = now - agent.logged_in_at.expect("logged in");
        if agent.staffed() {
            self.staff(&aid, -1);
        }
        let agent = self.agents.get_mut(&aid).expect("agent");
        agent.logged_in_at = None;
        agent.aux_reason = None;
        let p = PyDict::new(py);
        p.set_item("agent_id", &*aid)?;
        p.set_item("reason", &reason)?;
        p.set_item("session_seconds", session as f64 / USF)?;
        p.set_item("handled", agent.handled)?;
        p.set_item("talk_seconds", agent.talk_us as f64 / USF)?;
        self.emit(py, intern!(py, "agent.logged_out"), p)?;
        self.refresh(py, &aid, &reason)?;
        self.finish(py)
    }

    /// Put an agent on break (aux) with a reason code; with work in progress the break starts
    /// when the work (and wrap-up) ends. A pending offer is withdrawn.
    fn set_break(&mut self, py: Python<'_>, agent_id: &PyAny, reason: &PyAny) -> PyResult<PyObject> {
        self.begin(py)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        self.check_reason(py, reason, "reason")?;
        let reason: String = reason.extract()?;
        if let Some(allowed) = &self.break_reasons {
            if !allowed.contains(&reason) {
                let mut names: Vec<&String> = allowed.iter().collect();
                names.sort();
                let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
                return Err(self.invalid(
                    py,
                    format!(
                        "Unknown break reason {}; allowed: {}.",
                        repr(py, &reason),
                        names.join(", ")
                    ),
                    "reason",
                ));
            }
        }
        self.pending_break_conflict(py, &aid)?;
        if self.agents[&aid].aux_reason.as_deref() == Some(reason.as_str()) {
            return Err(self.conflict(
                py,
                format!("Agent {} is on break ({}) already.", repr(py, &aid), reason),
                "reason",
            ));
        }
        if self.agents[&aid].staffed() {
            self.staff(&aid, -1);
        }
        self.agents.get_mut(&aid).expect("agent").aux_reason = Some(reason.clone());
        if let Some(iid) = self.agents[&aid].offer.clone() {
            self.withdraw(py, &iid, &aid, "agent_break")?; // reserved -> break directly
            if self.interactions[&iid].offers.is_empty() {
                self.return_to_queue(py, &iid)?;
            }
        }
        let agent = &self.agents[&aid];
        if !agent.interactions.is_empty() || !agent.wrapups.is_empty() {
            let p = PyDict::new(py);
            p.set_item("agent_id", &*aid)?;
            p.set_item("reason", &reason)?;
            self.emit(py, intern!(py, "agent.break_scheduled"), p)?;
        }
        self.refresh(py, &aid, &reason)?;
        self.finish(py)
    }

    /// End an agent's break (or cancel a scheduled one).
    #[args(reason = "None")]
    fn set_available(
        &mut self,
        py: Python<'_>,
        agent_id: &PyAny,
        reason: Option<&PyAny>,
    ) -> PyResult<PyObject> {
        self.begin(py)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let reason: &PyAny = reason.unwrap_or_else(|| PyString::new(py, "ready"));
        self.check_reason(py, reason, "reason")?;
        let reason: String = reason.extract()?;
        self.pending_break_conflict(py, &aid)?;
        if self.agents[&aid].aux_reason.is_none() {
            return Err(self.conflict(
                py,
                format!("Agent {} is not on break.", repr(py, &aid)),
                "agent_id",
            ));
        }
        let agent = self.agents.get_mut(&aid).expect("agent");
        agent.aux_reason = None;
        agent.consecutive_misses = 0;
        self.staff(&aid, 1);
        self.refresh(py, &aid, &reason)?;
        self.finish(py)
    }

    /// Replace the allowed break reason codes (None: any); emits nothing.
    fn set_break_reasons(&mut self, py: Python<'_>, reasons: &PyAny) -> PyResult<PyObject> {
        self.begin(py)?;
        // The Python EngineConfig checks the codes (same errors): replace(config, ...).
        let codes: PyObject = if reasons.is_none() || reasons.is_instance_of::<PyString>()? {
            reasons.into()
        } else {
            py.import("builtins")?.getattr("frozenset")?.call1((reasons,))?.into()
        };
        let kwargs = PyDict::new(py);
        kwargs.set_item("break_reasons", codes)?;
        let replace = py.import("dataclasses")?.getattr("replace")?;
        let config = replace.call((self.engine_config.as_ref(py),), Some(kwargs))?;
        let config = config.call_method0("normalized")?;
        self.engine_config = config.into();
        let allowed = config.getattr("break_reasons")?;
        self.break_reasons = if allowed.is_none() {
            None
        } else {
            let mut set = std::collections::HashSet::new();
            for code in allowed.iter()? {
                set.insert(code?.extract::<String>()?);
            }
            Some(set)
        };
        self.finish(py)
    }

    /// The agent declines its offer; the interaction goes to the next agent.
    #[args(reason = "None")]
    fn reject(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
        reason: Option<&PyAny>,
    ) -> PyResult<PyObject> {
        self.begin(py)?;
        let iid = self.interaction_id_of(py, interaction_id)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let reason: &PyAny = reason.unwrap_or_else(|| PyString::new(py, "rejected"));
        self.check_reason(py, reason, "reason")?;
        self.check_offer(py, &iid, &aid)?;
        let offer = self.end_offer(&iid, &aid);
        let p = self.interaction_payload(py, &iid, Some(&aid), &offer.queue_id)?;
        p.set_item(intern!(py, "reason"), reason)?;
        p.set_item(
            intern!(py, "ring_seconds"),
            (self.now - offer.offered_at) as f64 / USF,
        )?;
        self.emit(py, intern!(py, "interaction.rejected"), p)?;
        self.exclude(&iid, &aid, &offer.queue_id);
        let mut state_reason = "rejected".to_string();
        if self.reject_counts_as_miss {
            state_reason = self.count_miss(&aid, &state_reason);
        }
        self.refresh(py, &aid, &state_reason)?;
        if self.interactions[&iid].offers.is_empty() {
            self.return_to_queue(py, &iid)?;
        }
        self.finish(py)
    }

    /// The agent ends its wrap-up early (or the only way, when the timer is off).
    fn end_wrapup(&mut self, py: Python<'_>, interaction_id: &PyAny, agent_id: &PyAny) -> PyResult<PyObject> {
        self.begin(py)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let found = interaction_id
            .downcast::<PyString>()
            .ok()
            .and_then(|s| s.to_str().ok())
            .and_then(|s| {
                self.agents[&aid]
                    .wrapups
                    .iter()
                    .find(|w| &*w.interaction_id == s)
                    .map(|w| w.interaction_id.clone())
            });
        let iid = match found {
            Some(i) => i,
            None => {
                return Err(self.conflict(
                    py,
                    format!(
                        "Agent {} is not wrapping up interaction {}.",
                        agent_id.repr()?,
                        interaction_id.repr()?
                    ),
                    "interaction_id",
                ))
            }
        };
        self.close_wrapup(py, &aid, &iid, "agent", "wrapup_ended")?;
        self.finish(py)
    }

    /// The customer left while waiting, while being offered, or cancelled a callback.
    #[args(reason = "None")]
    fn abandon(&mut self, py: Python<'_>, interaction_id: &PyAny, reason: Option<&PyAny>) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let iid = self.interaction_id_of(py, interaction_id)?;
        let reason: &PyAny = reason.unwrap_or_else(|| PyString::new(py, "hangup"));
        self.check_reason(py, reason, "reason")?;
        let it = &self.interactions[&iid];
        if it.state == InteractionState::Active {
            return Err(self.conflict(
                py,
                format!(
                    "Interaction {} is connected; the agent completes it.",
                    repr(py, &iid)
                ),
                "interaction_id",
            ));
        }
        let state = it.state;
        let position = self.position_of(&iid, false);
        let entered = it.entry(&it.queue_id).map(|e| e.entered_at);
        let offered: Vec<Id> = it.offers.iter().map(|o| o.agent_id.clone()).collect();
        for aid in &offered {
            self.withdraw(py, &iid, aid, "abandoned")?;
        }
        let it = &self.interactions[&iid];
        let qid = it.queue_id.clone();
        let sl = self.queues[&qid].cfg.service_level_seconds;
        let queued_at = it.queued_at;
        let original = it.original_channel.map(|c| c.name());
        let p = self.interaction_payload(py, &iid, None, &qid)?;
        p.set_item(intern!(py, "reason"), reason)?;
        p.set_item(intern!(py, "state"), state.name())?;
        p.set_item(intern!(py, "position"), position)?;
        p.set_item(intern!(py, "wait_seconds"), (now - queued_at) as f64 / USF)?;
        p.set_item(
            intern!(py, "queue_wait_seconds"),
            entered.map(|e| (now - e) as f64 / USF),
        )?;
        p.set_item(intern!(py, "service_level_seconds"), sl)?;
        p.set_item(intern!(py, "original_channel"), original)?;
        self.emit(py, intern!(py, "interaction.abandoned"), p)?;
        self.drop_interaction(&iid);
        self.finish(py)
    }

    /// Put the customer on hold (hold time is reported per agent leg).
    fn hold(&mut self, py: Python<'_>, interaction_id: &PyAny, agent_id: &PyAny) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let (iid, aid) = self.owned_active(py, interaction_id, agent_id, true)?;
        if self.interactions[&iid].hold_started_at.is_some() {
            return Err(self.conflict(
                py,
                format!("Interaction {} is on hold already.", repr(py, &iid)),
                "interaction_id",
            ));
        }
        self.interactions.get_mut(&iid).expect("interaction").hold_started_at = Some(now);
        let qid = self.interactions[&iid].queue_id.clone();
        let p = self.interaction_payload(py, &iid, Some(&aid), &qid)?;
        self.emit(py, intern!(py, "interaction.held"), p)?;
        self.finish(py)
    }

    /// Take the customer off hold.
    fn resume(&mut self, py: Python<'_>, interaction_id: &PyAny, agent_id: &PyAny) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let (iid, aid) = self.owned_active(py, interaction_id, agent_id, true)?;
        let it = self.interactions.get_mut(&iid).expect("interaction");
        let started = match it.hold_started_at {
            Some(s) => s,
            None => {
                return Err(self.conflict(
                    py,
                    format!("Interaction {} is not on hold.", repr(py, &iid)),
                    "interaction_id",
                ))
            }
        };
        let held = now - started;
        it.leg_hold_us += held;
        it.hold_started_at = None;
        let qid = it.queue_id.clone();
        let p = self.interaction_payload(py, &iid, Some(&aid), &qid)?;
        p.set_item(intern!(py, "hold_seconds"), held as f64 / USF)?;
        self.emit(py, intern!(py, "interaction.resumed"), p)?;
        self.finish(py)
    }

    /// Place in line: 1 = next; 0 while being offered; None once connected.
    fn position(&mut self, py: Python<'_>, interaction_id: &PyAny) -> PyResult<Option<i64>> {
        self.query_now(py)?;
        let iid = self.interaction_id_of(py, interaction_id)?;
        Ok(self.position_of(&iid, false))
    }
}
