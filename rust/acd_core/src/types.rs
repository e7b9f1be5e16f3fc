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
