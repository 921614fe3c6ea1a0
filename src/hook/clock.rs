//! The recording clock: nanoseconds of `CLOCK_MONOTONIC` since the first recorder of the
//! process started, read once per recorded event.
//!
//! Where the kernel itself keeps time with the CPU's time-stamp counter (clock source `tsc`,
//! which it only picks when the counter is invariant and synchronised across CPUs), a thread
//! reads the counter (`rdtsc`, well under half the cost of `clock_gettime`) and converts it
//! from an anchor: a (counter, `CLOCK_MONOTONIC`) pair the thread took itself, with the rate
//! measured from the clock's start to that anchor. A thread takes a new anchor once the counter
//! has moved [`MAX_ANCHOR_TICKS`] past the last one, so a timestamp never drifts from the
//! monotonic clock by more than the rate's error over about a millisecond. Each thread's
//! timestamps never go back. Elsewhere (another clock source, another architecture) every read
//! is `clock_gettime`.

use std::cell::Cell;
use std::sync::LazyLock;

use crate::record::Event;

/// When the clock started, on `CLOCK_MONOTONIC`, and the counter then (None: the counter is
/// not used).
struct Base {
    ns: u64,
    counter: Option<u64>,
}

static BASE: LazyLock<Base> = LazyLock::new(|| {
    if counter_is_usable() {
        let (counter, ns) = counter_and_monotonic();
        Base {
            ns,
            counter: Some(counter),
        }
    } else {
        Base {
            ns: monotonic_ns(),
            counter: None,
        }
    }
});

/// Counter ticks after which a thread takes a new anchor (about 1.4 ms at 3 GHz).
const MAX_ANCHOR_TICKS: u64 = 1 << 22;
/// The rate is used once the clock has run this long (before, every read is `clock_gettime`):
/// measured over a shorter time, its error would show.
const MIN_CALIBRATION_NS: u64 = 10_000_000;

/// A thread's anchor; `ns_per_tick_q32` 0 means "no rate yet" (and, where the counter is not
/// used, always).
#[derive(Clone, Copy)]
struct Anchor {
    counter: u64,
    ns: u64,
    /// Nanoseconds per tick, times 2^32.
    ns_per_tick_q32: u64,
}

/// This thread's recording state, in one thread-local (in a shared library every access to a
/// thread-local is a call to `__tls_get_addr`, and a recorded event needs both): the clock's
/// anchor, and the slot in which the record sink keeps the buffer this thread recorded into
/// last (see [`crate::hook::record_sink`]).
struct ThreadState {
    anchor: Cell<Anchor>,
    /// The last timestamp this thread was given (apart from the anchor: an event writes only
    /// this).
    last_ns: Cell<u64>,
    slot: Cell<BufferSlot>,
}

/// Where this thread records in the record sink it recorded into last.
#[derive(Clone, Copy)]
pub struct BufferSlot {
    /// The sink's serial; 0: none.
    pub serial: u64,
    /// The index of this thread's buffer in the sink's recording.
    pub index: usize,
    /// That buffer's open chunk ([`ThreadBuffer::open_chunk`](crate::record::ThreadBuffer)).
    pub open: *mut Vec<Event>,
}

impl BufferSlot {
    pub const NONE: BufferSlot = BufferSlot {
        serial: 0,
        index: 0,
        open: std::ptr::null_mut(),
    };
}

thread_local! {
    static THREAD: ThreadState = const {
        ThreadState {
            anchor: Cell::new(Anchor {
                counter: 0,
                ns: 0,
                ns_per_tick_q32: 0,
            }),
            last_ns: Cell::new(0),
            slot: Cell::new(BufferSlot::NONE),
        }
    };
}

/// `CLOCK_MONOTONIC` in nanoseconds, read directly: `Instant::elapsed` adds overflow checks
/// and a `Duration` per event.
#[inline]
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(now.tv_nsec as u64)
}

/// Nanoseconds since the process's recording clock started.
#[inline]
pub fn now_ns() -> u64 {
    now_ns_with_slot(|ns, _| ns)
}

/// The time now (as [`now_ns`]) and this thread's buffer slot, in one thread-local access.
#[inline]
pub fn now_ns_with_slot<R>(f: impl FnOnce(u64, &Cell<BufferSlot>) -> R) -> R {
    let thread = this_thread();
    f(thread.now_ns(), thread.slot())
}

/// The calling thread's recording state, reached by one thread-local access (not `Send`: it
/// is only ever the calling thread's).
#[derive(Clone, Copy)]
pub struct ThisThread(*const ThreadState);

/// The calling thread's recording state.
#[inline(always)]
pub fn this_thread() -> ThisThread {
    ThisThread(THREAD.with(|thread| thread as *const ThreadState))
}

impl ThisThread {
    #[inline(always)]
    fn state(&self) -> &ThreadState {
        // SAFETY: the calling thread's own state, which has no destructor: alive as long as
        // the thread, and a `ThisThread` never leaves it.
        unsafe { &*self.0 }
    }

    /// The time now, as [`now_ns`].
    #[inline(always)]
    pub fn now_ns(&self) -> u64 {
        thread_now_ns(self.state())
    }

    /// This thread's buffer slot.
    #[inline(always)]
    pub fn slot(&self) -> &Cell<BufferSlot> {
        &self.state().slot
    }
}

/// The time now on `thread` (the calling thread's state). A thread's rate comes from the
/// clock's base, so the base is only looked at when the thread has none (or a stale anchor).
#[inline(always)]
fn thread_now_ns(thread: &ThreadState) -> u64 {
    let anchor = thread.anchor.get();
    // The rate first: where the counter is not used it is never read.
    if anchor.ns_per_tick_q32 == 0 {
        return without_rate(thread);
    }
    let ticks = read_counter().wrapping_sub(anchor.counter);
    if ticks > MAX_ANCHOR_TICKS {
        return without_rate(thread);
    }
    let elapsed = (u128::from(ticks) * u128::from(anchor.ns_per_tick_q32)) >> 32;
    let ns = (anchor.ns + elapsed as u64).max(thread.last_ns.get());
    thread.last_ns.set(ns);
    ns
}

/// The time now on a thread without a (fresh) rate: a new anchor, or `clock_gettime` where the
/// counter is not used.
#[cold]
fn without_rate(thread: &ThreadState) -> u64 {
    let base = &*BASE;
    match base.counter {
        Some(base_counter) => reanchor(thread, base, base_counter),
        None => monotonic_ns().saturating_sub(base.ns),
    }
}

/// Forgets the calling thread's buffer slot (in a forked child, for the thread that forked:
/// see [`crate::hook::record_sink`]). Touches only this thread's own state.
pub fn forget_buffer_slot() {
    let _ = THREAD.try_with(|thread| thread.slot.set(BufferSlot::NONE));
}

/// This thread's buffer slot.
#[inline]
pub fn with_buffer_slot<R>(f: impl FnOnce(&Cell<BufferSlot>) -> R) -> R {
    THREAD.with(|thread| f(&thread.slot))
}

fn reanchor(thread: &ThreadState, base: &Base, base_counter: u64) -> u64 {
    let (counter, monotonic) = counter_and_monotonic();
    let ns = monotonic.saturating_sub(base.ns);
    let ticks = counter.saturating_sub(base_counter);
    let ns_per_tick_q32 = if ns >= MIN_CALIBRATION_NS && ticks > 0 {
        u64::try_from((u128::from(ns) << 32) / u128::from(ticks)).unwrap_or(0)
    } else {
        0
    };
    thread.anchor.set(Anchor {
        counter,
        ns,
        ns_per_tick_q32,
    });
    let last_ns = ns.max(thread.last_ns.get());
    thread.last_ns.set(last_ns);
    last_ns
}

/// A counter reading and `CLOCK_MONOTONIC` taken together: the reading is the midpoint of two
/// around the clock read, retried a few times if the thread was interrupted between them.
fn counter_and_monotonic() -> (u64, u64) {
    const TIGHT_TICKS: u64 = 20_000;
    let mut best = (u64::MAX, 0, 0);
    for _ in 0..4 {
        let before = read_counter();
        let ns = monotonic_ns();
        let after = read_counter();
        let spread = after.wrapping_sub(before);
        if spread < best.0 {
            best = (spread, before.wrapping_add(spread / 2), ns);
        }
        if spread < TIGHT_TICKS {
            break;
        }
    }
    (best.1, best.2)
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_counter() -> u64 {
    // SAFETY: rdtsc exists on every x86_64 CPU; it is only used where the kernel's clock
    // source is the counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn read_counter() -> u64 {
    0
}

/// Whether the kernel keeps time with the time-stamp counter.
fn counter_is_usable() -> bool {
    cfg!(target_arch = "x86_64")
        && std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )
        .is_ok_and(|source| source.trim() == "tsc")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_follow_the_monotonic_clock_and_never_go_back() {
        // Bound on how far a reading may stray from CLOCK_MONOTONIC: generous, the rate is
        // measured over at least MIN_CALIBRATION_NS.
        const SLACK_NS: u64 = 1_000_000;
        let start = now_ns();
        let mut last = start;
        let base_ns = BASE.ns;
        loop {
            let before = monotonic_ns() - base_ns;
            let ns = now_ns();
            let after = monotonic_ns() - base_ns;
            assert!(ns >= last, "went back: {ns} after {last}");
            assert!(
                before.saturating_sub(SLACK_NS) <= ns && ns <= after + SLACK_NS,
                "{ns} outside [{before}, {after}]"
            );
            last = ns;
            if ns > start + 3 * MIN_CALIBRATION_NS {
                break;
            }
        }
    }
}
