//! Per-code-object decisions and when they go stale.
//!
//! Every [`Filter`](super::Filter) takes a new generation from a process-wide counter when it
//! is built, and a filter never changes afterwards: changing filters means building a new one,
//! so a decision stamped with another generation is stale, whichever filter made it (also one
//! of a tracer that has since been dropped). The binding layer keeps one [`CachedDecision`] per
//! code object in its `co_extra` slot, packed into the slot's pointer-sized value by
//! [`CachedDecision::to_raw`] (ferrotrace supports 64-bit Linux only); the value is a plain
//! number, not a pointer, so the slot needs no free function. Two filters active at the same
//! time overwrite each other's decisions: still correct, only slower.
//!
//! The decision depends on the [`Environment`](super::Environment) too, which is meant to be
//! computed once per process; a binding layer that recomputes it must build a new filter.

use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

/// The next generation is taken from here; 0 is never handed out, so a zero slot is "unset".
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// A generation no other call in this process returns.
pub fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Whether a code object matched a filter, and which filter (generation) decided it, packed
/// into one nonzero word: the generation shifted left by one, the answer in the low bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedDecision(NonZeroU64);

impl CachedDecision {
    /// `generation` must be at least 1 and below 2^63 (a process cannot build that many filters).
    pub fn new(generation: u64, matches: bool) -> Self {
        debug_assert!(generation != 0 && generation < 1 << 63, "{generation}");
        let packed = generation << 1 | u64::from(matches);
        CachedDecision(NonZeroU64::new(packed).unwrap_or(NonZeroU64::MIN))
    }

    pub fn generation(self) -> u64 {
        self.0.get() >> 1
    }

    pub fn matches(self) -> bool {
        self.0.get() & 1 == 1
    }

    /// Whether this decision was made by the filter of `generation`.
    pub fn is_current(self, generation: u64) -> bool {
        self.generation() == generation
    }

    /// The packed word, for the code object's `co_extra` slot.
    pub fn to_raw(self) -> u64 {
        self.0.get()
    }

    /// The decision [`to_raw`](Self::to_raw) returned, or None for an empty slot (0).
    pub fn from_raw(raw: u64) -> Option<Self> {
        NonZeroU64::new(raw)
            .filter(|raw| raw.get() >> 1 != 0)
            .map(CachedDecision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_unique_and_nonzero() {
        let a = next_generation();
        let b = next_generation();
        assert!(a != 0 && b != 0 && a != b);
    }

    #[test]
    fn packs_into_a_nonzero_word_and_back() {
        for generation in [1, 2, 12345, (1 << 63) - 1] {
            for matches in [false, true] {
                let decision = CachedDecision::new(generation, matches);
                let raw = decision.to_raw();
                assert_ne!(raw, 0);
                assert_eq!(CachedDecision::from_raw(raw), Some(decision));
            }
        }
        assert_eq!(CachedDecision::from_raw(0), None);
        assert_eq!(CachedDecision::from_raw(1), None);
        assert_eq!(std::mem::size_of::<Option<CachedDecision>>(), 8);
    }

    #[test]
    fn only_the_deciding_generation_is_current() {
        let decision = CachedDecision::new(7, true);
        assert!(decision.is_current(7));
        assert!(!decision.is_current(8));
        assert!(!decision.is_current(6));
        assert!(decision.matches());
        assert_eq!(decision.generation(), 7);
    }
}
