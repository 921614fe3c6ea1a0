//! Which kinds of event the user wants (`--events call,return`).

use std::fmt;
use std::str::FromStr;

use super::error::FilterError;
use crate::protocol::TraceEvent;

/// A set of the events a trace function can receive: call, line, return, exception, opcode.
///
/// The `c_*` events belong to `sys.setprofile`, not to tracing: no mask contains them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventMask(u8);

impl EventMask {
    /// The events a user can ask for, in the order they are listed to users.
    pub const SELECTABLE: [TraceEvent; 5] = [
        TraceEvent::Call,
        TraceEvent::Line,
        TraceEvent::Return,
        TraceEvent::Exception,
        TraceEvent::Opcode,
    ];

    /// Their names, as a trace function receives them.
    pub const NAMES: [&'static str; 5] = ["call", "line", "return", "exception", "opcode"];

    pub const fn empty() -> Self {
        EventMask(0)
    }

    /// All five, opcode included.
    pub const fn all() -> Self {
        EventMask(0b1_1111)
    }

    /// Parses a comma-separated list of names, such as `"call, return"`. Case and spaces do
    /// not matter and empty items are skipped; an unknown name, or no name at all, is an error.
    pub fn parse(list: &str) -> Result<Self, FilterError> {
        let mut mask = EventMask::empty();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let event = Self::SELECTABLE
                .into_iter()
                .find(|event| event.name().eq_ignore_ascii_case(item))
                .ok_or_else(|| FilterError::UnknownEvent(item.to_owned()))?;
            mask.0 |= bit(event);
        }
        if mask.is_empty() {
            return Err(FilterError::NoEvents);
        }
        Ok(mask)
    }

    pub fn contains(self, event: TraceEvent) -> bool {
        self.0 & bit(event) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The events in either mask.
    pub fn union(self, other: Self) -> Self {
        EventMask(self.0 | other.0)
    }

    /// The events in the mask, in [`Self::SELECTABLE`] order.
    pub fn iter(self) -> impl Iterator<Item = TraceEvent> {
        Self::SELECTABLE
            .into_iter()
            .filter(move |&event| self.contains(event))
    }
}

/// What `sys.settrace` delivers unless a frame asks for opcodes: all but `opcode`.
impl Default for EventMask {
    fn default() -> Self {
        EventMask(0b0_1111)
    }
}

/// One bit per selectable event; none for the profiling-only `c_*` events.
fn bit(event: TraceEvent) -> u8 {
    match event {
        TraceEvent::Call => 1,
        TraceEvent::Line => 1 << 1,
        TraceEvent::Return => 1 << 2,
        TraceEvent::Exception => 1 << 3,
        TraceEvent::Opcode => 1 << 4,
        TraceEvent::CCall | TraceEvent::CException | TraceEvent::CReturn => 0,
    }
}

impl FromStr for EventMask {
    type Err = FilterError;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        Self::parse(list)
    }
}

/// The list form that [`EventMask::parse`] reads back, e.g. `call,return`.
impl fmt::Display for EventMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, event) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(event.name())?;
        }
        Ok(())
    }
}

impl fmt::Debug for EventMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventMask({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ALL_EVENTS;

    #[test]
    fn union_has_the_events_of_both() {
        let calls = EventMask::parse("call,return").unwrap();
        let lines = EventMask::parse("line").unwrap();
        let both = calls.union(lines);
        assert!(both.contains(TraceEvent::Call) && both.contains(TraceEvent::Line));
        assert!(!both.contains(TraceEvent::Exception));
        assert_eq!(both.union(EventMask::empty()), both);
    }

    #[test]
    fn names_are_the_protocols() {
        let names: Vec<_> = EventMask::SELECTABLE.iter().map(|e| e.name()).collect();
        assert_eq!(names, EventMask::NAMES);
    }

    #[test]
    fn parses_a_comma_list() {
        let mask = EventMask::parse("call,return").unwrap();
        assert!(mask.contains(TraceEvent::Call));
        assert!(mask.contains(TraceEvent::Return));
        assert!(!mask.contains(TraceEvent::Line));
        assert!(!mask.contains(TraceEvent::Exception));
        assert!(!mask.contains(TraceEvent::Opcode));
        assert_eq!(mask.to_string(), "call,return");
    }

    #[test]
    fn parsing_forgives_case_spaces_repeats_and_empty_items() {
        let mask: EventMask = " Line , CALL,,line, ".parse().unwrap();
        assert_eq!(mask.to_string(), "call,line");
        assert_eq!(
            EventMask::parse("opcode,exception,return,line,call").unwrap(),
            EventMask::all()
        );
    }

    #[test]
    fn unknown_or_missing_names_are_errors() {
        assert_eq!(
            EventMask::parse("call,lines"),
            Err(FilterError::UnknownEvent("lines".into()))
        );
        assert_eq!(
            EventMask::parse("c_call"),
            Err(FilterError::UnknownEvent("c_call".into()))
        );
        assert_eq!(EventMask::parse(""), Err(FilterError::NoEvents));
        assert_eq!(EventMask::parse(" , "), Err(FilterError::NoEvents));
    }

    #[test]
    fn default_is_settraces_and_all_adds_opcode() {
        assert_eq!(
            EventMask::default().to_string(),
            "call,line,return,exception"
        );
        assert_eq!(
            EventMask::all().to_string(),
            "call,line,return,exception,opcode"
        );
        assert!(EventMask::empty().is_empty());
        assert_eq!(
            format!("{:?}", EventMask::default()),
            "EventMask(call,line,return,exception)"
        );
    }

    #[test]
    fn profiling_events_are_never_contained() {
        for event in ALL_EVENTS {
            let selectable = EventMask::SELECTABLE.contains(&event);
            assert_eq!(EventMask::all().contains(event), selectable, "{event:?}");
        }
    }

    #[test]
    fn display_round_trips() {
        for bits in 1..=0b1_1111 {
            let mask = EventMask(bits);
            assert_eq!(EventMask::parse(&mask.to_string()), Ok(mask));
        }
    }
}
