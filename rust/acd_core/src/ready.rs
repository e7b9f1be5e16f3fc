//! Per-queue indexes of available agents, one ordering per routing strategy (a port of
//! strategies.py `ReadyIndex` and the strategy keys, with what it needs of sortedlist.py).
//!
//! For every queue the engine keeps the agents who could take an interaction right now in a
//! [`ReadyIndex`]: one sorted list per penalty tier, ordered by the queue strategy's [`Key`],
//! each agent noted with the channels it is available on. Picking an agent walks the lowest
//! allowed tier from the strategy's starting point and takes the first agent on the
//! interaction's channel who meets its requirement. The Python code stays the reference: the
//! same agents come out in the same order, and random strategies make the same draws (one per
//! `first` or `candidates` call) from the engine's random source ([`Draw`]).
//!
//! Strategy keys (ascending = preferred; `order` is the member order, the agent id makes keys
//! unique):
//!
//! ```text
//! ring-all, linear, round-robin, random  (order, agent_id)
//! longest-idle          (load, idle_since, order, agent_id)
//! fewest-interactions   (handled since login, load, idle_since, order, agent_id)
//! least-talk-time       (talk time since login, load, idle_since, order, agent_id)
//! best-skill            (-proficiency in the queue's best_skill, load, idle_since, ...)
//! weighted-random       (weight, order, agent_id)
//! ```
//!
//! A tier is the Python `SortedList` layout (a list of sorted sublists and their maxima), so
//! an update costs a bisect plus a move within one sublist whatever the tier's size, and
//! positional access walks the sublists' lengths. Unlike the Python tier, each entry carries
//! the agent's channels and each sublist counts the entries missing each channel: filtering
//! by channel reads no hash map, and the position of the n-th agent on a channel skips whole
//! sublists (the Python code scans the tier). None of this changes what is returned.
//!
//! Preconditions the engine always meets (the Python code misbehaves or raises otherwise, and
//! this port does not reproduce how): an agent is added only when not in the index already,
//! its channels are non-empty and among the queue's, weighted-random keys start with a
//! positive weight (members' weights are 1–100), and `first` / `candidates` are called for
//! a tier given by `tiers` or `lowest` for the same channel (a tier with agents on it).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use pyo3::exceptions::{PyIndexError, PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};

use crate::types::{Channel, ChannelSet, Id, Strategy};

/// Sublist size of a tier: a sublist is split in two when it grows past twice this. Smaller
/// than the Python tiers' 128 (`SortedList(load=128)`), which only changes the cost: entries
/// here are 64 bytes, not pointers, and moving them within a sublist is what an update costs
/// in a tier of thousands of agents.
const LOAD: usize = 32;

/// Number of channels ([`Channel`] as an index).
const N_CHANNELS: usize = 5;

// -- strategy keys -----------------------------------------------------------------------------

/// A strategy key: up to 4 integers then the agent id, ordered like the Python tuple (the
/// integers first, the id on ties). All the keys of one index have the same shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    ints: [i64; 4], // unused trailing integers are 0 (same in every key of an index)
    id: Id,
    len: u8,
}

impl Ord for Key {
    #[inline]
    fn cmp(&self, other: &Key) -> Ordering {
        // The integers one by one (unrolled: keys are compared in every bisect), then the id.
        let (a, b) = (&self.ints, &other.ints);
        a[0].cmp(&b[0])
            .then_with(|| a[1].cmp(&b[1]))
            .then_with(|| a[2].cmp(&b[2]))
            .then_with(|| a[3].cmp(&b[3]))
            .then_with(|| self.id.cmp(&other.id))
    }
}

impl PartialOrd for Key {
    #[inline]
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// What an agent's strategy key may be built from ([`Key::for_strategy`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyFacts {
    /// The agent's total load (sum over channels).
    pub load: i64,
    pub idle_since: i64,
    /// Member order in the queue.
    pub order: i64,
    /// Member weight (weighted-random).
    pub weight: i64,
    /// Interactions accepted since login (fewest-interactions).
    pub handled: i64,
    /// Talk time since login, in microseconds (least-talk-time).
    pub talk_us: i64,
    /// Proficiency in the queue's best skill, 0 when the agent lacks it (best-skill).
    pub best_skill_level: i64,
}

impl Key {
    /// A key of the given integers (1 to 4 of them) then the agent id.
    pub fn new(ints: &[i64], id: Id) -> Key {
        assert!(
            !ints.is_empty() && ints.len() <= 4,
            "a strategy key has 1 to 4 integers"
        );
        let mut all = [0i64; 4];
        all[..ints.len()].copy_from_slice(ints);
        Key {
            ints: all,
            id,
            len: ints.len() as u8,
        }
    }

    /// The key of `strategy` for an agent (strategies.py `strategy_key_for`).
    pub fn for_strategy(strategy: Strategy, facts: &KeyFacts, id: Id) -> Key {
        let f = facts;
        match strategy {
            Strategy::LongestIdle => Key::new(&[f.load, f.idle_since, f.order], id),
            Strategy::FewestInteractions => {
                Key::new(&[f.handled, f.load, f.idle_since, f.order], id)
            }
            Strategy::LeastTalkTime => Key::new(&[f.talk_us, f.load, f.idle_since, f.order], id),
            Strategy::BestSkill => {
                Key::new(&[-f.best_skill_level, f.load, f.idle_since, f.order], id)
            }
            Strategy::WeightedRandom => Key::new(&[f.weight, f.order], id),
            Strategy::RingAll | Strategy::RoundRobin | Strategy::Linear | Strategy::Random => {
                Key::new(&[f.order], id)
            }
        }
    }

    /// The key's integers (the tuple without the agent id).
    pub fn ints(&self) -> &[i64] {
        &self.ints[..self.len as usize]
    }

    /// The agent id (the key's last item).
    pub fn id(&self) -> &Id {
        &self.id
    }

    /// The key's first item (the member order of round-robin keys, the weight of
    /// weighted-random keys).
    pub fn head(&self) -> i64 {
        self.ints[0]
    }
}

/// The engine's random source (Python's `random.Random`, same sequence of draws).
pub trait Draw {
    /// A uniform integer in `0..n` (Python `randrange(n)`; `n` > 0).
    fn randrange(&mut self, n: u64) -> u64;
}

// -- a small fast hasher for the agent-id map ----------------------------------------------------

/// FxHash (rustc's hasher): agent ids are short, and SipHash would cost more than the rest of
/// an update. Not DoS-resistant, which is fine for ids the platform itself validates.
#[derive(Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // The same little-endian word as a zero-padded copy, without a call to memcpy.
            let mut word = 0u64;
            for (i, &b) in rest.iter().enumerate() {
                word |= (b as u64) << (8 * i);
            }
            self.add(word);
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(n as u64);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
    /// The state rotated (as rustc-hash 2 does): hashbrown takes a bucket from the hash's
    /// low bits, and a multiply only carries entropy upwards, so the raw state's low bits
    /// depend on the first bytes of a string alone: ids sharing a prefix ("agent-1…") would
    /// all start probing from the same few buckets.
    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

// -- tiers: sorted lists of entries --------------------------------------------------------------

/// One agent in a tier: its key and the channels it is available on.
#[derive(Clone, Debug)]
struct Entry {
    key: Key,
    chans: ChannelSet,
}

/// A sublist of a tier, with how many of its entries miss each queue channel.
#[derive(Clone, Debug, Default)]
struct Sub {
    entries: Vec<Entry>,
    missing: [u32; N_CHANNELS],
}

impl Sub {
    fn count(&mut self, miss: ChannelSet, delta: i32) {
        for ch in miss.iter() {
            let n = &mut self.missing[ch as usize];
            *n = (*n as i64 + delta as i64) as u32;
        }
    }

    fn recount(&mut self, queue: ChannelSet) {
        self.missing = [0; N_CHANNELS];
        for i in 0..self.entries.len() {
            let miss = missing_of(queue, self.entries[i].chans);
            for ch in miss.iter() {
                self.missing[ch as usize] += 1;
            }
        }
    }

    /// Entries available on `channel`.
    fn on(&self, channel: Channel) -> usize {
        self.entries.len() - self.missing[channel as usize] as usize
    }
}

/// The queue channels an agent available on `chans` misses.
#[inline]
fn missing_of(queue: ChannelSet, chans: ChannelSet) -> ChannelSet {
    ChannelSet(queue.0 & !chans.0)
}

/// Adds `delta` to the count of `value` in a small map kept sorted by value (entries at zero
/// are dropped, like the Python dicts' `del`).
fn bump(counts: &mut Vec<(i64, u32)>, value: i64, delta: i32) {
    match counts.binary_search_by(|&(v, _)| v.cmp(&value)) {
        Ok(i) => {
            let n = (counts[i].1 as i64 + delta as i64) as u32;
            if n == 0 {
                counts.remove(i);
            } else {
                counts[i].1 = n;
            }
        }
        Err(i) => {
            debug_assert!(delta > 0);
            counts.insert(i, (value, delta as u32));
        }
    }
}

/// The agents of one penalty tier, in key order (kept, empty, when its last agent leaves).
///
/// A small tier (at most `2 * LOAD` agents, as a queue's tiers mostly are) keeps its entries
/// in one sorted Vec (`flat`): a visit reads the tier's first cache line and the entries, no
/// sublist or maxima Vec. Past `2 * LOAD` the entries move to sublists (`subs`, `maxes`: the
/// SortedList layout), and back to `flat` when the tier shrinks to `LOAD`. Either way a
/// position is a [`Cursor`] into the tier's segments ([`seg`](Self::seg)): the one flat Vec,
/// or the sublists.
///
/// Laid out by hand (`repr(C)`, aligned to a cache line): the fields every visit reads come
/// first and fill the first line.
#[derive(Clone, Debug)]
#[repr(C, align(64))]
struct Tier {
    penalty: i64,
    len: usize,
    /// Agents of the tier missing each queue channel.
    missing: [u32; N_CHANNELS],
    /// The entries while the tier is small (empty once it has sublists).
    flat: Vec<Entry>,
    /// The sublists and their maxima once the tier is large (empty while it is flat).
    subs: Vec<Sub>,
    maxes: Vec<Key>,
    /// Weighted-random, per channel: weight -> agents available on the channel (sorted by
    /// weight, no zero counts), and the sum of their weights. strategies.py keeps the tier's
    /// weights and subtracts those of the agents missing the channel at each draw: the same
    /// counts.
    on_weights: [Vec<(i64, u32)>; N_CHANNELS],
    on_total: [u64; N_CHANNELS],
}

/// A position in a tier: segment (the flat Vec, or a sublist) and offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cursor {
    sub: usize,
    off: usize,
}

impl Tier {
    fn new(penalty: i64) -> Tier {
        Tier {
            penalty,
            len: 0,
            missing: [0; N_CHANNELS],
            flat: Vec::new(),
            subs: Vec::new(),
            maxes: Vec::new(),
            on_weights: Default::default(),
            on_total: [0; N_CHANNELS],
        }
    }

    /// Agents of the tier available on `channel`.
    fn on(&self, channel: Channel) -> usize {
        self.len - self.missing[channel as usize] as usize
    }

    /// Whether the entries are in the one flat Vec (no sublists).
    #[inline]
    fn is_flat(&self) -> bool {
        self.subs.is_empty()
    }

    /// Number of segments: 1 while flat (possibly empty), else the sublists.
    #[inline]
    fn segs(&self) -> usize {
        if self.is_flat() {
            1
        } else {
            self.subs.len()
        }
    }

    /// The entries of segment `i` (< [`segs`](Self::segs)).
    #[inline]
    fn seg(&self, i: usize) -> &[Entry] {
        if self.is_flat() {
            &self.flat
        } else {
            &self.subs[i].entries
        }
    }

    /// Entries of segment `i` available on `channel`.
    #[inline]
    fn seg_on(&self, i: usize, channel: Channel) -> usize {
        if self.is_flat() {
            self.on(channel)
        } else {
            self.subs[i].on(channel)
        }
    }

    /// Insert an entry (its key must not be present): SortedList.add.
    fn insert(&mut self, entry: Entry, miss: ChannelSet, queue: ChannelSet) {
        self.len += 1;
        if self.is_flat() {
            let idx = self.flat.partition_point(|e| e.key < entry.key);
            if self.flat.capacity() == 0 {
                self.flat.reserve_exact(8);
            }
            self.flat.insert(idx, entry);
            if self.flat.len() > 2 * LOAD {
                self.split_flat(queue);
            }
            return;
        }
        let mut pos = self.maxes.partition_point(|m| *m < entry.key);
        if pos == self.maxes.len() {
            pos -= 1;
            self.maxes[pos] = entry.key.clone();
            let sub = &mut self.subs[pos];
            sub.count(miss, 1);
            sub.entries.push(entry);
        } else {
            let sub = &mut self.subs[pos];
            sub.count(miss, 1);
            let idx = sub.entries.partition_point(|e| e.key < entry.key);
            sub.entries.insert(idx, entry);
        }
        if self.subs[pos].entries.len() > 2 * LOAD {
            let sub = &mut self.subs[pos];
            let mut half = Sub {
                entries: sub.entries.split_off(LOAD),
                missing: [0; N_CHANNELS],
            };
            half.recount(queue);
            for c in 0..N_CHANNELS {
                sub.missing[c] -= half.missing[c];
            }
            self.maxes[pos] = sub.entries[LOAD - 1].key.clone();
            let half_max = half.entries[half.entries.len() - 1].key.clone();
            self.subs.insert(pos + 1, half);
            self.maxes.insert(pos + 1, half_max);
        }
    }

    /// The flat Vec grew past `2 * LOAD`: into two sublists (`LOAD` entries, then the rest),
    /// as a sublist of that size splits.
    fn split_flat(&mut self, queue: ChannelSet) {
        let mut entries = std::mem::take(&mut self.flat);
        let rest = entries.split_off(LOAD);
        for part in [entries, rest] {
            let mut sub = Sub {
                entries: part,
                missing: [0; N_CHANNELS],
            };
            sub.recount(queue);
            self.maxes
                .push(sub.entries[sub.entries.len() - 1].key.clone());
            self.subs.push(sub);
        }
    }

    /// The sublists shrank to `LOAD` entries in all: back into the flat Vec.
    fn join_subs(&mut self) {
        let mut flat = Vec::with_capacity(2 * LOAD);
        for sub in self.subs.drain(..) {
            flat.extend(sub.entries);
        }
        self.maxes.clear();
        self.flat = flat;
    }

    /// Where `key` is, if present.
    fn find(&self, key: &Key) -> Option<Cursor> {
        let (pos, entries) = if self.is_flat() {
            (0, &self.flat)
        } else {
            let pos = self.maxes.partition_point(|m| m < key);
            if pos == self.maxes.len() {
                return None;
            }
            (pos, &self.subs[pos].entries)
        };
        let off = entries.partition_point(|e| e.key < *key);
        if off < entries.len() && entries[off].key == *key {
            Some(Cursor { sub: pos, off })
        } else {
            None
        }
    }

    /// Where `key` is (present; panics otherwise).
    fn find_present(&self, key: &Key) -> Cursor {
        match self.find(key) {
            Some(at) => at,
            None => panic!(
                "ready index out of step: key of {:?} not in its tier",
                key.id
            ),
        }
    }

    /// Remove the entry of `key` (present): SortedList.remove.
    fn delete(&mut self, key: &Key, miss: ChannelSet) {
        let at = self.find_present(key);
        self.len -= 1;
        if self.is_flat() {
            self.flat.remove(at.off);
            return;
        }
        let sub = &mut self.subs[at.sub];
        sub.count(miss, -1);
        sub.entries.remove(at.off);
        if sub.entries.is_empty() {
            self.subs.remove(at.sub);
            self.maxes.remove(at.sub);
        } else if at.off == sub.entries.len() {
            self.maxes[at.sub] = sub.entries[at.off - 1].key.clone();
        }
        if self.len <= LOAD {
            self.join_subs();
        }
    }

    /// The entry of `key` (present; panics otherwise) is now available on `channels`
    /// (missing `new_miss` instead of `old_miss`).
    fn rechannel(
        &mut self,
        key: &Key,
        channels: ChannelSet,
        old_miss: ChannelSet,
        new_miss: ChannelSet,
    ) {
        let at = self.find_present(key);
        if self.is_flat() {
            self.flat[at.off].chans = channels;
            return;
        }
        let sub = &mut self.subs[at.sub];
        sub.entries[at.off].chans = channels;
        sub.count(old_miss, -1);
        sub.count(new_miss, 1);
    }

    /// Cursor of flat position `index` (the end when `index >= len`).
    fn locate(&self, mut index: usize) -> Cursor {
        for i in 0..self.segs() {
            let n = self.seg(i).len();
            if index < n {
                return Cursor { sub: i, off: index };
            }
            index -= n;
        }
        Cursor {
            sub: self.segs(),
            off: 0,
        }
    }

    /// Cursor of the `nth` agent available on `channel` (strategies.py `_position`).
    fn nth_on(&self, mut nth: usize, channel: Channel) -> Cursor {
        if self.missing[channel as usize] == 0 {
            return self.locate(nth);
        }
        for i in 0..self.segs() {
            let on = self.seg_on(i, channel);
            if nth >= on {
                nth -= on;
                continue;
            }
            for (off, entry) in self.seg(i).iter().enumerate() {
                if entry.chans.contains(channel) {
                    if nth == 0 {
                        return Cursor { sub: i, off };
                    }
                    nth -= 1;
                }
            }
        }
        panic!("ready index out of step: no agent {} on {:?}", nth, channel)
    }

    /// Cursor of the first key whose head is above `rr_last` (round-robin: the member after
    /// the one offered last; keys `>= (rr_last + 1, "")`), the end when there is none.
    fn after_order(&self, rr_last: i64) -> Cursor {
        let (pos, entries) = if self.is_flat() {
            (0, &self.flat)
        } else {
            let pos = self.maxes.partition_point(|m| m.ints[0] <= rr_last);
            if pos == self.maxes.len() {
                return Cursor { sub: pos, off: 0 };
            }
            (pos, &self.subs[pos].entries)
        };
        let off = entries.partition_point(|e| e.key.ints[0] <= rr_last);
        if off == entries.len() {
            // Flat, and nobody after rr_last.
            return Cursor {
                sub: self.segs(),
                off: 0,
            };
        }
        Cursor { sub: pos, off }
    }

    fn at(&self, at: Cursor) -> &Entry {
        &self.seg(at.sub)[at.off]
    }

    fn iter(&self) -> impl Iterator<Item = &Key> + '_ {
        self.flat
            .iter()
            .chain(self.subs.iter().flat_map(|sub| sub.entries.iter()))
            .map(|e| &e.key)
    }
}

/// The agent ids of a tier available on a channel, in the order the strategy offers to them
/// ([`ReadyIndex::candidates`]): every entry once, from a starting point, wrapping around.
pub struct Candidates<'a> {
    tier: Option<&'a Tier>,
    at: Cursor,
    remaining: usize,
    channel: Channel,
}

impl<'a> Iterator for Candidates<'a> {
    type Item = &'a Id;

    fn next(&mut self) -> Option<&'a Id> {
        let channel = self.channel;
        let tier = match self.tier {
            Some(tier) => tier,
            None => return None,
        };
        while self.remaining > 0 {
            if self.at.sub >= tier.segs() {
                self.at = Cursor { sub: 0, off: 0 };
            }
            let entries = tier.seg(self.at.sub);
            let n = entries.len();
            if self.at.off == 0 && n <= self.remaining && tier.seg_on(self.at.sub, channel) == 0 {
                // Nobody on the channel in this segment: skip it whole.
                self.remaining -= n;
                self.at.sub += 1;
                continue;
            }
            if self.at.off >= n {
                self.at = Cursor {
                    sub: self.at.sub + 1,
                    off: 0,
                };
                continue;
            }
            let entry = &entries[self.at.off];
            self.at.off += 1;
            self.remaining -= 1;
            if entry.chans.contains(channel) {
                return Some(&entry.key.id);
            }
        }
        None
    }
}

// -- the index -----------------------------------------------------------------------------------

/// Where an agent is: its tier, key and channels.
#[derive(Clone, Debug)]
struct Place {
    penalty: i64,
    key: Key,
    chans: ChannelSet,
}

/// Available agents of one queue, all its channels: a sorted list per penalty tier
/// (strategies.py `ReadyIndex`).
///
/// An agent has one entry (its penalty and strategy key) and the channels it can take now
/// (among the queue's). Picking for a channel sees exactly the agents available on that
/// channel, in key order; agents available on all the queue's channels need no per-channel
/// bookkeeping: the index counts, per channel and tier, the agents *missing* it.
#[derive(Clone, Debug)]
pub struct ReadyIndex {
    strategy: Strategy,
    channels: ChannelSet,
    weighted: bool,
    tiers: Vec<Tier>, // by penalty, ascending; kept when empty
    /// Agents in the index.
    len: usize,
}

impl ReadyIndex {
    /// An empty index for a queue with `strategy` and `channels`.
    pub fn new(strategy: Strategy, channels: ChannelSet) -> ReadyIndex {
        ReadyIndex {
            strategy,
            channels,
            weighted: strategy == Strategy::WeightedRandom,
            tiers: Vec::new(),
            len: 0,
        }
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The queue's channels.
    pub fn channels(&self) -> ChannelSet {
        self.channels
    }

    /// Agents in the index.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many agents are available on `channel`.
    pub fn count(&self, channel: Channel) -> usize {
        if !self.channels.contains(channel) {
            return 0;
        }
        let missing: usize = self
            .tiers
            .iter()
            .map(|t| t.missing[channel as usize] as usize)
            .sum();
        self.len - missing
    }

    /// Whether some agent is available on `channel`.
    pub fn serves(&self, channel: Channel) -> bool {
        self.channels.contains(channel) && self.tiers.iter().any(|t| t.on(channel) > 0)
    }

    fn tier_index(&self, penalty: i64) -> Result<usize, usize> {
        self.tiers.binary_search_by(|t| t.penalty.cmp(&penalty))
    }

    fn tier(&self, penalty: i64) -> Option<&Tier> {
        self.tier_index(penalty).ok().map(|i| &self.tiers[i])
    }

    // -- updates ---------------------------------------------------------------------------------

    /// The queue channels an agent on `chans` counts as missing.
    #[inline]
    fn miss(&self, chans: ChannelSet) -> ChannelSet {
        missing_of(self.channels, chans)
    }

    /// Count an agent as missing the channels of `miss` (`delta` +1 / -1).
    fn count_missing(&mut self, tier: usize, miss: ChannelSet, delta: i32) {
        let tier = &mut self.tiers[tier];
        for ch in miss.iter() {
            let n = &mut tier.missing[ch as usize];
            *n = (*n as i64 + delta as i64) as u32;
        }
    }

    /// Weighted-random: count an agent of `weight` as available on `chans` (`delta` +1 / -1).
    fn count_weight(&mut self, tier: usize, weight: i64, chans: ChannelSet, delta: i32) {
        let tier = &mut self.tiers[tier];
        for ch in chans.iter() {
            let c = ch as usize;
            bump(&mut tier.on_weights[c], weight, delta);
            tier.on_total[c] = (tier.on_total[c] as i64 + delta as i64 * weight) as u64;
        }
    }

    /// Add an agent's entry: its tier, strategy key (ending with its id) and the channels it is
    /// available on (non-empty, the queue's only). The agent must not be in the index: the
    /// caller keeps each agent's entry (the index has no map from agents to entries; see
    /// [`ReadyIndexById`] for one).
    pub fn insert(&mut self, penalty: i64, key: Key, channels: ChannelSet) {
        self.attach(penalty, key, channels);
        self.len += 1;
    }

    /// Remove an agent's entry, given as it was inserted (or last changed). Panics when it is
    /// not in the index.
    pub fn delete(&mut self, penalty: i64, key: &Key, channels: ChannelSet) {
        self.detach(penalty, key, channels);
        self.len -= 1;
    }

    /// Change an agent's entry from `old` to `new` ([`delete`](Self::delete) then
    /// [`insert`](Self::insert), or only the channels when the tier and key stay).
    pub fn change(&mut self, old: (i64, &Key, ChannelSet), new: (i64, Key, ChannelSet)) {
        if old.0 == new.0 && *old.1 == new.1 {
            if old.2 != new.2 {
                self.rechannel(old.0, old.1, old.2, new.2);
            }
            return;
        }
        self.detach(old.0, old.1, old.2);
        self.attach(new.0, new.1, new.2);
    }

    /// Put an agent's entry in its tier (the tier counts included).
    fn attach(&mut self, penalty: i64, key: Key, channels: ChannelSet) {
        let t = match self.tier_index(penalty) {
            Ok(t) => t,
            Err(t) => {
                self.tiers.insert(t, Tier::new(penalty));
                t
            }
        };
        let miss = self.miss(channels);
        let queue = self.channels;
        let weight = key.ints[0];
        self.tiers[t].insert(
            Entry {
                key,
                chans: channels,
            },
            miss,
            queue,
        );
        self.count_missing(t, miss, 1);
        if self.weighted {
            self.count_weight(t, weight, channels, 1);
        }
    }

    /// Take an agent's entry out of its tier (the tier counts included).
    fn detach(&mut self, penalty: i64, key: &Key, chans: ChannelSet) {
        let t = match self.tier_index(penalty) {
            Ok(t) => t,
            Err(_) => panic!("ready index out of step: no tier {}", penalty),
        };
        let miss = self.miss(chans);
        self.tiers[t].delete(key, miss);
        self.count_missing(t, miss, -1);
        if self.weighted {
            self.count_weight(t, key.ints[0], chans, -1);
        }
    }

    /// The agent's entry (tier `penalty`, `key`) stays but is now available on `channels`
    /// instead of `old`. Panics when the entry is not in the index.
    pub fn rechannel(&mut self, penalty: i64, key: &Key, old: ChannelSet, channels: ChannelSet) {
        let queue = self.channels;
        let t = match self.tier_index(penalty) {
            Ok(t) => t,
            Err(_) => panic!("ready index out of step: no tier {}", penalty),
        };
        let (old_miss, new_miss) = (missing_of(queue, old), missing_of(queue, channels));
        self.tiers[t].rechannel(key, channels, old_miss, new_miss);
        self.count_missing(t, old_miss, -1);
        self.count_missing(t, new_miss, 1);
        if self.weighted {
            let w = key.ints[0];
            self.count_weight(t, w, ChannelSet(old.0 & !channels.0), -1);
            self.count_weight(t, w, ChannelSet(channels.0 & !old.0), 1);
        }
    }

    // -- picking ---------------------------------------------------------------------------------

    /// Penalties of the tiers with agents on `channel` allowed by `max_penalty` (None: all),
    /// lowest first.
    pub fn tiers(
        &self,
        max_penalty: Option<i64>,
        channel: Channel,
    ) -> impl Iterator<Item = i64> + '_ {
        let served = self.channels.contains(channel);
        self.tiers
            .iter()
            .take_while(move |t| served && max_penalty.iter().all(|&m| t.penalty <= m))
            .filter(move |t| t.on(channel) > 0)
            .map(|t| t.penalty)
    }

    /// The lowest penalty whose tier has agents on `channel`, None when there is none.
    pub fn lowest(&self, channel: Channel) -> Option<i64> {
        self.tiers(None, channel).next()
    }

    /// Penalties of the tiers with agents (on any channel), lowest first.
    pub fn penalties(&self) -> impl Iterator<Item = i64> + '_ {
        self.tiers.iter().filter(|t| t.len > 0).map(|t| t.penalty)
    }

    /// How many agents the tier has (on any channel; 0 when there is no such tier).
    pub fn tier_len(&self, penalty: i64) -> usize {
        self.tier(penalty).map_or(0, |t| t.len)
    }

    /// The keys of a tier in order (all its agents, whatever their channels; empty when there
    /// is no such tier).
    pub fn tier_keys(&self, penalty: i64) -> impl Iterator<Item = &Key> + '_ {
        self.tier(penalty).into_iter().flat_map(|t| t.iter())
    }

    /// Random strategies: the drawn starting position among the tier's agents on `channel`
    /// (one draw; strategies.py `_start`).
    fn start<D: Draw + ?Sized>(&self, tier: &Tier, draw: &mut D, channel: Channel) -> usize {
        if self.strategy == Strategy::Random {
            return draw.randrange(tier.on(channel) as u64) as usize;
        }
        let c = channel as usize;
        let mut left = draw.randrange(tier.on_total[c]);
        let mut position = 0u64;
        for &(w, n) in &tier.on_weights[c] {
            let n = n as u64;
            let span = w as u64 * n;
            if left < span {
                return (position + left / w as u64) as usize;
            }
            left -= span;
            position += n;
        }
        0 // unreachable: the draw is below the total
    }

    /// Where the strategy starts in a tier with agents on `channel` (one draw for random
    /// strategies).
    fn start_cursor<D: Draw + ?Sized>(
        &self,
        tier: &Tier,
        draw: &mut D,
        rr_last: i64,
        channel: Channel,
    ) -> Cursor {
        match self.strategy {
            Strategy::RoundRobin => tier.after_order(rr_last),
            Strategy::Random | Strategy::WeightedRandom => {
                let nth = self.start(tier, draw, channel);
                tier.nth_on(nth, channel)
            }
            _ => Cursor { sub: 0, off: 0 },
        }
    }

    /// The agent this strategy offers to first in a tier with agents on `channel` (the first
    /// of [`candidates`](Self::candidates)). Panics when the tier has no agent on `channel`.
    pub fn first<D: Draw + ?Sized>(
        &self,
        penalty: i64,
        draw: &mut D,
        rr_last: i64,
        channel: Channel,
    ) -> Id {
        let tier = match self.tier(penalty) {
            Some(tier) if tier.on(channel) > 0 && self.channels.contains(channel) => tier,
            _ => panic!("no agent on {:?} in tier {}", channel, penalty),
        };
        let full = tier.missing[channel as usize] == 0;
        match self.strategy {
            Strategy::Random | Strategy::WeightedRandom => {
                let nth = self.start(tier, draw, channel);
                tier.at(tier.nth_on(nth, channel)).key.id.clone()
            }
            Strategy::RoundRobin if full => {
                let mut at = tier.after_order(rr_last);
                if at.sub == tier.segs() {
                    at = Cursor { sub: 0, off: 0 };
                }
                tier.at(at).key.id.clone()
            }
            _ if full => tier.seg(0)[0].key.id.clone(),
            _ => self
                .candidates(penalty, draw, rr_last, channel)
                .next()
                .expect("the counts say the agent exists")
                .clone(),
        }
    }

    /// Agent ids of a tier available on `channel`, in the order this strategy offers to them:
    /// round-robin from the member after `rr_last` (wrapping around), random strategies from a
    /// drawn position (one draw, made here rather than at the first `next` as the Python
    /// generator does), the others in key order. Lazy: the caller stops at the first agent
    /// meeting the interaction's requirement. Empty (and no draw) when the tier has no agent
    /// on `channel`.
    pub fn candidates<D: Draw + ?Sized>(
        &self,
        penalty: i64,
        draw: &mut D,
        rr_last: i64,
        channel: Channel,
    ) -> Candidates<'_> {
        let tier = match self.tier(penalty) {
            Some(tier) if tier.on(channel) > 0 && self.channels.contains(channel) => tier,
            _ => {
                return Candidates {
                    tier: None,
                    at: Cursor { sub: 0, off: 0 },
                    remaining: 0,
                    channel,
                }
            }
        };
        Candidates {
            tier: Some(tier),
            at: self.start_cursor(tier, draw, rr_last, channel),
            remaining: tier.len,
            channel,
        }
    }
}

// -- by agent id -----------------------------------------------------------------------------------

/// A [`ReadyIndex`] that keeps each agent's entry itself, updated by agent id (the API of
/// strategies.py's `ReadyIndex`): for the differential tests and the unit tests. The engine
/// keeps its agents' entries in their records and uses the [`ReadyIndex`] directly, which
/// saves a hash map per queue and a look-up per update.
#[derive(Clone, Debug)]
pub struct ReadyIndexById {
    index: ReadyIndex,
    places: FxMap<Id, Place>,
}

impl std::ops::Deref for ReadyIndexById {
    type Target = ReadyIndex;
    fn deref(&self) -> &ReadyIndex {
        &self.index
    }
}

impl ReadyIndexById {
    /// An empty index for a queue with `strategy` and `channels`.
    pub fn new(strategy: Strategy, channels: ChannelSet) -> ReadyIndexById {
        ReadyIndexById {
            index: ReadyIndex::new(strategy, channels),
            places: FxMap::default(),
        }
    }

    /// Whether the agent is in the index.
    pub fn contains(&self, agent_id: &str) -> bool {
        self.places.contains_key(agent_id)
    }

    /// The agent's penalty, key and channels, when it is in the index.
    pub fn get(&self, agent_id: &str) -> Option<(i64, &Key, ChannelSet)> {
        self.places
            .get(agent_id)
            .map(|p| (p.penalty, &p.key, p.chans))
    }

    /// Whether the agent is in the index and available on `channel`.
    pub fn has(&self, agent_id: &str, channel: Channel) -> bool {
        match self.places.get(agent_id) {
            Some(p) => p.chans.contains(channel),
            None => false,
        }
    }

    /// Add an agent available on `channels` (non-empty, the queue's only), not in the index.
    pub fn add(&mut self, agent_id: Id, penalty: i64, key: Key, channels: ChannelSet) {
        debug_assert!(*agent_id == *key.id, "the key ends with the agent id");
        debug_assert!(
            !self.places.contains_key(&agent_id),
            "agent in the index already"
        );
        self.index.insert(penalty, key.clone(), channels);
        self.places.insert(
            agent_id,
            Place {
                penalty,
                key,
                chans: channels,
            },
        );
    }

    /// Remove the agent; false (and nothing changes) when it is not in the index.
    pub fn remove(&mut self, agent_id: &str) -> bool {
        match self.places.remove(agent_id) {
            Some(place) => {
                self.index.delete(place.penalty, &place.key, place.chans);
                true
            }
            None => false,
        }
    }

    /// [`remove`](Self::remove) (when the agent is in the index) then [`add`](Self::add),
    /// with one look-up of the agent instead of two: the agent's key, tier or channels change.
    pub fn replace(&mut self, agent_id: &Id, penalty: i64, key: Key, channels: ChannelSet) {
        debug_assert!(**agent_id == *key.id, "the key ends with the agent id");
        let new = Place {
            penalty,
            key: key.clone(),
            chans: channels,
        };
        match self.places.get_mut(&**agent_id) {
            Some(place) => {
                let old = std::mem::replace(place, new);
                self.index.delete(old.penalty, &old.key, old.chans);
                self.index.insert(penalty, key, channels);
            }
            None => {
                self.places.insert(agent_id.clone(), new);
                self.index.insert(penalty, key, channels);
            }
        }
    }

    /// The agent stays (same key) but is now available on `channels`; false (and nothing
    /// changes) when it is not in the index.
    pub fn set_channels(&mut self, agent_id: &str, channels: ChannelSet) -> bool {
        let (penalty, key, old) = match self.places.get_mut(agent_id) {
            Some(place) => {
                let old = place.chans;
                place.chans = channels;
                (place.penalty, place.key.clone(), old)
            }
            None => return false,
        };
        if old != channels {
            self.index.rechannel(penalty, &key, old, channels);
        }
        true
    }
}

// -- test-only binding ---------------------------------------------------------------------------

fn parse_channel(name: &str) -> PyResult<Channel> {
    Channel::parse(name).ok_or_else(|| PyValueError::new_err(format!("unknown channel {name:?}")))
}

fn parse_channels(names: Vec<String>) -> PyResult<ChannelSet> {
    let mut set = ChannelSet::EMPTY;
    for name in names {
        set.insert(parse_channel(&name)?);
    }
    Ok(set)
}

/// The integers of a key tuple (1 to 4 ints then `agent_id`).
fn key_ints(key: &PyTuple, agent_id: &str) -> PyResult<Vec<i64>> {
    let n = key.len();
    if !(2..=5).contains(&n) {
        return Err(PyTypeError::new_err(
            "a key is 1 to 4 ints then the agent id",
        ));
    }
    let mut ints = Vec::with_capacity(n - 1);
    for i in 0..n - 1 {
        ints.push(key.get_item(i)?.extract::<i64>()?);
    }
    let id: &str = key.get_item(n - 1)?.extract()?;
    if id != agent_id {
        return Err(PyValueError::new_err("the key must end with the agent id"));
    }
    Ok(ints)
}

/// A Python `random.Random` as the draw source; the first error is kept for the caller.
struct PyDraw<'py> {
    rng: &'py PyAny,
    error: Option<PyErr>,
}

impl Draw for PyDraw<'_> {
    fn randrange(&mut self, n: u64) -> u64 {
        let drawn = self
            .rng
            .call_method1(pyo3::intern!(self.rng.py(), "randrange"), (n,))
            .and_then(|v| v.extract::<u64>());
        match drawn {
            Ok(v) => v,
            Err(e) => {
                self.error.get_or_insert(e);
                0
            }
        }
    }
}

impl PyDraw<'_> {
    fn done<T>(self, value: T) -> PyResult<T> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}

/// The ready index, for the differential tests (tests/routing/compiled/test_ready_index.py):
/// keys are tuples of ints ending with the agent id, channels tuples of channel names, the
/// draw source a `random.Random`.
#[pyclass(unsendable)]
pub struct ReadyIndexForTests {
    index: ReadyIndexById,
}

impl ReadyIndexForTests {
    fn check_tier(&self, penalty: i64, channel: Channel) -> PyResult<()> {
        match self.index.tier(penalty) {
            None => Err(PyKeyError::new_err(penalty)),
            Some(t) if t.on(channel) == 0 || !self.index.channels.contains(channel) => {
                Err(PyIndexError::new_err(format!(
                    "no agent on {} in tier {}",
                    channel.name(),
                    penalty
                )))
            }
            Some(_) => Ok(()),
        }
    }
}

#[pymethods]
impl ReadyIndexForTests {
    #[new]
    fn new(strategy: &str, channels: Vec<String>) -> PyResult<Self> {
        let strategy = Strategy::parse(strategy)
            .ok_or_else(|| PyValueError::new_err(format!("unknown strategy {strategy:?}")))?;
        Ok(ReadyIndexForTests {
            index: ReadyIndexById::new(strategy, parse_channels(channels)?),
        })
    }

    fn __len__(&self) -> usize {
        self.index.len()
    }

    fn __contains__(&self, agent_id: &str) -> bool {
        self.index.contains(agent_id)
    }

    fn has(&self, agent_id: &str, channel: &str) -> PyResult<bool> {
        Ok(self.index.has(agent_id, parse_channel(channel)?))
    }

    fn count(&self, channel: &str) -> PyResult<usize> {
        Ok(self.index.count(parse_channel(channel)?))
    }

    fn serves(&self, channel: &str) -> PyResult<bool> {
        Ok(self.index.serves(parse_channel(channel)?))
    }

    fn add(
        &mut self,
        agent_id: &str,
        penalty: i64,
        key: &PyTuple,
        channels: Vec<String>,
    ) -> PyResult<()> {
        let ints = key_ints(key, agent_id)?;
        if self.index.contains(agent_id) {
            return Err(PyValueError::new_err(format!(
                "{agent_id:?} is in the index already"
            )));
        }
        let chans = parse_channels(channels)?;
        let id: Id = Id::from(agent_id);
        self.index
            .add(id.clone(), penalty, Key::new(&ints, id), chans);
        Ok(())
    }

    /// `remove` (when present) then `add`, in one call.
    fn replace(
        &mut self,
        agent_id: &str,
        penalty: i64,
        key: &PyTuple,
        channels: Vec<String>,
    ) -> PyResult<()> {
        let ints = key_ints(key, agent_id)?;
        let chans = parse_channels(channels)?;
        let id: Id = Id::from(agent_id);
        self.index
            .replace(&id, penalty, Key::new(&ints, id.clone()), chans);
        Ok(())
    }

    fn remove(&mut self, agent_id: &str) -> PyResult<()> {
        if self.index.remove(agent_id) {
            Ok(())
        } else {
            Err(PyKeyError::new_err(agent_id.to_string()))
        }
    }

    fn set_channels(&mut self, agent_id: &str, channels: Vec<String>) -> PyResult<()> {
        if self.index.set_channels(agent_id, parse_channels(channels)?) {
            Ok(())
        } else {
            Err(PyKeyError::new_err(agent_id.to_string()))
        }
    }

    /// Penalties of the tiers with agents on `channel` allowed by `max_penalty`.
    fn tiers(&self, max_penalty: Option<i64>, channel: &str) -> PyResult<Vec<i64>> {
        Ok(self
            .index
            .tiers(max_penalty, parse_channel(channel)?)
            .collect())
    }

    fn lowest(&self, channel: &str) -> PyResult<Option<i64>> {
        Ok(self.index.lowest(parse_channel(channel)?))
    }

    fn penalties(&self) -> Vec<i64> {
        self.index.penalties().collect()
    }

    fn tier_len(&self, penalty: i64) -> usize {
        self.index.tier_len(penalty)
    }

    /// The keys of a tier in order, as tuples.
    fn tier_keys<'py>(&self, py: Python<'py>, penalty: i64) -> &'py PyList {
        let list = PyList::empty(py);
        for key in self.index.tier_keys(penalty) {
            let mut items: Vec<PyObject> = key.ints().iter().map(|v| v.into_py(py)).collect();
            items.push(PyString::new(py, key.id()).into_py(py));
            list.append(PyTuple::new(py, items))
                .expect("append to a new list");
        }
        list
    }

    fn first(&self, penalty: i64, rng: &PyAny, rr_last: i64, channel: &str) -> PyResult<String> {
        let channel = parse_channel(channel)?;
        self.check_tier(penalty, channel)?;
        let mut draw = PyDraw { rng, error: None };
        let aid = self.index.first(penalty, &mut draw, rr_last, channel);
        draw.done(aid.to_string())
    }

    /// The candidates as a list (at most `limit` of them when given: the iteration stops
    /// there).
    #[args(limit = "None")]
    fn candidates(
        &self,
        penalty: i64,
        rng: &PyAny,
        rr_last: i64,
        channel: &str,
        limit: Option<usize>,
    ) -> PyResult<Vec<String>> {
        let channel = parse_channel(channel)?;
        if self.index.tier(penalty).is_none() {
            return Err(PyKeyError::new_err(penalty));
        }
        let mut draw = PyDraw { rng, error: None };
        let ids: Vec<String> = self
            .index
            .candidates(penalty, &mut draw, rr_last, channel)
            .take(limit.unwrap_or(usize::MAX))
            .map(|id| id.to_string())
            .collect();
        draw.done(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// xorshift64*: a cheap draw source for the unit tests and the timing.
    struct XorShift(u64);

    impl Draw for XorShift {
        fn randrange(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    const VOICE_CHAT: ChannelSet = ChannelSet(1 | 2);
    const VOICE: ChannelSet = ChannelSet(1);

    fn ids(n: usize) -> Vec<Id> {
        (0..n).map(|i| Id::from(format!("agent-{i:05}"))).collect()
    }

    fn key(strategy: Strategy, i: usize, id: &Id) -> Key {
        let facts = KeyFacts {
            load: (i % 3) as i64,
            idle_since: 1_700_000_000_000_000 + (i as i64 * 7919) % 10_007,
            order: i as i64,
            weight: 1 + (i % 100) as i64,
            ..KeyFacts::default()
        };
        Key::for_strategy(strategy, &facts, id.clone())
    }

    fn filled(strategy: Strategy, ids: &[Id], every_nth_voice_only: usize) -> ReadyIndexById {
        let mut index = ReadyIndexById::new(strategy, VOICE_CHAT);
        for (i, id) in ids.iter().enumerate() {
            let chans = if every_nth_voice_only > 0 && i % every_nth_voice_only == 0 {
                VOICE
            } else {
                VOICE_CHAT
            };
            index.add(id.clone(), 0, key(strategy, i, id), chans);
        }
        index
    }

    #[test]
    fn entry_size() {
        // LOAD is sized for entries of this size (see its comment).
        assert!(std::mem::size_of::<Entry>() <= 64);
    }

    #[test]
    fn orders_and_counts() {
        let ids = ids(1000);
        let mut index = filled(Strategy::Linear, &ids, 3);
        assert_eq!(index.len(), 1000);
        assert_eq!(index.count(Channel::Voice), 1000);
        assert_eq!(index.count(Channel::Chat), 666);
        assert_eq!(index.count(Channel::Email), 0);
        assert!(!index.serves(Channel::Email));
        let keys: Vec<&Key> = index.tier_keys(0).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let mut draw = XorShift(1);
        let chat: Vec<&Id> = index.candidates(0, &mut draw, -1, Channel::Chat).collect();
        assert_eq!(chat.len(), 666);
        assert_eq!(
            &*index.first(0, &mut draw, -1, Channel::Chat),
            "agent-00001"
        );
        assert!(index.remove("agent-00001"));
        assert!(!index.remove("agent-00001"));
        assert!(index.set_channels("agent-00003", VOICE_CHAT));
        let id: Id = Id::from("agent-00003");
        index.replace(&id, 1, key(Strategy::Linear, 3, &id), VOICE);
        assert_eq!(index.get("agent-00003").map(|e| e.0), Some(1));
        index.replace(&id, 0, key(Strategy::Linear, 3, &id), VOICE_CHAT);
        assert_eq!(
            index.tiers(None, Channel::Voice).collect::<Vec<_>>(),
            vec![0]
        );
        assert_eq!(
            &*index.first(0, &mut draw, -1, Channel::Chat),
            "agent-00002"
        );
        assert_eq!(index.count(Channel::Chat), 666);
        for id in &ids {
            index.remove(id);
        }
        assert!(index.is_empty());
        assert_eq!(index.lowest(Channel::Voice), None);
    }

    /// The fastest of `batches` runs of `rounds` calls of `f`, in ns per call (the least
    /// disturbed by other processes on a shared machine).
    fn best_ns(batches: u32, rounds: u32, mut f: impl FnMut(u32)) -> f64 {
        let mut best = f64::INFINITY;
        for b in 0..batches {
            let start = Instant::now();
            for r in 0..rounds {
                f(b * rounds + r);
            }
            best = best.min(start.elapsed().as_nanos() as f64 / rounds as f64);
        }
        best
    }

    /// Timings: `RUSTFLAGS="-C link-arg=-lpython3.11" cargo test --release -- --ignored
    /// --nocapture ready::tests::timings` (the test binary needs libpython linked in).
    #[test]
    #[ignore]
    fn timings() {
        let strategies = [
            Strategy::Linear,
            Strategy::RoundRobin,
            Strategy::LongestIdle,
            Strategy::Random,
            Strategy::WeightedRandom,
        ];
        for &n in &[10usize, 3000] {
            let ids = ids(n);
            for &strategy in &strategies {
                for &(label, nth) in &[("all on the channel", 0usize), ("1 in 4 not", 4)] {
                    let mut index = filled(strategy, &ids, nth);
                    let mut draw = XorShift(42);
                    let chans: Vec<ChannelSet> = (0..n)
                        .map(|i| index.get(&ids[i]).expect("added").2)
                        .collect();
                    // add+remove pair: an agent leaves and comes back with a new key (an offer).
                    let pair = best_ns(200, 5_000, |r| {
                        let i = (r as usize * 7) % n;
                        let id = &ids[i];
                        index.remove(id);
                        index.add(
                            id.clone(),
                            0,
                            key(strategy, i + r as usize % 5, id),
                            chans[i],
                        );
                    });
                    let replace = best_ns(200, 5_000, |r| {
                        let i = (r as usize * 7) % n;
                        let id = &ids[i];
                        index.replace(id, 0, key(strategy, i + r as usize % 5, id), chans[i]);
                    });
                    let mut picked = 0usize;
                    let first = best_ns(200, 5_000, |r| {
                        let rr_last = (r as i64 * 13) % (n as i64 + 1) - 1;
                        picked += index.first(0, &mut draw, rr_last, Channel::Chat).len();
                    });
                    assert!(picked > 0);
                    println!(
                        "{n:>5} agents  {:<16} {label:<19} add+remove {pair:>6.1} ns  replace {replace:>6.1} ns  first {first:>6.1} ns",
                        strategy.name()
                    );
                }
            }
        }
    }
}
