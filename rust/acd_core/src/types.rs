//! Small shared vocabulary: channels, channel sets and strategies (model.py's enums).

/// A channel (model.py `Channel`), in the Python enum's order: sorting and iterating by this
/// order is how the Python engine orders capacities and channel tuples.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Channel {
    Voice = 0,
    Chat = 1,
    Email = 2,
    Callback = 3,
    Task = 4,
}

pub const ALL_CHANNELS: [Channel; 5] = [
    Channel::Voice,
    Channel::Chat,
    Channel::Email,
    Channel::Callback,
    Channel::Task,
];

impl Channel {
    pub fn name(self) -> &'static str {
        match self {
            Channel::Voice => "voice",
            Channel::Chat => "chat",
            Channel::Email => "email",
            Channel::Callback => "callback",
            Channel::Task => "task",
        }
    }

    pub fn parse(name: &str) -> Option<Channel> {
        ALL_CHANNELS.iter().copied().find(|c| c.name() == name)
    }

    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of channels (a tuple of channels in the Python code, always in enum order there, so
/// a bit set is equivalent: equality and iteration order agree).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct ChannelSet(pub u8);

impl ChannelSet {
    pub const EMPTY: ChannelSet = ChannelSet(0);

    pub fn contains(self, ch: Channel) -> bool {
        self.0 & ch.bit() != 0
    }
    pub fn insert(&mut self, ch: Channel) {
        self.0 |= ch.bit();
    }
    pub fn remove(&mut self, ch: Channel) {
        self.0 &= !ch.bit();
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn is_superset(self, other: ChannelSet) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn intersection(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 & other.0)
    }
    /// The channels in enum order.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        ALL_CHANNELS.into_iter().filter(move |c| self.contains(*c))
    }
}

/// A queue's routing strategy (model.py `Strategy`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Strategy {
    RingAll,
    RoundRobin,
    Linear,
    LongestIdle,
    FewestInteractions,
    LeastTalkTime,
    Random,
    WeightedRandom,
    BestSkill,
}

impl Strategy {
    pub fn name(self) -> &'static str {
        match self {
            Strategy::RingAll => "ring-all",
            Strategy::RoundRobin => "round-robin",
            Strategy::Linear => "linear",
            Strategy::LongestIdle => "longest-idle",
            Strategy::FewestInteractions => "fewest-interactions",
            Strategy::LeastTalkTime => "least-talk-time",
            Strategy::Random => "random",
            Strategy::WeightedRandom => "weighted-random",
            Strategy::BestSkill => "best-skill",
        }
    }

    pub fn parse(name: &str) -> Option<Strategy> {
        use Strategy::*;
        [
            RingAll,
            RoundRobin,
            Linear,
            LongestIdle,
            FewestInteractions,
            LeastTalkTime,
            Random,
            WeightedRandom,
            BestSkill,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// Strategies whose key includes the agent's total load (strategies.py LOAD_STRATEGIES).
    pub fn uses_load(self) -> bool {
        matches!(
            self,
            Strategy::LongestIdle
                | Strategy::FewestInteractions
                | Strategy::LeastTalkTime
                | Strategy::BestSkill
        )
    }
}

/// An identifier (agent, queue, interaction): a shared string. Every record keeps clones of
/// the map key it was created as, so two ids of the same thing are usually the same
/// allocation; comparing them tests that first and reads the text only when the pointers
/// differ (`Arc<str>`'s own `==` always compares the text: the standard library's
/// pointer short-cut is only for sized types). Hashes, compares and borrows as the `str`.
#[derive(Clone)]
pub struct Id(std::sync::Arc<str>);

impl Id {
    /// Whether the two are the same allocation (then the same text).
    #[inline]
    pub fn same(&self, other: &Id) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for Id {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Id {
    #[inline]
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Id {
    #[inline]
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq for Id {
    #[inline]
    fn eq(&self, other: &Id) -> bool {
        self.same(other) || *self.0 == *other.0
    }
}

impl Eq for Id {}

impl PartialOrd for Id {
    #[inline]
    fn partial_cmp(&self, other: &Id) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Id {
    #[inline]
    fn cmp(&self, other: &Id) -> std::cmp::Ordering {
        if self.same(other) {
            return std::cmp::Ordering::Equal;
        }
        (*self.0).cmp(&*other.0)
    }
}

impl std::hash::Hash for Id {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (*self.0).hash(state)
    }
}

impl std::fmt::Display for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for Id {
    #[inline]
    fn from(text: &str) -> Id {
        Id(std::sync::Arc::from(text))
    }
}

impl From<String> for Id {
    #[inline]
    fn from(text: String) -> Id {
        Id(std::sync::Arc::from(text))
    }
}
