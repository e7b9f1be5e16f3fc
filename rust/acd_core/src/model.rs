//! The engine's records (model.py's runtime records), kept in Rust.
//!
//! Times are integer microseconds since 2020-01-01T00:00:00Z, as in the Python engine.
//! Identifiers are `Id` (a shared string, types.rs): shared by the maps, the indexes and the timers without copies.

use std::collections::HashMap;

use pyo3::prelude::*;

use crate::types::{Channel, ChannelSet, Strategy};

pub use crate::types::Id;

/// Sort key of a waiting interaction in a queue: (-static score in micro-points, queued at,
/// FIFO sequence, interaction id); model.py `WaitKey`.
pub type WaitKey = (i64, i64, i64, Id);

/// Python's `round()` of a float to an integer: halves go to the even neighbour.
pub fn round_half_even(x: f64) -> i64 {
    let r = x.round(); // halves away from zero
    if (x - x.trunc()).abs() == 0.5 {
        let t = x.trunc();
        // The even one of t and r.
        if (t as i64) % 2 == 0 {
            return t as i64;
        }
    }
    r as i64
}

/// Up to one number per channel, in a given order, kept inline (read on every routing
/// decision: no separate allocation to fetch).
#[derive(Clone, Copy, Debug)]
pub struct ChannelVec {
    items: [(Channel, i64); 5],
    len: u8,
}

impl Default for ChannelVec {
    fn default() -> ChannelVec {
        ChannelVec {
            items: [(Channel::Voice, 0); 5],
            len: 0,
        }
    }
}

impl ChannelVec {
    /// Appends (at most one entry per channel: five in all).
    pub fn push(&mut self, item: (Channel, i64)) {
        self.items[self.len as usize] = item;
        self.len += 1;
    }
}

impl std::ops::Deref for ChannelVec {
    type Target = [(Channel, i64)];
    #[inline]
    fn deref(&self) -> &[(Channel, i64)] {
        &self.items[..self.len as usize]
    }
}

impl std::ops::DerefMut for ChannelVec {
    #[inline]
    fn deref_mut(&mut self) -> &mut [(Channel, i64)] {
        &mut self.items[..self.len as usize]
    }
}

impl<'a> IntoIterator for &'a ChannelVec {
    type Item = &'a (Channel, i64);
    type IntoIter = std::slice::Iter<'a, (Channel, i64)>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Per-channel counters in first-use order (a Python dict keyed by channel: the order of
/// first insertion is what event payloads list).
#[derive(Clone, Default, Debug)]
pub struct ChannelCounts {
    pub entries: ChannelVec,
}

impl ChannelCounts {
    pub fn get(&self, ch: Channel) -> i64 {
        for &(c, n) in &self.entries {
            if c == ch {
                return n;
            }
        }
        0
    }
    pub fn add(&mut self, ch: Channel, delta: i64) {
        for e in self.entries.iter_mut() {
            if e.0 == ch {
                e.1 += delta;
                return;
            }
        }
        self.entries.push((ch, delta));
    }
    pub fn sum(&self) -> i64 {
        self.entries.iter().map(|e| e.1).sum()
    }
    pub fn any_nonzero(&self) -> bool {
        self.entries.iter().any(|e| e.1 != 0)
    }
}

/// A queue's configuration, read once from the normalized Python `QueueConfig` (kept as
/// `py` for `queue_config()` and the events that carry it).
pub struct QueueCfg {
    pub py: PyObject,
    pub id: Id,
    pub strategy: Strategy,
    pub channels: ChannelSet,
    pub best_skill: Option<String>,
    pub service_level_seconds: f64,
    pub offer_timeout_us: i64,
    /// None: wrap-up lasts until the agent ends it.
    pub wrapup_seconds: Option<f64>,
    pub wrapup_us: Option<i64>,
    pub reoffer_delay_seconds: f64,
    pub weight: f64,
    pub ageing_rate: f64,
    pub default_handle_seconds: f64,
    /// Per relaxation level: the highest penalty allowed (None: all) and the levels lowered.
    pub level_max_penalty: Vec<Option<i64>>,
    pub level_relax: Vec<i64>,
    pub name: String,
    pub max_wait_seconds: Option<f64>,
    pub on_max_wait: Diversion,
    pub max_length: Option<i64>,
    pub on_full: Diversion,
    pub ewt_threshold_seconds: Option<f64>,
    pub on_ewt: Diversion,
    pub max_waiting_per_agent: Option<f64>,
    pub on_ratio: Diversion,
    pub join_when_empty: bool,
    pub leave_when_empty: bool,
    pub on_empty: Diversion,
    pub hours: Option<String>,
    pub on_closed: Diversion,
    pub relaxation: Vec<RelaxationStep>,
    pub priority_rules: Vec<PriorityRule>,
    pub callback: CallbackPolicy,
    /// The member expression's source (None: members are listed only).
    pub member_expression: Option<String>,
    pub member_expression_penalty: i64,
    pub member_expression_weight: i64,
    /// Listed members in configuration order: (agent id, penalty, weight).
    pub members: Vec<(Id, i64, i64)>,
}

/// Where a queue rule sends an interaction (model.py `Diversion`).
#[derive(Clone, Default, Debug, PartialEq)]
pub struct Diversion {
    pub queue_id: Option<Id>,
    pub divert_to: Option<String>,
}

#[derive(Clone, Debug)]
pub struct RelaxationStep {
    pub after_seconds: f64,
    pub max_penalty: Option<i64>,
    pub lower_levels: i64,
    pub add_queue_id: Option<Id>,
}

/// `PriorityRule`: `boost` for interactions whose attribute equals `value` (compared as
/// Python compares them: the value is kept as a Python object).
pub struct PriorityRule {
    pub attribute: String,
    pub value: PyObject,
    pub boost: i64,
}

#[derive(Clone, Debug)]
pub struct CallbackPolicy {
    pub enabled: bool,
    pub max_attempts: i64,
    pub retry_delay_seconds: f64,
    pub max_delay_seconds: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Membership {
    pub penalty: i64,
    pub weight: i64,
    pub order: i64,
}

pub struct Queue {
    /// The queue id as a Python str (event payloads).
    pub py_id: Py<pyo3::types::PyString>,
    pub cfg: QueueCfg,
    pub ordinal: i64,
    pub ready: crate::ready::ReadyIndex,
    pub members: Vec<(Id, Membership)>,
    pub listed: HashMap<Id, Membership>,
    pub rr_last: i64,
    pub handle_times: Vec<(Channel, Vec<f64>)>,
    pub staffed_agents: i64,
    pub staffed_capacity: ChannelCounts,
    /// Waiting lists per channel (first-use order), one sorted list per relaxation level.
    pub waiting: Vec<(Channel, Vec<crate::sorted::SortedVec<WaitKey>>)>,
    pub waiting_count: i64,
    /// The member expression, compiled (None: members are listed only).
    pub expression: Option<crate::expr::Expr>,
    /// Callbacks not yet due that keep their place in this queue (insertion order).
    pub scheduled: Vec<Id>,
}

impl Queue {
    pub fn member(&self, agent_id: &str) -> Option<Membership> {
        self.members
            .iter()
            .find(|(a, _)| &**a == agent_id)
            .map(|(_, m)| *m)
    }
}

pub struct AgentCfg {
    pub py: PyObject,
    pub id: Id,
    pub skills: crate::expr::Skills,
    pub skill_levels: HashMap<String, i64>,
    pub attributes: crate::expr::Attributes,
    /// Capacity per channel in channel order (only the channels configured).
    pub capacity: ChannelVec,
    pub voice_blocks_other_channels: bool,
}

impl AgentCfg {
    pub fn capacity_of(&self, ch: Channel) -> i64 {
        self.capacity
            .iter()
            .find(|(c, _)| *c == ch)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AgentState {
    LoggedOut,
    Available,
    Reserved,
    Busy,
    WrapUp,
    Break,
}

impl AgentState {
    pub fn name(self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Available => "available",
            AgentState::Reserved => "reserved",
            AgentState::Busy => "busy",
            AgentState::WrapUp => "wrap_up",
            AgentState::Break => "break",
        }
    }
}

pub struct Wrapup {
    pub interaction_id: Id,
    /// The interaction and queue ids as Python strs (the wrap-up's event).
    pub py_interaction_id: Py<pyo3::types::PyString>,
    pub py_queue_id: Py<pyo3::types::PyString>,
    pub channel: Channel,
    pub queue_id: Id,
    pub started_at: i64,
    pub deadline: Option<i64>,
    pub timer_id: Option<u64>,
    pub talk_us: i64,
    pub hold_us: i64,
    pub outbound: bool,
}

/// The agent's entry in one queue's ready index: (penalty, strategy key, channels).
pub type IndexEntry = (i64, crate::ready::Key, ChannelSet);

pub struct Agent {
    pub id: Id,
    /// The agent id as a Python str (event payloads).
    pub py_id: Py<pyo3::types::PyString>,
    pub cfg: AgentCfg,
    pub ordinal: i64,
    pub state: AgentState,
    pub reason: String,
    pub since: i64,
    pub since_iso: Option<Py<pyo3::types::PyString>>,
    pub logged_in_at: Option<i64>,
    pub aux_reason: Option<String>,
    pub offer: Option<Id>,
    pub interactions: Vec<(Id, Channel)>,
    pub rings: Vec<Id>,
    pub wrapups: Vec<Wrapup>,
    pub load: ChannelCounts,
    pub consecutive_misses: i64,
    pub handled: i64,
    pub talk_us: i64,
    pub idle_since: i64,
    /// Memberships in the order they were made (a Python dict: queue id -> membership).
    pub queues: Vec<(Id, Membership)>,
    pub index_keys: Vec<(Id, IndexEntry)>,
}

impl Agent {
    /// Logged in and not on (or heading to) a break.
    pub fn staffed(&self) -> bool {
        self.logged_in_at.is_some() && self.aux_reason.is_none()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum InteractionState {
    Queued,
    Scheduled,
    Offered,
    Active,
}

impl InteractionState {
    pub fn name(self) -> &'static str {
        match self {
            InteractionState::Queued => "queued",
            InteractionState::Scheduled => "scheduled",
            InteractionState::Offered => "offered",
            InteractionState::Active => "active",
        }
    }
}

pub struct QueueEntry {
    pub queue_id: Id,
    pub entered_at: i64,
    pub level: usize,
    pub priority: i64,
    pub key: WaitKey,
    pub listed: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Role {
    Owner,
    Consult,
    Conference,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Consult => "consult",
            Role::Conference => "conference",
        }
    }
}

/// An agent on an active interaction (model.py `Participant`).
pub struct Participant {
    pub role: Role,
    pub joined_at: i64,
    /// None while its phone still rings.
    pub connected_at: Option<i64>,
}

pub struct Offer {
    pub agent_id: Id,
    pub queue_id: Id,
    pub offered_at: i64,
    pub deadline: i64,
    pub timer_id: u64,
    pub ring_all: bool,
}

pub struct Interaction {
    pub id: Id,
    /// The interaction id as a Python str (event payloads).
    pub py_id: Py<pyo3::types::PyString>,
    pub channel: Channel,
    pub priority: i64,
    pub required_skills: Py<pyo3::types::PyString>,
    pub expression: crate::expr::Expr,
    pub customer_id: PyObject,
    pub attributes: PyObject,
    pub created_at: i64,
    pub queued_at: i64,
    pub queue_id: Id,
    pub seq: i64,
    pub state: InteractionState,
    pub entries: Vec<QueueEntry>,
    pub offers: Vec<Offer>,
    pub offer_kind: &'static str,
    pub offer_attempts: i64,
    pub excluded: Vec<(Id, i64)>,
    pub agent_id: Option<Id>,
    /// Agents on the interaction while active, in the order they joined (owner first).
    pub participants: Vec<(Id, Participant)>,
    pub leg_started_at: Option<i64>,
    pub hold_started_at: Option<i64>,
    pub leg_hold_us: i64,
    pub hops: i64,
    pub max_wait_reached: bool,
    pub original_channel: Option<Channel>,
    pub callback_phone: Option<String>,
    pub callback_due_at: Option<i64>,
    pub callback_attempts: i64,
    /// Named timers ("max_wait", "relax:<queue>", "unexclude:<agent>", "callback").
    pub timers: Vec<(String, u64)>,
    /// "inbound", or "outbound" (started by the agent: start_outbound).
    pub direction: &'static str,
    /// Creation order (the Python engine's dict of interactions iterates in it).
    pub created_seq: u64,
}

impl Interaction {
    pub fn entry(&self, queue_id: &str) -> Option<&QueueEntry> {
        self.entries.iter().find(|e| &*e.queue_id == queue_id)
    }
    pub fn entry_mut(&mut self, queue_id: &str) -> Option<&mut QueueEntry> {
        self.entries.iter_mut().find(|e| &*e.queue_id == queue_id)
    }
    pub fn participant(&self, agent_id: &str) -> Option<&Participant> {
        self.participants
            .iter()
            .find(|(a, _)| &**a == agent_id)
            .map(|(_, p)| p)
    }
    pub fn participant_mut(&mut self, agent_id: &str) -> Option<&mut Participant> {
        self.participants
            .iter_mut()
            .find(|(a, _)| &**a == agent_id)
            .map(|(_, p)| p)
    }
    /// Connected to `owner` from `now` (accepted, or started by the agent): a new leg, alone
    /// with the customer, off hold.
    pub fn connect_owner(&mut self, owner: &Id, now: i64) {
        self.state = InteractionState::Active;
        self.agent_id = Some(owner.clone());
        self.participants = vec![(
            owner.clone(),
            Participant {
                role: Role::Owner,
                joined_at: now,
                connected_at: Some(now),
            },
        )];
        self.leg_started_at = Some(now);
        self.leg_hold_us = 0;
        self.hold_started_at = None;
    }

    pub fn timer(&self, name: &str) -> Option<u64> {
        self.timers.iter().find(|(n, _)| n == name).map(|(_, t)| *t)
    }
    /// Removes the named timer; its id (the caller cancels it).
    pub fn take_timer(&mut self, name: &str) -> Option<u64> {
        let pos = self.timers.iter().position(|(n, _)| n == name)?;
        Some(self.timers.remove(pos).1)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TimerKind {
    Offer,
    Wrapup,
    Relax,
    MaxWait,
    Unexclude,
    Callback,
}

impl TimerKind {
    pub fn name(self) -> &'static str {
        match self {
            TimerKind::Offer => "offer",
            TimerKind::Wrapup => "wrapup",
            TimerKind::Relax => "relax",
            TimerKind::MaxWait => "max_wait",
            TimerKind::Unexclude => "unexclude",
            TimerKind::Callback => "callback",
        }
    }
    pub fn parse(name: &str) -> Option<TimerKind> {
        use TimerKind::*;
        [Offer, Wrapup, Relax, MaxWait, Unexclude, Callback]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

pub struct Timer {
    pub due: i64,
    pub kind: TimerKind,
    pub a: Id,
    pub b: Id,
}
