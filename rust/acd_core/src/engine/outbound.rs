//! Outbound contacts and queued callbacks (engine.py's `start_outbound`,
//! `outbound_refusal`, `request_callback`, `callback_failed` and the callback timer).
//!
//! An outbound contact is connected to the agent that starts it and never queued; a
//! callback is a waiting interaction turned into an outbound call the agent places, which
//! keeps its place in line and may wait, SCHEDULED, until the time the customer chose.


use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::{repr, seconds_to_us, CompiledEngine, Given, Work, USF};
use crate::model::*;
use crate::types::Channel;

impl CompiledEngine {
    /// Capacity alone (not state): whether the agent could carry one more `channel`.
    fn has_room(agent: &Agent, channel: Channel) -> bool {
        let load = &agent.load;
        if load.get(channel) >= agent.cfg.capacity_of(channel) {
            return false;
        }
        if !agent.cfg.voice_blocks_other_channels
            || matches!(channel, Channel::Voice | Channel::Callback)
        {
            return true;
        }
        load.get(Channel::Voice) == 0 && load.get(Channel::Callback) == 0
    }

    /// Why `start_outbound` would refuse the agent a `channel` contact now (None: it would
    /// not).
    fn outbound_refusal_of(&self, py: Python<'_>, aid: &Id, channel: Channel) -> Option<String> {
        let agent = &self.agents[aid];
        if agent.logged_in_at.is_none() {
            return Some(format!("Agent {} is not logged in.", repr(py, aid)));
        }
        if agent.offer.is_some() {
            return Some(format!(
                "Agent {} has an offer ringing: accept or reject it first.",
                repr(py, aid)
            ));
        }
        if !Self::has_room(agent, channel) {
            let busy = if agent.wrapups.is_empty() {
                "is busy"
            } else {
                "is wrapping up: end the wrap-up first"
            };
            return Some(format!(
                "Agent {} {} (no room for another {} interaction).",
                repr(py, aid),
                busy,
                channel.name()
            ));
        }
        None
    }

    /// The callback waits until `due` (SCHEDULED, keeping its place) or is routed now.
    fn schedule_callback(&mut self, iid: &Id, qid: &Id, due: i64) {
        let it = self.interactions.get_mut(iid).expect("interaction");
        if due > self.now {
            it.state = InteractionState::Scheduled;
            it.callback_due_at = Some(due);
            let queue = self.queues.get_mut(qid).expect("queue");
            if !queue.scheduled.contains(iid) {
                queue.scheduled.push(iid.clone());
            }
            self.set_it_timer(
                iid,
                "callback".to_string(),
                due,
                TimerKind::Callback,
                iid.clone(),
                Id::from(""),
            );
        } else {
            it.state = InteractionState::Queued;
            it.callback_due_at = None;
            self.list_all(iid);
            self.work.push_back(Work::Interaction(iid.clone()));
        }
    }

    /// The callback timer: the callback joins the waiting lists in its old place.
    pub(super) fn on_callback_due(&mut self, py: Python<'_>, iid: &Id) -> PyResult<()> {
        let it = self.interactions.get_mut(iid).expect("interaction");
        it.take_timer("callback");
        let qid = it.queue_id.clone();
        it.state = InteractionState::Queued;
        it.callback_due_at = None;
        let attempt = it.callback_attempts + 1;
        let queued_at = it.queued_at;
        if let Some(queue) = self.queues.get_mut(&qid) {
            queue.scheduled.retain(|i| i != iid);
        }
        self.list_all(iid);
        let position = self.position_of(iid, false);
        let p = self.interaction_payload(py, iid, None, &qid)?;
        p.set_item(intern!(py, "attempt"), attempt)?;
        p.set_item(intern!(py, "position"), position)?;
        p.set_item(
            intern!(py, "wait_seconds"),
            (self.now - queued_at) as f64 / USF,
        )?;
        self.emit(py, intern!(py, "callback.due"), p)?;
        self.work.push_back(Work::Interaction(iid.clone()));
        Ok(())
    }
}

#[pymethods]
impl CompiledEngine {
    /// The agent starts a contact: it is connected to them at once, never queued
    /// (engine.py `start_outbound`).
    #[args(
        queue_id = "None",
        channel = "Given::missing()",
        "*",
        customer_id = "None",
        attributes = "None"
    )]
    #[allow(clippy::too_many_arguments)]
    fn start_outbound(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
        queue_id: Option<&PyAny>,
        channel: Given<'_>,
        customer_id: Option<&PyAny>,
        attributes: Option<&PyAny>,
    ) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let (iid, py_id) = self.check_new_id(py, interaction_id)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let ch = match channel.0 {
            Some(value) => self.parse_channel(py, value)?,
            None => Channel::Voice,
        };
        let qid = match queue_id {
            Some(q) => self.queue_id_of(py, q, "queue_id")?,
            None => {
                let found = self.agents[&aid]
                    .queues
                    .iter()
                    .find(|(q, _)| self.queues[q].cfg.channels.contains(ch))
                    .map(|(q, _)| q.clone());
                match found {
                    Some(q) => q,
                    None => {
                        return Err(self.invalid(
                            py,
                            format!(
                                "Agent {} is in no queue that takes {}: name the queue to \
                                 report this contact under.",
                                repr(py, &aid),
                                ch.name()
                            ),
                            "queue_id",
                        ))
                    }
                }
            }
        };
        if !self.queues[&qid].cfg.channels.contains(ch) {
            return Err(self.invalid(
                py,
                format!(
                    "Queue {} does not take {} interactions.",
                    repr(py, &qid),
                    ch.name()
                ),
                "channel",
            ));
        }
        let customer = self.check_customer(py, customer_id)?;
        let attrs = self.check_attributes(py, attributes)?;
        if let Some(refusal) = self.outbound_refusal_of(py, &aid, ch) {
            return Err(self.conflict(py, refusal, "agent_id"));
        }
        let expression = self.compile(py, "", "required_skills")?;
        let skills: Py<PyString> = PyString::new(py, "").into();
        let mut it = self.new_interaction(
            py,
            &iid,
            &py_id,
            ch,
            &qid,
            (0, skills.clone_ref(py), expression),
            (customer.clone_ref(py), attrs.clone_ref(py)),
        );
        it.connect_owner(&aid, now);
        it.direction = "outbound";
        self.add_interaction(it);
        let agent = self.agents.get_mut(&aid).expect("agent");
        agent.interactions.push((iid.clone(), ch));
        agent.load.add(ch, 1);
        let p = self.interaction_payload(py, &iid, Some(&aid), &qid)?;
        p.set_item(intern!(py, "priority"), 0)?;
        p.set_item(intern!(py, "required_skills"), skills)?;
        p.set_item(intern!(py, "customer_id"), customer)?;
        p.set_item(intern!(py, "attributes"), attrs)?;
        p.set_item(intern!(py, "created_at"), self.iso(py)?)?;
        p.set_item(intern!(py, "direction"), "outbound")?;
        self.emit(py, intern!(py, "interaction.created"), p)?;
        let sl = self.queues[&qid].cfg.service_level_seconds;
        let p = self.interaction_payload(py, &iid, Some(&aid), &qid)?;
        p.set_item(intern!(py, "kind"), "outbound")?;
        p.set_item(intern!(py, "wait_seconds"), 0.0)?;
        p.set_item(intern!(py, "queue_wait_seconds"), 0.0)?;
        p.set_item(intern!(py, "ring_seconds"), 0.0)?;
        p.set_item(intern!(py, "service_level_seconds"), sl)?;
        p.set_item(intern!(py, "within_service_level"), true)?;
        p.set_item(intern!(py, "attempt"), 0)?;
        self.emit(py, intern!(py, "interaction.accepted"), p)?;
        self.refresh(py, &aid, "outbound")?;
        self.finish(py)
    }

    /// Why `start_outbound` would refuse `agent_id` a `channel` contact right now (None: it
    /// would not).
    #[args(channel = "Given::missing()")]
    fn outbound_refusal(
        &mut self,
        py: Python<'_>,
        agent_id: &PyAny,
        channel: Given<'_>,
    ) -> PyResult<Option<String>> {
        self.query_now(py)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let ch = match channel.0 {
            Some(value) => self.parse_channel(py, value)?,
            None => Channel::Voice,
        };
        Ok(self.outbound_refusal_of(py, &aid, ch))
    }

    /// A waiting customer asks to be called back; it keeps its place in line (engine.py
    /// `request_callback`).
    #[args("*", phone = "None", at = "None")]
    fn request_callback(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        phone: Option<&PyAny>,
        at: Option<&PyAny>,
    ) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let iid = self.interaction_id_of(py, interaction_id)?;
        let it = &self.interactions[&iid];
        if it.state != InteractionState::Queued {
            return Err(self.conflict(
                py,
                format!(
                    "Only a waiting interaction can ask for a callback ({} is {}).",
                    repr(py, &iid),
                    it.state.name()
                ),
                "interaction_id",
            ));
        }
        if it.channel == Channel::Callback {
            return Err(self.conflict(
                py,
                format!("Interaction {} is a callback already.", repr(py, &iid)),
                "interaction_id",
            ));
        }
        let qid = it.queue_id.clone();
        let queue = &self.queues[&qid];
        let policy = queue.cfg.callback.clone();
        if !policy.enabled || !queue.cfg.channels.contains(Channel::Callback) {
            return Err(self.conflict(
                py,
                format!("Queue {} does not offer callbacks.", repr(py, &qid)),
                "queue_id",
            ));
        }
        let phone_text: Option<String> = match phone {
            None => None,
            Some(p) => match p.downcast::<PyString>() {
                Ok(s) if (1..=64).contains(&s.len()?) => Some(s.to_string_lossy().into_owned()),
                _ => {
                    return Err(self.invalid(
                        py,
                        "phone must be a string of 1 to 64 characters.".into(),
                        "phone",
                    ))
                }
            },
        };
        let mut due = now;
        if let Some(at) = at {
            let aware = at.is_instance(
                self.refs
                    .datetime_type
                    .as_ref(py)
                    .downcast::<pyo3::types::PyType>()?,
            )? && !at.getattr(intern!(py, "tzinfo"))?.is_none();
            if !aware {
                return Err(self.invalid(py, "at must be a timezone-aware datetime.".into(), "at"));
            }
            let at_us: i64 = self.refs.to_us.call1(py, (at,))?.extract(py)?;
            due = now.max(at_us);
            if due - now > seconds_to_us(policy.max_delay_seconds) {
                let limit = pyo3::types::PyFloat::new(py, policy.max_delay_seconds)
                    .call_method1(intern!(py, "__format__"), ("g",))?;
                return Err(self.invalid(
                    py,
                    format!("A callback can be at most {limit} seconds ahead."),
                    "at",
                ));
            }
        }
        // Mutate.
        let position = self.position_of(&iid, false);
        self.unlist_all(&iid);
        let it = self.interactions.get_mut(&iid).expect("interaction");
        let original = it.channel;
        it.original_channel = Some(original);
        it.channel = Channel::Callback;
        it.callback_phone = phone_text;
        let mut cancelled: Vec<u64> = it.take_timer("max_wait").into_iter().collect();
        let others: Vec<Id> = it
            .entries
            .iter()
            .map(|e| e.queue_id.clone())
            .filter(|q| *q != qid)
            .collect();
        for other in others {
            if !self.queues[&other].cfg.channels.contains(Channel::Callback) {
                let it = self.interactions.get_mut(&iid).expect("interaction");
                it.entries.retain(|e| e.queue_id != other);
                if let Some(tid) = it.take_timer(&format!("relax:{other}")) {
                    cancelled.push(tid);
                }
            }
        }
        for tid in cancelled {
            self.cancel(tid);
        }
        let queued_at = self.interactions[&iid].queued_at;
        let due_at = self.from_us_iso(py, due)?;
        let p = self.interaction_payload(py, &iid, None, &qid)?;
        p.set_item(intern!(py, "original_channel"), original.name())?;
        p.set_item(intern!(py, "phone"), phone)?;
        p.set_item(intern!(py, "due_at"), due_at)?;
        p.set_item(intern!(py, "wait_seconds"), (now - queued_at) as f64 / USF)?;
        p.set_item(intern!(py, "position"), position)?;
        self.emit(py, intern!(py, "interaction.callback_requested"), p)?;
        self.schedule_callback(&iid, &qid, due);
        self.finish(py)
    }

    /// The agent's call to the customer did not connect; retry per the queue's policy
    /// (engine.py `callback_failed`).
    #[args(reason = "Given::missing()")]
    fn callback_failed(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
        reason: Given<'_>,
    ) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let (iid, aid) = self.owned_active(py, interaction_id, agent_id, false)?;
        let reason: &PyAny = reason.0.unwrap_or_else(|| PyString::new(py, "no_answer"));
        self.check_reason(py, reason, "reason")?;
        let it = &self.interactions[&iid];
        if it.channel != Channel::Callback {
            return Err(self.conflict(
                py,
                format!("Interaction {} is not a callback.", repr(py, &iid)),
                "interaction_id",
            ));
        }
        if it.participants.len() > 1 {
            return Err(self.conflict(
                py,
                "End the consultation or conference first.".into(),
                "interaction_id",
            ));
        }
        let qid = it.queue_id.clone();
        let policy = self.queues[&qid].cfg.callback.clone();
        let (talk, _hold) = self.close_leg(&iid);
        self.detach_owner(&iid);
        let it = self.interactions.get_mut(&iid).expect("interaction");
        it.callback_attempts += 1;
        let attempts = it.callback_attempts;
        let ch = it.channel;
        let agent = self.agents.get_mut(&aid).expect("agent");
        agent.interactions.retain(|(i, _)| *i != iid);
        agent.rings.retain(|i| *i != iid);
        agent.load.add(ch, -1);
        agent.talk_us += talk;
        let retry = attempts < policy.max_attempts;
        let due = now + seconds_to_us(policy.retry_delay_seconds);
        let retry_at: Option<PyObject> = if retry {
            Some(self.from_us_iso(py, due)?)
        } else {
            None
        };
        let p = self.interaction_payload(py, &iid, Some(&aid), &qid)?;
        p.set_item(intern!(py, "attempt"), attempts)?;
        p.set_item(intern!(py, "reason"), reason)?;
        p.set_item(intern!(py, "retry_at"), retry_at)?;
        self.emit(py, intern!(py, "callback.attempt_failed"), p)?;
        if retry {
            let entry = self.new_entry(py, &iid, &qid)?;
            self.interactions
                .get_mut(&iid)
                .expect("interaction")
                .entries = vec![entry];
            self.schedule_entry_timers(&iid, &qid, 0, true);
            self.schedule_callback(&iid, &qid, due);
        } else {
            let p = self.interaction_payload(py, &iid, None, &qid)?;
            p.set_item(intern!(py, "attempts"), attempts)?;
            self.emit(py, intern!(py, "callback.exhausted"), p)?;
            self.drop_interaction(&iid);
        }
        self.refresh(py, &aid, "callback_failed")?;
        self.finish(py)
    }
}
