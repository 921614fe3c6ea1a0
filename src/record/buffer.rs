//! One thread's events, in chunks.

use std::iter::{Chain, Flatten, Once};
use std::slice;
use std::sync::Arc;

use super::stream::{Chunk, ChunkStream, Piece};
use super::{Event, EventRef, Recorded};

/// Events in a thread's first chunk (64 KiB of events at 16 bytes each).
pub const CHUNK_EVENTS: usize = 4096;
/// Events in each later chunk (1 MiB): a thread that filled its first chunk records many, and
/// a later chunk's pages are faulted in by one call when it is allocated instead of one page
/// fault per 4 KiB as the events reach them.
pub const LATER_CHUNK_EVENTS: usize = 16 * CHUNK_EVENTS;

/// The events of one thread, in the order they were pushed.
///
/// Stored as a list of chunks ([`CHUNK_EVENTS`] events, then [`LATER_CHUNK_EVENTS`] each),
/// each allocated once at its full size: pushing never moves an event already stored, and
/// allocates only when the last chunk is full. A busy thread thus holds up to 1 MiB more than
/// its events. The chunk being filled (the open chunk) is boxed, so that its address stays
/// while the buffer moves: the recording fast path keeps it per thread
/// ([`ThreadBuffer::open_chunk`]) and pushes into it directly.
///
/// A streaming buffer ([`ThreadBuffer::stream_to`]) instead hands each full chunk to the
/// recording's writer and continues in a recycled one: it holds only the events not sent yet.
#[derive(Debug, Default)]
pub struct ThreadBuffer {
    tid: u64,
    name: String,
    /// The full chunks before the open one, oldest first.
    chunks: Vec<Vec<Event>>,
    /// The chunk being filled (no capacity before the first event). Boxed for its address.
    #[allow(clippy::box_collection)]
    open: Box<Vec<Event>>,
    /// The details of the events that have one, in event order.
    details: Vec<Box<str>>,
    /// The events pushed before the open chunk's, sent ones included.
    sealed: usize,
    /// Where full chunks go, and this thread's index in its recording; None: kept here.
    stream: Option<(Arc<ChunkStream>, usize)>,
}

impl ThreadBuffer {
    /// `tid` identifies the thread in the files written: the OS thread id
    /// (`threading.get_native_id()`) is what profilers show. `name` is `Thread.name`.
    pub fn new(tid: u64, name: impl Into<String>) -> Self {
        ThreadBuffer {
            tid,
            name: name.into(),
            chunks: Vec::new(),
            open: Box::default(),
            details: Vec::new(),
            sealed: 0,
            stream: None,
        }
    }

    /// Streams this buffer: from now on each full chunk (and what it holds when the stream
    /// is finished) is sent to `stream`'s writer as thread number `index`.
    pub(crate) fn stream_to(&mut self, stream: Arc<ChunkStream>, index: usize) {
        self.stream = Some((stream, index));
    }

    pub fn tid(&self) -> u64 {
        self.tid
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// For a thread renamed while it runs.
    pub fn set_name(&mut self, name: impl Into<String>) {
        self.name = name.into();
    }

    #[inline]
    pub fn push(&mut self, recorded: impl Into<Recorded>) {
        let Recorded { mut event, detail } = recorded.into();
        event.set_has_detail(detail.is_some());
        if let Some(detail) = detail {
            self.details.push(detail);
        }
        if self.open.len() < self.open.capacity() {
            self.open.push(event);
        } else {
            self.push_to_new_chunk(event);
        }
    }

    /// The open chunk, for a caller that pushes events without details into it while it has
    /// room ([`push_to_open`]) and calls [`Self::push`] when it is full. The address stays
    /// valid as long as the buffer (the box is never replaced, only its contents).
    pub(crate) fn open_chunk(&mut self) -> *mut Vec<Event> {
        &mut *self.open
    }

    #[cold]
    fn push_to_new_chunk(&mut self, event: Event) {
        let started = !self.is_empty();
        let recycled = if !started || self.stream.is_none() {
            None
        } else {
            // The new event's detail, if it has one, is already pushed: it stays here.
            let kept = self
                .details
                .split_off(self.details.len() - usize::from(event.has_detail()));
            let recycled = self.send_chunks();
            self.details.extend(kept);
            recycled
        };
        // Sent, the open chunk is empty; else full (or never allocated): sealed.
        self.seal_open();
        let mut chunk = match recycled {
            Some(chunk) => chunk,
            None if !started => Vec::with_capacity(CHUNK_EVENTS),
            None => {
                let mut chunk = Vec::with_capacity(LATER_CHUNK_EVENTS);
                prefault(chunk.spare_capacity_mut());
                chunk
            }
        };
        chunk.push(event);
        *self.open = chunk;
    }

    /// Moves the open chunk's events, if any, to the full chunks; the open chunk is then
    /// empty, with no capacity.
    fn seal_open(&mut self) {
        if !self.open.is_empty() {
            let open = std::mem::take(&mut *self.open);
            self.sealed += open.len();
            self.chunks.push(open);
        }
    }

    pub(crate) fn stop_streaming(&mut self) {
        self.stream = None;
    }

    /// Streaming: sends the events held here (even none) to the writer; a used chunk to fill
    /// next, if the writer returned one. In a process forked since the stream opened, the
    /// buffer stops streaming and keeps its events (see [`super::stream`]).
    pub(crate) fn send_chunks(&mut self) -> Option<Vec<Event>> {
        let (stream, thread) = self.stream.as_ref()?;
        if !stream.in_this_process() {
            self.stream = None;
            return None;
        }
        let mut details = std::mem::take(&mut self.details);
        let mut chunks = std::mem::take(&mut self.chunks);
        let open = std::mem::take(&mut *self.open);
        self.sealed += open.len();
        chunks.push(open);
        let last = chunks.len() - 1;
        for (n, events) in chunks.into_iter().enumerate() {
            // Each chunk takes the details of its own events (the last one, all that are left:
            // a streaming buffer holds one chunk, whose events are then not counted).
            let rest = if n == last {
                Vec::new()
            } else {
                let own = events.iter().filter(|e| e.has_detail()).count();
                details.split_off(own.min(details.len()))
            };
            let chunk = Chunk {
                thread: *thread,
                tid: self.tid,
                name: self.name.clone(),
                events,
                details: std::mem::replace(&mut details, rest),
            };
            // A writer that failed reports it when the stream finishes.
            stream.send(Piece::Chunk(chunk));
        }
        stream.recycled_chunk()
    }

    /// Every event pushed, sent ones included.
    pub fn len(&self) -> usize {
        self.sealed + self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The events, oldest first.
    pub fn events(&self) -> Events<'_> {
        Events {
            inner: self
                .chunks
                .iter()
                .chain(std::iter::once(&*self.open))
                .flatten(),
            details: self.details.iter(),
        }
    }

    /// The events chunk by chunk, oldest first, without their details ([`Self::details`]).
    pub(crate) fn event_slices(&self) -> impl Iterator<Item = &[Event]> {
        self.chunks
            .iter()
            .map(Vec::as_slice)
            .chain(std::iter::once(self.open.as_slice()))
    }

    /// The details of the events that have one, in event order.
    pub(crate) fn details(&self) -> &[Box<str>] {
        &self.details
    }

    pub fn last_timestamp_ns(&self) -> Option<u64> {
        self.open
            .last()
            .or_else(|| self.chunks.last().and_then(|chunk| chunk.last()))
            .map(|e| e.timestamp_ns)
    }

    /// Moves `later`'s events after this buffer's (its chunks are moved, not copied) and takes
    /// its name unless that is empty.
    pub(crate) fn append(&mut self, mut later: ThreadBuffer) {
        if !later.name.is_empty() {
            self.name = std::mem::take(&mut later.name);
        }
        self.seal_open();
        self.sealed += later.sealed;
        self.chunks.extend(later.chunks);
        // Its open chunk becomes this one's (the box stays: its address is kept per thread).
        *self.open = std::mem::take(&mut *later.open);
        self.details.extend(later.details);
    }
}

/// Faults in the whole pages of `memory` at once (`MADV_POPULATE_WRITE`, Linux 5.14+): one
/// system call instead of one page fault per page. Best effort: where it is not supported the
/// pages are faulted in as they are first written, as without it.
fn prefault<T>(memory: &mut [T]) {
    const PAGE: usize = 4096;
    let start = memory.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(memory);
    let first_page = start.next_multiple_of(PAGE);
    let last_page = end & !(PAGE - 1);
    if last_page > first_page {
        // SAFETY: the range lies inside `memory`, which this allocation owns; populating pages
        // for writing changes no byte of it.
        unsafe {
            libc::madvise(
                first_page as *mut libc::c_void,
                last_page - first_page,
                libc::MADV_POPULATE_WRITE,
            )
        };
    }
}

/// Pushes `event` (without a detail) into the open chunk at `open` if it has room; false if
/// it is full (then push it with [`ThreadBuffer::push`]).
///
/// # Safety
/// `open` is [`ThreadBuffer::open_chunk`] of a buffer that is alive, and nothing else refers
/// to that buffer during the call.
#[inline(always)]
pub(crate) unsafe fn push_to_open(open: *mut Vec<Event>, event: Event) -> bool {
    // SAFETY: as the caller promises: a live chunk, not otherwise referred to.
    let open = unsafe { &mut *open };
    let len = open.len();
    if len == open.capacity() {
        return false;
    }
    // SAFETY: `len` is below the capacity: the slot is allocated and unused; the event is
    // written (field by field: two stores, not a copy through the stack) before the length
    // covers it.
    unsafe {
        let slot = open.as_mut_ptr().add(len);
        std::ptr::addr_of_mut!((*slot).timestamp_ns).write(event.timestamp_ns);
        std::ptr::addr_of_mut!((*slot).function).write(event.function);
        std::ptr::addr_of_mut!((*slot).packed).write(event.packed);
        open.set_len(len + 1);
    }
    true
}

/// The chunks of a [`ThreadBuffer`], the open one last.
type ChunkIter<'a> = Chain<slice::Iter<'a, Vec<Event>>, Once<&'a Vec<Event>>>;

/// The events of a [`ThreadBuffer`], oldest first.
#[derive(Clone, Debug)]
pub struct Events<'a> {
    inner: Flatten<ChunkIter<'a>>,
    details: slice::Iter<'a, Box<str>>,
}

impl<'a> Events<'a> {
    /// The events of one chunk, `details` the details of those that have one.
    pub(crate) fn of_chunk(events: &'a Vec<Event>, details: &'a [Box<str>]) -> Self {
        let none: &[Vec<Event>] = &[];
        Events {
            inner: none.iter().chain(std::iter::once(events)).flatten(),
            details: details.iter(),
        }
    }
}

impl<'a> Iterator for Events<'a> {
    type Item = EventRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<EventRef<'a>> {
        let event = *self.inner.next()?;
        let detail = if event.has_detail() {
            self.details.next().map(|detail| &**detail)
        } else {
            None
        };
        Some(EventRef { event, detail })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EventKind, FunctionId};

    fn event(i: usize) -> Event {
        Event::new(EventKind::Line, FunctionId(0), i as u32, i as u64)
    }

    #[test]
    fn every_event_is_kept_in_order_across_chunks() {
        let mut buffer = ThreadBuffer::new(1, "MainThread");
        assert!(buffer.is_empty());
        assert_eq!(buffer.last_timestamp_ns(), None);
        let total = CHUNK_EVENTS + 2 * LATER_CHUNK_EVENTS + 5;
        for i in 0..total {
            buffer.push(event(i));
        }
        assert_eq!(buffer.len(), total);
        assert_eq!(buffer.events().count(), total);
        assert!(buffer
            .events()
            .enumerate()
            .all(|(i, e)| e.timestamp_ns == i as u64));
        assert_eq!(buffer.last_timestamp_ns(), Some(total as u64 - 1));
        // Three full chunks, the last five events in the open one.
        assert_eq!((buffer.chunks.len(), buffer.open.len()), (3, 5));
    }

    #[test]
    fn a_push_never_moves_stored_events() {
        let mut buffer = ThreadBuffer::new(1, "t");
        buffer.push(event(0));
        let first: *const Event = &buffer.open[0];
        let open = buffer.open_chunk();
        for i in 1..2 * CHUNK_EVENTS {
            buffer.push(event(i));
        }
        assert!(std::ptr::eq(first, &buffer.chunks[0][0]));
        assert_eq!(buffer.chunks[0].capacity(), CHUNK_EVENTS);
        assert_eq!(buffer.open.capacity(), LATER_CHUNK_EVENTS);
        // The open chunk's address stays while its contents change.
        assert_eq!(open, buffer.open_chunk());
    }

    #[test]
    fn pushing_into_the_open_chunk_directly_counts_until_it_is_full() {
        let mut buffer = ThreadBuffer::new(1, "t");
        let open = buffer.open_chunk();
        // SAFETY: the buffer's own open chunk, nothing else refers to it.
        assert!(
            !unsafe { push_to_open(open, event(0)) },
            "no chunk before the first push"
        );
        buffer.push(event(0));
        let mut pushed = 1;
        // SAFETY: as above.
        while unsafe { push_to_open(open, event(pushed)) } {
            pushed += 1;
        }
        assert_eq!(pushed, CHUNK_EVENTS);
        assert_eq!(buffer.len(), CHUNK_EVENTS);
        buffer.push(event(pushed));
        // SAFETY: as above.
        assert!(unsafe { push_to_open(open, event(pushed + 1)) });
        assert_eq!(buffer.len(), CHUNK_EVENTS + 2);
        assert!(buffer
            .events()
            .enumerate()
            .all(|(i, e)| e.timestamp_ns == i as u64));
        assert_eq!(buffer.last_timestamp_ns(), Some(CHUNK_EVENTS as u64 + 1));
    }

    #[test]
    fn appending_moves_chunks_and_keeps_pushing() {
        let mut a = ThreadBuffer::new(1, "a");
        a.push(event(0));
        let mut b = ThreadBuffer::new(1, "b");
        b.push(event(1));
        a.append(b);
        a.push(event(2));
        assert_eq!(a.name(), "b");
        assert_eq!(a.len(), 3);
        let stamps: Vec<u64> = a.events().map(|e| e.timestamp_ns).collect();
        assert_eq!(stamps, [0, 1, 2]);
        a.set_name("c");
        assert_eq!(a.name(), "c");
    }
}
