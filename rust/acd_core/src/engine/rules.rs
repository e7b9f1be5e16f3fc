//! Queue rules (engine.py's `_enqueue` entry rules, `_send_away`, relaxation, max wait,
//! leave-when-empty, priority rules and business hours).

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyMapping};

use super::{seconds_to_us, CompiledEngine, Work, USF};
use crate::model::*;
use crate::types::Channel;

/// Arrivals a closed queue turns away (a transfer that comes back, or a callback that falls
/// due, keeps its place instead).
const CLOSABLE: [&str; 3] = ["new", "transfer", "overflow"];

impl CompiledEngine {
    /// The entry rule that sends the interaction away from `qid`, if any: (reason, where).
    pub(super) fn entry_rule(
        &mut self,
        py: Python<'_>,
        iid: &Id,
        qid: &Id,
        reason: &str,
    ) -> PyResult<Option<(&'static str, Diversion)>> {
        let queue = &self.queues[qid];
        let cfg = &queue.cfg;
        let channel = self.interactions[iid].channel;
        if !cfg.channels.contains(channel) {
            return Ok(Some(("channel", Diversion::default())));
        }
        let staffed = queue.staffed_agents;
        let waiting = queue.waiting_count;
        if let Some(name) = &cfg.hours {
            if CLOSABLE.contains(&reason) && self.closed(py, name)? {
                return Ok(Some(("closed", cfg.on_closed.clone())));
            }
        }
        if !cfg.join_when_empty && staffed == 0 {
            return Ok(Some(("empty", cfg.on_empty.clone())));
        }
        if let Some(max) = cfg.max_length {
            if waiting >= max {
                return Ok(Some(("full", cfg.on_full.clone())));
            }
        }
        if let Some(ratio) = cfg.max_waiting_per_agent {
            if staffed == 0 || (waiting + 1) as f64 / staffed as f64 > ratio {
                return Ok(Some(("ratio", cfg.on_ratio.clone())));
            }
        }
        if let Some(threshold) = cfg.ewt_threshold_seconds {
            let ahead: usize = queue
                .waiting
                .iter()
                .filter(|(c, _)| *c == channel)
                .flat_map(|(_, lists)| lists.iter())
                .map(|l| l.len())
                .sum();
            let ewt = Self::ewt(queue, channel, ahead as i64 + 1);
            if ewt.map_or(true, |e| e > threshold) {
                return Ok(Some(("ewt", cfg.on_ewt.clone())));
            }
        }
        Ok(None)
    }

    /// The interaction's priority in `qid`: its own plus the queue's priority rules, 0–100.
    pub(super) fn effective_priority(&self, py: Python<'_>, iid: &Id, qid: &Id) -> PyResult<i64> {
        let it = &self.interactions[iid];
        let rules = &self.queues[qid].cfg.priority_rules;
        let mut priority = it.priority;
        if rules.is_empty() {
            return Ok(priority);
        }
        let attributes = it.attributes.as_ref(py);
        for rule in rules {
            let value = attributes.call_method1(intern!(py, "get"), (rule.attribute.as_str(),))?;
            if value.eq(rule.value.as_ref(py))? {
                priority += rule.boost;
            }
        }
        Ok(priority.clamp(0, super::MAX_PRIORITY))
    }

    /// A new entry of the interaction in queue `qid` (relaxation adding a queue).
    pub(super) fn new_entry(&self, py: Python<'_>, iid: &Id, qid: &Id) -> PyResult<QueueEntry> {
        let priority = self.effective_priority(py, iid, qid)?;
        let it = &self.interactions[iid];
        let cfg = &self.queues[qid].cfg;
        let base = (cfg.weight + priority as f64 * self.priority_points) * USF;
        Ok(QueueEntry {
            queue_id: qid.clone(),
            entered_at: self.now,
            level: 0,
            priority,
            key: (
                round_half_even(cfg.ageing_rate * it.queued_at as f64 - base),
                it.queued_at,
                it.seq,
                it.id.clone(),
            ),
            listed: false,
        })
    }

    /// Overflow to `div.queue_id` (keeping the place in line) or divert out of routing.
    pub(super) fn send_away(
        &mut self,
        py: Python<'_>,
        iid: &Id,
        qid: &Id,
        reason: &str,
        div: &Diversion,
    ) -> PyResult<()> {
        let it = &self.interactions[iid];
        let wait = (self.now - it.queued_at) as f64 / USF;
        let target = div
            .queue_id
            .as_ref()
            .and_then(|t| self.queues.get_key_value(t))
            .map(|(t, q)| (t.clone(), q.cfg.channels));
        if let Some((target, channels)) = target {
            if target != *qid && it.hops < self.max_overflow_hops && channels.contains(it.channel)
            {
                self.interactions.get_mut(iid).expect("interaction").hops += 1;
                self.leave_queues(iid);
                let p = self.interaction_payload(py, iid, None, &target)?;
                p.set_item(intern!(py, "from_queue_id"), &**qid)?;
                p.set_item(intern!(py, "reason"), reason)?;
                p.set_item(intern!(py, "wait_seconds"), wait)?;
                self.emit(py, intern!(py, "interaction.overflowed"), p)?;
                return self.enqueue(py, iid, &target, "overflow", true, false);
            }
        }
        let p = self.interaction_payload(py, iid, None, qid)?;
        p.set_item(intern!(py, "reason"), reason)?;
        p.set_item(intern!(py, "divert_to"), div.divert_to.as_deref())?;
        p.set_item(intern!(py, "overflow_queue_id"), div.queue_id.as_deref())?;
        p.set_item(intern!(py, "wait_seconds"), wait)?;
        self.emit(py, intern!(py, "interaction.diverted"), p)?;
        self.drop_interaction(iid);
        Ok(())
    }

    /// Max-wait (primary entries only, not callbacks) and the next relaxation step's timers.
    pub(super) fn schedule_entry_timers(&mut self, iid: &Id, qid: &Id, index: usize, primary: bool) {
        let it = &self.interactions[iid];
        let entry = &it.entries[index];
        let (entered_at, level) = (entry.entered_at, entry.level);
        let cfg = &self.queues[qid].cfg;
        let max_wait = match cfg.max_wait_seconds {
            Some(s) if primary && it.channel != Channel::Callback => {
                Some(entered_at + seconds_to_us(s))
            }
            _ => None,
        };
        let relax = cfg
            .relaxation
            .get(level)
            .map(|step| entered_at + seconds_to_us(step.after_seconds));
        if let Some(due) = max_wait {
            self.set_it_timer(
                iid,
                "max_wait".to_string(),
                due,
                TimerKind::MaxWait,
                iid.clone(),
                qid.clone(),
            );
        }
        if let Some(due) = relax {
            self.set_it_timer(
                iid,
                format!("relax:{qid}"),
                due,
                TimerKind::Relax,
                iid.clone(),
                qid.clone(),
            );
        }
    }

    pub(super) fn on_relax(&mut self, py: Python<'_>, iid: &Id, qid: &Id) -> PyResult<()> {
        let it = self.interactions.get_mut(iid).expect("interaction");
        it.take_timer(&format!("relax:{qid}"));
        let index = it
            .entries
            .iter()
            .position(|e| &e.queue_id == qid)
            .expect("entry");
        let level = it.entries[index].level;
        let queue = &self.queues[qid];
        if level >= queue.cfg.relaxation.len() {
            return Ok(());
        }
        let step = queue.cfg.relaxation[level].clone();
        let listed = it.entries[index].listed;
        if listed {
            self.unlist_entry(iid, index);
        }
        self.interactions.get_mut(iid).expect("interaction").entries[index].level += 1;
        if listed {
            self.list_entry(iid, index);
        }
        let it = &self.interactions[iid];
        let added: Option<Id> = step.add_queue_id.as_ref().and_then(|a| {
            self.queues.get_key_value(a).and_then(|(a, q)| {
                (it.entry(a).is_none() && q.cfg.channels.contains(it.channel)).then(|| a.clone())
            })
        });
        let queue = &self.queues[qid];
        let level = level + 1;
        let p = self.interaction_payload(py, iid, None, qid)?;
        p.set_item(intern!(py, "level"), level)?;
        p.set_item(intern!(py, "max_penalty"), queue.cfg.level_max_penalty[level])?;
        p.set_item(intern!(py, "lowered_levels"), queue.cfg.level_relax[level])?;
        p.set_item(intern!(py, "added_queue_id"), added.as_deref())?;
        p.set_item(
            intern!(py, "wait_seconds"),
            (self.now - it.queued_at) as f64 / USF,
        )?;
        self.emit(py, intern!(py, "interaction.relaxed"), p)?;
        if let Some(added) = added {
            let extra = self.new_entry(py, iid, &added)?;
            let it = self.interactions.get_mut(iid).expect("interaction");
            it.entries.push(extra);
            let extra_index = it.entries.len() - 1;
            if it.state == InteractionState::Queued {
                self.list_entry(iid, extra_index);
            }
            self.schedule_entry_timers(iid, &added, extra_index, false);
        }
        self.schedule_entry_timers(iid, qid, index, false);
        if self.interactions[iid].state == InteractionState::Queued {
            self.work.push_back(Work::Interaction(iid.clone()));
        }
        Ok(())
    }

    pub(super) fn on_max_wait(&mut self, py: Python<'_>, iid: &Id, qid: &Id) -> PyResult<()> {
        let it = self.interactions.get_mut(iid).expect("interaction");
        it.take_timer("max_wait");
        match it.state {
            InteractionState::Queued => {
                self.leave_queues(iid);
                let div = self.queues[qid].cfg.on_max_wait.clone();
                self.send_away(py, iid, qid, "max_wait", &div)
            }
            InteractionState::Offered => {
                it.max_wait_reached = true; // acted on if the offer is not accepted
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `leave_when_empty`: the last staffed member left; waiting interactions leave too.
    pub(super) fn empty_queue(&mut self, py: Python<'_>, qid: &Id) -> PyResult<()> {
        let mut leaving: Vec<(WaitKey, Id)> = self
            .interactions
            .values()
            .filter(|it| &it.queue_id == qid)
            .filter_map(|it| it.entry(qid).filter(|e| e.listed).map(|e| (e.key.clone(), it.id.clone())))
            .collect();
        leaving.sort();
        let div = self.queues[qid].cfg.on_empty.clone();
        for (_, iid) in leaving {
            self.send_away(py, &iid, qid, "empty", &div)?;
        }
        Ok(())
    }

    /// Whether the named business hours are given and closed now.
    pub(super) fn closed(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        match self.hours.iter().find(|(n, _)| n == name) {
            Some((_, hours)) => Ok(!hours
                .call_method1(py, intern!(py, "is_open"), (self.now_dt.clone_ref(py),))?
                .is_true(py)?),
            None => Ok(false),
        }
    }

    /// engine.py `_open_now`: whether the queue's business hours are open now (None: it
    /// names none, or hours this engine was not given).
    pub(super) fn open_now(&self, py: Python<'_>, qid: &Id) -> PyResult<Option<bool>> {
        let name = match &self.queues[qid].cfg.hours {
            Some(n) => n,
            None => return Ok(None),
        };
        match self.hours.iter().find(|(n, _)| n == name) {
            Some((_, hours)) => Ok(Some(
                hours
                    .call_method1(py, intern!(py, "is_open"), (self.now_dt.clone_ref(py),))?
                    .is_true(py)?,
            )),
            None => Ok(None),
        }
    }
}

#[pymethods]
impl CompiledEngine {
    /// Replace the business hours queues may name (name → JSON timetable); emits nothing.
    fn set_business_hours(&mut self, py: Python<'_>, hours: &PyAny) -> PyResult<PyObject> {
        self.begin(py)?;
        if !hours.is_none() && hours.downcast::<PyMapping>().is_err() {
            return Err(self.invalid(py, "hours must map names to timetables.".into(), "hours"));
        }
        let from_spec = py.import("sparklecomm.core.hours")?.getattr("hours_from_spec")?;
        let mut parsed = Vec::new();
        if !hours.is_none() {
            for item in hours.call_method0("items")?.iter()? {
                let (name, spec): (String, &PyAny) = item?.extract()?;
                let field = format!("hours.{name}");
                parsed.push((name.clone(), from_spec.call1((name, spec, field))?.into()));
            }
        }
        self.hours = parsed;
        self.finish(py)
    }

    /// The business hours given by `set_business_hours` (their JSON form).
    fn business_hours(&self, py: Python<'_>) -> PyResult<PyObject> {
        let spec_of = py.import("sparklecomm.core.hours")?.getattr("spec_of")?;
        let out = PyDict::new(py);
        for (name, hours) in &self.hours {
            out.set_item(name, spec_of.call1((hours,))?)?;
        }
        Ok(out.into())
    }

    /// Whether the queue's business hours are open now (None: it names none, or hours this
    /// engine was not given).
    fn queue_open(&mut self, py: Python<'_>, queue_id: &PyAny) -> PyResult<Option<bool>> {
        self.query_now(py)?;
        let qid = self.queue_id_of(py, queue_id, "queue_id")?;
        self.open_now(py, &qid)
    }
}
