//! Transfers, consultation and conference (engine.py's `transfer`, `consult`,
//! `consult_connected`, `conference`, `leave`, `end_consult` and their helpers).
//!
//! A blind transfer ends the owner's leg and offers the interaction to another agent, or
//! queues it again; a transfer to a number ends it for routing. A consultation or conference
//! brings other agents onto the active interaction as participants; a consult transfer (or
//! the owner leaving) hands ownership to one of them. These are rare commands next to the
//! routing lifecycle: they favour clarity over speed.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyLong};

use super::{repr, CompiledEngine, Given, MAX_PRIORITY, USF};
use crate::model::*;
use crate::types::Channel;

impl CompiledEngine {
    /// A blind transfer needs the owner alone on the interaction.
    fn alone(&self, py: Python<'_>, iid: &Id, owner: &Id, what: &str, field: &str) -> PyResult<()> {
        if self.interactions[iid]
            .participants
            .iter()
            .any(|(a, _)| a != owner)
        {
            return Err(self.conflict(
                py,
                format!("End the consultation or conference before {what}."),
                field,
            ));
        }
        Ok(())
    }

    /// The owner's leg ends by a blind transfer (or one out of routing: `to_number`):
    /// `interaction.transferred`; returns the leg's (talk us, hold us).
    fn leg_transferred(
        &mut self,
        py: Python<'_>,
        iid: &Id,
        aid: &Id,
        to_agent_id: Option<&Id>,
        to_queue_id: Option<&Id>,
        to_number: Option<&str>,
    ) -> PyResult<(i64, i64)> {
        let (talk, hold) = self.close_leg(iid);
        let qid = self.interactions[iid].queue_id.clone();
        let p = self.interaction_payload(py, iid, Some(aid), &qid)?;
        p.set_item(intern!(py, "to_agent_id"), to_agent_id.map(|a| &**a))?;
        p.set_item(intern!(py, "to_queue_id"), to_queue_id.map(|q| &**q))?;
        let kind = if to_number.is_some() {
            "external"
        } else {
            "blind"
        };
        p.set_item(intern!(py, "kind"), kind)?;
        p.set_item(intern!(py, "talk_seconds"), talk as f64 / USF)?;
        p.set_item(intern!(py, "hold_seconds"), hold as f64 / USF)?;
        if let Some(number) = to_number {
            p.set_item(intern!(py, "to_number"), number)?;
        }
        self.emit(py, intern!(py, "interaction.transferred"), p)?;
        Ok((talk, hold))
    }

    /// Transfer out of routing: the interaction is over for the engine.
    fn transfer_out(&mut self, py: Python<'_>, iid: &Id, aid: &Id, number: &str) -> PyResult<()> {
        self.alone(py, iid, aid, "a transfer to a number", "to_number")?;
        let (talk, hold) = self.leg_transferred(py, iid, aid, None, None, Some(number))?;
        let it = &self.interactions[iid];
        let qid = it.queue_id.clone();
        let ch = it.channel;
        let outbound = it.direction == "outbound";
        let original_channel = it.original_channel.map(|c| c.name());
        let planned: Option<f64> = match self.queues.get(&qid) {
            Some(q) => q.cfg.wrapup_seconds,
            None => Some(0.0),
        };
        let p = self.interaction_payload(py, iid, Some(aid), &qid)?;
        p.set_item(intern!(py, "disposition"), py.None())?;
        p.set_item(intern!(py, "talk_seconds"), talk as f64 / USF)?;
        p.set_item(intern!(py, "hold_seconds"), hold as f64 / USF)?;
        p.set_item(intern!(py, "wrapup_planned_seconds"), planned)?;
        p.set_item(intern!(py, "original_channel"), original_channel)?;
        p.set_item(intern!(py, "transferred_to"), number)?;
        self.emit(py, intern!(py, "interaction.completed"), p)?;
        self.drop_interaction(iid);
        self.start_wrapup(py, aid, iid, ch, &qid, talk, hold, "transferred", outbound)
    }

    /// Ownership passes to a consulted / conferenced agent; the old owner wraps up.
    fn hand_over(&mut self, py: Python<'_>, iid: &Id, owner: &Id, target: &Id) -> PyResult<()> {
        let role = self.interactions[iid]
            .participant(target)
            .expect("participant")
            .role;
        let (talk, hold) = self.close_leg(iid);
        let qid = self.interactions[iid].queue_id.clone();
        let p = self.interaction_payload(py, iid, Some(owner), &qid)?;
        p.set_item(intern!(py, "to_agent_id"), &**target)?;
        p.set_item(intern!(py, "to_queue_id"), py.None())?;
        p.set_item(intern!(py, "kind"), role.name())?;
        p.set_item(intern!(py, "talk_seconds"), talk as f64 / USF)?;
        p.set_item(intern!(py, "hold_seconds"), hold as f64 / USF)?;
        self.emit(py, intern!(py, "interaction.transferred"), p)?;
        let it = self.interactions.get_mut(iid).expect("interaction");
        it.participants.retain(|(a, _)| a != owner);
        let part = it.participant_mut(target).expect("participant");
        part.role = Role::Owner;
        if part.connected_at.is_none() {
            // Still ringing: no talk until it answers (consult_connected starts its leg).
            it.leg_started_at = None;
        }
        it.agent_id = Some(target.clone());
        let ch = it.channel;
        let outbound = it.direction == "outbound";
        self.start_wrapup(
            py,
            owner,
            iid,
            ch,
            &qid,
            talk,
            hold,
            "transferred",
            outbound,
        )
    }

    fn check_can_take(
        &self,
        py: Python<'_>,
        target: &Id,
        channel: Channel,
        field: &str,
    ) -> PyResult<()> {
        let agent = &self.agents[target];
        if !Self::routable_channels(agent).contains(channel) {
            return Err(self.conflict(
                py,
                format!(
                    "Agent {} cannot take a {} interaction now ({}).",
                    repr(py, target),
                    channel.name(),
                    agent.state.name()
                ),
                field,
            ));
        }
        Ok(())
    }

    fn join(&mut self, iid: &Id, target: &Id, role: Role, ringing: bool) {
        let now = self.now;
        let it = self.interactions.get_mut(iid).expect("interaction");
        let ch = it.channel;
        it.participants.push((
            target.clone(),
            Participant {
                role,
                joined_at: now,
                connected_at: if ringing { None } else { Some(now) },
            },
        ));
        let agent = self.agents.get_mut(target).expect("agent");
        agent.interactions.push((iid.clone(), ch));
        if ringing && !agent.rings.contains(iid) {
            agent.rings.push(iid.clone());
        }
        agent.load.add(ch, 1);
    }

    /// A participant other than the owner leaves the interaction (`participant_left`).
    pub(super) fn remove_participant(
        &mut self,
        py: Python<'_>,
        iid: &Id,
        aid: &Id,
        reason: &PyAny,
    ) -> PyResult<()> {
        let now = self.now;
        let it = self.interactions.get_mut(iid).expect("interaction");
        let pos = it
            .participants
            .iter()
            .position(|(a, _)| a == aid)
            .expect("participant");
        let (_, part) = it.participants.remove(pos);
        let ch = it.channel;
        let qid = it.queue_id.clone();
        let agent = self.agents.get_mut(aid).expect("agent");
        agent.interactions.retain(|(i, _)| i != iid);
        agent.load.add(ch, -1);
        let connected = part.connected_at;
        if connected.is_none() {
            // It never answered: all ringing, no talk.
            agent.rings.retain(|i| i != iid);
        }
        let talked_from = connected.unwrap_or(now);
        let p = self.interaction_payload(py, iid, Some(aid), &qid)?;
        p.set_item(intern!(py, "role"), part.role.name())?;
        p.set_item(intern!(py, "reason"), reason)?;
        p.set_item(intern!(py, "seconds"), (now - talked_from) as f64 / USF)?;
        p.set_item(
            intern!(py, "ring_seconds"),
            (talked_from - part.joined_at) as f64 / USF,
        )?;
        p.set_item(intern!(py, "connected"), connected.is_some())?;
        self.emit(py, intern!(py, "interaction.participant_left"), p)?;
        self.refresh(py, aid, "left_interaction")
    }

    /// engine.py `_check_priority`.
    fn transfer_priority(&self, py: Python<'_>, p: &PyAny) -> PyResult<i64> {
        if !p.is_instance_of::<PyLong>()? || p.is_instance_of::<PyBool>()? {
            return Err(self.invalid(py, "priority must be an integer.".into(), "priority"));
        }
        match p.extract::<i64>().ok() {
            Some(v) if (0..=MAX_PRIORITY).contains(&v) => Ok(v),
            _ => Err(self.invalid(
                py,
                format!("priority must be an integer from 0 to {MAX_PRIORITY}."),
                "priority",
            )),
        }
    }
}

#[pymethods]
impl CompiledEngine {
    /// Hand the interaction over: to an agent (a consult transfer to a participant, a blind
    /// transfer otherwise), to a queue, or out of routing to a number. The transferring
    /// agent's leg ends and it wraps up.
    #[args(
        "*",
        to_agent_id = "None",
        to_queue_id = "None",
        to_number = "None",
        priority = "None"
    )]
    #[allow(clippy::too_many_arguments)]
    fn transfer(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
        to_agent_id: Option<&PyAny>,
        to_queue_id: Option<&PyAny>,
        to_number: Option<&PyAny>,
        priority: Option<&PyAny>,
    ) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let (iid, aid) = self.owned_active(py, interaction_id, agent_id, true)?;
        let given = [to_agent_id, to_queue_id, to_number]
            .iter()
            .filter(|t| t.is_some())
            .count();
        if given != 1 {
            return Err(self.invalid(
                py,
                "Give exactly one of to_agent_id, to_queue_id and to_number.".into(),
                "to",
            ));
        }
        let priority = match priority {
            Some(p) => Some(self.transfer_priority(py, p)?),
            None => None,
        };
        if let Some(number) = to_number {
            let checked = py
                .import("sparklecomm.acd.engine")?
                .getattr("_checked_number")?
                .call1((number,))?;
            let number: String = checked.extract()?;
            self.transfer_out(py, &iid, &aid, &number)?;
            return self.finish(py);
        }
        let ch = self.interactions[&iid].channel;
        if let Some(to_agent_id) = to_agent_id {
            let target = self.agent_id_of(py, to_agent_id, "to_agent_id")?;
            if target == aid {
                return Err(self.invalid(
                    py,
                    "An agent cannot transfer to itself.".into(),
                    "to_agent_id",
                ));
            }
            if self.interactions[&iid].participant(&target).is_some() {
                self.hand_over(py, &iid, &aid, &target)?;
                return self.finish(py);
            }
            self.alone(py, &iid, &aid, "a blind transfer", "to_agent_id")?;
            self.check_can_take(py, &target, ch, "to_agent_id")?;
            let (talk, hold) = self.leg_transferred(py, &iid, &aid, Some(&target), None, None)?;
            self.detach_owner(&iid);
            let it = self.interactions.get_mut(&iid).expect("interaction");
            if let Some(p) = priority {
                it.priority = p;
            }
            it.queued_at = now;
            it.offer_kind = "transfer";
            let qid = it.queue_id.clone();
            let outbound = it.direction == "outbound";
            self.start_wrapup(
                py,
                &aid,
                &iid,
                ch,
                &qid,
                talk,
                hold,
                "transferred",
                outbound,
            )?;
            self.offer_to(py, &iid, std::slice::from_ref(&target), &qid, false)?;
            return self.finish(py);
        }
        let to_queue_id = to_queue_id.expect("one target");
        let qid = self.queue_id_of(py, to_queue_id, "to_queue_id")?;
        if !self.queues[&qid].cfg.channels.contains(ch) {
            return Err(self.invalid(
                py,
                format!(
                    "Queue {} does not take {} interactions.",
                    repr(py, &qid),
                    ch.name()
                ),
                "to_queue_id",
            ));
        }
        self.alone(py, &iid, &aid, "a transfer to a queue", "to_queue_id")?;
        let (talk, hold) = self.leg_transferred(py, &iid, &aid, None, Some(&qid), None)?;
        let old_queue = self.interactions[&iid].queue_id.clone();
        self.detach_owner(&iid);
        let it = self.interactions.get_mut(&iid).expect("interaction");
        if let Some(p) = priority {
            it.priority = p;
        }
        it.queued_at = now;
        it.hops = 0;
        let outbound = it.direction == "outbound";
        self.start_wrapup(
            py,
            &aid,
            &iid,
            ch,
            &old_queue,
            talk,
            hold,
            "transferred",
            outbound,
        )?;
        self.enqueue(py, &iid, &qid, "transfer", false, false)?;
        self.finish(py)
    }

    /// The owner brings in another agent privately; `ringing` (None: the channel decides, a
    /// phone channel rings) holds the consulted agent reserved until `consult_connected`.
    #[args("*", ringing = "None")]
    fn consult(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
        target_agent_id: &PyAny,
        ringing: Option<&PyAny>,
    ) -> PyResult<PyObject> {
        self.begin(py)?;
        let (iid, aid) = self.owned_active(py, interaction_id, agent_id, true)?;
        let target = self.agent_id_of(py, target_agent_id, "target_agent_id")?;
        let ringing: Option<bool> = match ringing {
            None => None,
            Some(r) => match r.downcast::<PyBool>() {
                Ok(b) => Some(b.is_true()),
                Err(_) => {
                    return Err(self.invalid(
                        py,
                        "ringing must be true, false or null.".into(),
                        "ringing",
                    ))
                }
            },
        };
        let it = &self.interactions[&iid];
        if it.participant(&target).is_some() {
            return Err(self.conflict(
                py,
                format!(
                    "Agent {} is already on this interaction.",
                    repr(py, &target)
                ),
                "target",
            ));
        }
        let ch = it.channel;
        self.check_can_take(py, &target, ch, "target_agent_id")?;
        let ringing = ringing.unwrap_or(matches!(ch, Channel::Voice | Channel::Callback));
        self.join(&iid, &target, Role::Consult, ringing);
        let qid = self.interactions[&iid].queue_id.clone();
        let p = self.interaction_payload(py, &iid, Some(&aid), &qid)?;
        p.set_item(intern!(py, "consulted_agent_id"), &*target)?;
        p.set_item(intern!(py, "ringing"), ringing)?;
        self.emit(py, intern!(py, "interaction.consult_started"), p)?;
        self.refresh(py, &target, "consult")?;
        self.finish(py)
    }

    /// The consulted agent answered its ringing phone (or an agent handed the interaction,
    /// or brought into a conference, while its phone rang): it talks from now on.
    fn consult_connected(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
    ) -> PyResult<PyObject> {
        let now = self.begin(py)?;
        let iid = self.interaction_id_of(py, interaction_id)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let it = &self.interactions[&iid];
        let part = if it.state == InteractionState::Active {
            it.participant(&aid)
        } else {
            None
        };
        let part = match part {
            Some(p) => p,
            None => {
                return Err(self.permission(
                    py,
                    format!(
                        "Agent {} is not on interaction {}.",
                        repr(py, &aid),
                        repr(py, &iid)
                    ),
                    "agent_id",
                ))
            }
        };
        if part.connected_at.is_some() {
            return Err(self.conflict(
                py,
                format!(
                    "Agent {} is connected to interaction {} already (its phone is not \
                     ringing).",
                    repr(py, &aid),
                    repr(py, &iid)
                ),
                "agent_id",
            ));
        }
        let it = self.interactions.get_mut(&iid).expect("interaction");
        let part = it.participant_mut(&aid).expect("participant");
        part.connected_at = Some(now);
        let (role, joined_at) = (part.role, part.joined_at);
        if it.agent_id.as_ref() == Some(&aid) {
            // Handed the interaction while ringing: its leg starts.
            it.leg_started_at = Some(now);
            it.leg_hold_us = 0;
        }
        let owner = it.agent_id.clone();
        let qid = it.queue_id.clone();
        self.agents
            .get_mut(&aid)
            .expect("agent")
            .rings
            .retain(|i| *i != iid);
        let p = self.interaction_payload(py, &iid, owner.as_ref(), &qid)?;
        p.set_item(intern!(py, "consulted_agent_id"), &*aid)?;
        p.set_item(intern!(py, "role"), role.name())?;
        p.set_item(intern!(py, "ring_seconds"), (now - joined_at) as f64 / USF)?;
        self.emit(py, intern!(py, "interaction.consult_connected"), p)?;
        self.refresh(py, &aid, "consult_connected")?;
        self.finish(py)
    }

    /// Bring an agent (possibly the one being consulted) into a conference.
    fn conference(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
        target_agent_id: &PyAny,
    ) -> PyResult<PyObject> {
        self.begin(py)?;
        let (iid, aid) = self.owned_active(py, interaction_id, agent_id, true)?;
        let target = self.agent_id_of(py, target_agent_id, "target_agent_id")?;
        let it = &self.interactions[&iid];
        let ch = it.channel;
        let existing = it.participant(&target).map(|p| (p.role, p.connected_at));
        if let Some((role, _)) = existing {
            if role != Role::Consult {
                return Err(self.conflict(
                    py,
                    format!("Agent {} is already in the conference.", repr(py, &target)),
                    "target",
                ));
            }
        }
        match existing {
            None => {
                self.check_can_take(py, &target, ch, "target_agent_id")?;
                self.join(&iid, &target, Role::Conference, false);
            }
            Some(_) => {
                // A consultation still ringing keeps ringing.
                let it = self.interactions.get_mut(&iid).expect("interaction");
                it.participant_mut(&target).expect("participant").role = Role::Conference;
            }
        }
        let qid = self.interactions[&iid].queue_id.clone();
        let p = self.interaction_payload(py, &iid, Some(&aid), &qid)?;
        p.set_item(intern!(py, "joined_agent_id"), &*target)?;
        p.set_item(intern!(py, "from_consult"), existing.is_some())?;
        p.set_item(intern!(py, "ringing"), matches!(existing, Some((_, None))))?;
        self.emit(py, intern!(py, "interaction.conference_joined"), p)?;
        self.refresh(py, &target, "conference")?;
        self.finish(py)
    }

    /// A participant leaves (`participant_left` with `reason`). If the owner leaves, the
    /// earliest other participant who is talking takes over (the earliest one whose phone
    /// still rings if none is).
    #[args(reason = "Given::missing()")]
    fn leave(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
        reason: Given<'_>,
    ) -> PyResult<PyObject> {
        self.begin(py)?;
        let iid = self.interaction_id_of(py, interaction_id)?;
        let aid = self.agent_id_of(py, agent_id, "agent_id")?;
        let it = &self.interactions[&iid];
        if it.state != InteractionState::Active || it.participant(&aid).is_none() {
            return Err(self.permission(
                py,
                format!(
                    "Agent {} is not on interaction {}.",
                    repr(py, &aid),
                    repr(py, &iid)
                ),
                "agent_id",
            ));
        }
        if it.agent_id.as_ref() == Some(&aid) {
            let others: Vec<(&Id, bool)> = it
                .participants
                .iter()
                .filter(|(a, _)| *a != aid)
                .map(|(a, p)| (a, p.connected_at.is_some()))
                .collect();
            if others.is_empty() {
                return Err(self.conflict(
                    py,
                    "The only agent on the interaction completes it instead.".into(),
                    "agent_id",
                ));
            }
            let next = others
                .iter()
                .find(|(_, talking)| *talking)
                .unwrap_or(&others[0])
                .0
                .clone();
            self.hand_over(py, &iid, &aid, &next)?;
        } else {
            let reason: &PyAny = match reason.0 {
                Some(r) => r,
                None => intern!(py, "left").as_ref(),
            };
            self.remove_participant(py, &iid, &aid, reason)?;
        }
        self.finish(py)
    }

    /// The owner ends a consultation: the consulted agent leaves (reason `consult_ended`).
    fn end_consult(
        &mut self,
        py: Python<'_>,
        interaction_id: &PyAny,
        agent_id: &PyAny,
        target_agent_id: &PyAny,
    ) -> PyResult<PyObject> {
        self.begin(py)?;
        let (iid, _owner) = self.owned_active(py, interaction_id, agent_id, true)?;
        let target = self.agent_id_of(py, target_agent_id, "target_agent_id")?;
        let consulted = matches!(
            self.interactions[&iid].participant(&target),
            Some(p) if p.role == Role::Consult
        );
        if !consulted {
            return Err(self.conflict(
                py,
                format!(
                    "Agent {} is not being consulted on interaction {}.",
                    repr(py, &target),
                    repr(py, &iid)
                ),
                "target_agent_id",
            ));
        }
        self.remove_participant(py, &iid, &target, intern!(py, "consult_ended").as_ref())?;
        self.finish(py)
    }
}
