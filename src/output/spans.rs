//! One thread's events as properly nested begin/end steps: the rules both writers share for
//! streams that do not balance (see [`crate::output`]).

use crate::record::{EventKind, EventRef, ThreadBuffer};

/// A step of a balanced stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A call opens a slice at `ts`.
    Begin { call: EventRef<'a>, ts: u64 },
    /// The innermost open slice ends.
    End(End<'a>),
}

/// The end of a slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End<'a> {
    pub ts: u64,
    /// The `Return` or `Unwind` event; None when the call was still open at the end.
    pub close: Option<EventRef<'a>>,
    /// The last `Exception` event seen in this frame (not in the frames it called).
    pub exception_seen: Option<EventRef<'a>>,
}

impl<'a> End<'a> {
    /// The repr of the returned (or yielded) value, if the frame returned and it was recorded.
    pub fn return_value(&self) -> Option<&'a str> {
        self.close
            .filter(|e| e.kind() == EventKind::Return)
            .and_then(|e| e.detail())
    }

    /// The exception the frame raised or saw: the `Unwind` event's detail if the frame
    /// exited by one, else that of the last `Exception` event in the frame. An exception
    /// without a recorded description is `""`.
    pub fn exception(&self) -> Option<&'a str> {
        let unwound = self.close.filter(|e| e.kind() == EventKind::Unwind);
        match (unwound.and_then(|e| e.detail()), self.exception_seen) {
            (Some(detail), _) => Some(detail),
            (None, Some(seen)) => Some(seen.detail().unwrap_or("")),
            (None, None) => unwound.map(|_| ""),
        }
    }

    /// Whether the call was still open when the recording ended.
    pub fn unfinished(&self) -> bool {
        self.close.is_none()
    }
}

/// The steps of one thread's events. Rules:
/// - a `Call` begins a slice; `Return` and `Unwind` end the innermost open one;
/// - a `Return` or `Unwind` with no open call (its call came before the recording) is dropped,
///   and so is an `Exception` outside any call; `Line` events are skipped;
/// - calls still open after the last event end, innermost first, at the thread's last
///   timestamp or the recording's end, whichever is later;
/// - timestamps never go backwards: each is at least the one before it, so a slice never ends
///   before it begins nor after its parent ends.
pub struct Steps<'a, I> {
    events: I,
    /// The last `Exception` event of each open call, outermost first.
    open: Vec<Option<EventRef<'a>>>,
    last_ts: u64,
    end_ts: Option<u64>,
}

impl<'a> Steps<'a, crate::record::Events<'a>> {
    pub fn of_thread(thread: &'a ThreadBuffer, recording_end_ns: Option<u64>) -> Self {
        Steps::new(thread.events(), recording_end_ns)
    }
}

impl<'a, I: Iterator<Item = EventRef<'a>>> Steps<'a, I> {
    pub fn new(events: I, recording_end_ns: Option<u64>) -> Self {
        Steps {
            events,
            open: Vec::new(),
            last_ts: 0,
            end_ts: recording_end_ns,
        }
    }
}

impl<'a, I: Iterator<Item = EventRef<'a>>> Iterator for Steps<'a, I> {
    type Item = Step<'a>;

    fn next(&mut self) -> Option<Step<'a>> {
        for event in self.events.by_ref() {
            self.last_ts = self.last_ts.max(event.timestamp_ns);
            let ts = self.last_ts;
            match event.kind() {
                EventKind::Call => {
                    self.open.push(None);
                    return Some(Step::Begin { call: event, ts });
                }
                EventKind::Return | EventKind::Unwind => {
                    if let Some(exception_seen) = self.open.pop() {
                        return Some(Step::End(End {
                            ts,
                            close: Some(event),
                            exception_seen,
                        }));
                    }
                }
                EventKind::Exception => {
                    if let Some(top) = self.open.last_mut() {
                        *top = Some(event);
                    }
                }
                EventKind::Line => {}
            }
        }
        let exception_seen = self.open.pop()?;
        if let Some(end) = self.end_ts.take() {
            self.last_ts = self.last_ts.max(end);
        }
        Some(Step::End(End {
            ts: self.last_ts,
            close: None,
            exception_seen,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Event, FunctionId, Recorded};

    fn ev(kind: EventKind, f: u32, ts: u64) -> Recorded {
        Event::new(kind, FunctionId(f), 1, ts).into()
    }

    fn buffer(events: &[Recorded]) -> ThreadBuffer {
        let mut thread = ThreadBuffer::new(1, "t");
        for event in events {
            thread.push(event.clone());
        }
        thread
    }

    /// Steps as `(+f@ts)` / `(-@ts)` for compact comparisons.
    fn trace(events: &[Recorded], end: Option<u64>) -> Vec<String> {
        let thread = buffer(events);
        Steps::of_thread(&thread, end)
            .map(|step| match step {
                Step::Begin { call, ts } => format!("+{}@{ts}", call.function.0),
                Step::End(end) if end.unfinished() => format!("-@{}!", end.ts),
                Step::End(end) => format!("-@{}", end.ts),
            })
            .collect()
    }

    use EventKind::*;

    #[test]
    fn a_balanced_stream_passes_through() {
        let events = [
            ev(Call, 0, 1),
            ev(Line, 0, 2),
            ev(Call, 1, 3),
            ev(Return, 1, 4),
            ev(Return, 0, 5),
        ];
        assert_eq!(trace(&events, None), ["+0@1", "+1@3", "-@4", "-@5"]);
    }

    #[test]
    fn stray_returns_are_dropped_and_open_calls_closed() {
        let events = [
            ev(Return, 9, 1),
            ev(Unwind, 9, 2),
            ev(Exception, 9, 2),
            ev(Call, 0, 3),
            ev(Call, 1, 4),
            ev(Line, 1, 6),
        ];
        assert_eq!(trace(&events, None), ["+0@3", "+1@4", "-@6!", "-@6!"]);
        assert_eq!(trace(&events, Some(10)), ["+0@3", "+1@4", "-@10!", "-@10!"]);
        // A recording end before the last event does not move time backwards.
        assert_eq!(trace(&events, Some(5)), ["+0@3", "+1@4", "-@6!", "-@6!"]);
        assert!(trace(&[], Some(5)).is_empty());
    }

    #[test]
    fn time_never_goes_backwards() {
        let events = [
            ev(Call, 0, 10),
            ev(Call, 1, 5),
            ev(Return, 1, 7),
            ev(Return, 0, 12),
        ];
        assert_eq!(trace(&events, None), ["+0@10", "+1@10", "-@10", "-@12"]);
    }

    #[test]
    fn exceptions_belong_to_their_frame() {
        let events = [
            ev(Call, 0, 1),
            ev(Call, 1, 2),
            ev(Exception, 1, 3).with_detail("ValueError: inner"),
            ev(Return, 1, 4),
            ev(Exception, 0, 5).with_detail("ValueError: inner"),
            ev(Call, 2, 6),
            ev(Unwind, 2, 7).with_detail("KeyError: 'k'"),
            ev(Call, 3, 8),
            ev(Unwind, 3, 9),
            ev(Call, 4, 10),
            ev(Exception, 4, 11),
            ev(Return, 4, 12).with_detail("None"),
            ev(Return, 0, 13).with_detail("42"),
        ];
        let thread = buffer(&events);
        let ends: Vec<(Option<&str>, Option<&str>)> = Steps::of_thread(&thread, None)
            .filter_map(|step| match step {
                Step::End(end) => Some((end.return_value(), end.exception())),
                Step::Begin { .. } => None,
            })
            .collect();
        assert_eq!(
            ends,
            [
                (None, Some("ValueError: inner")),
                (None, Some("KeyError: 'k'")),
                (None, Some("")),
                (Some("None"), Some("")),
                (Some("42"), Some("ValueError: inner")),
            ]
        );
    }
}
