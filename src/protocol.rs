//! The rules of CPython's trace-function protocol that do not need an interpreter:
//! which event goes to which function, and what a function's result does to `f_trace`.
//!
//! The binding layer (`hook::legacy`) applies these rules to real frames.

/// An event as CPython numbers it in `Py_tracefunc`'s `what` argument (`PyTrace_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceEvent {
    Call,
    Exception,
    Line,
    Return,
    CCall,
    CException,
    CReturn,
    Opcode,
}

/// Every event, in `PyTrace_*` order: `ALL[what]` is the event CPython calls `what`.
pub const ALL_EVENTS: [TraceEvent; 8] = [
    TraceEvent::Call,
    TraceEvent::Exception,
    TraceEvent::Line,
    TraceEvent::Return,
    TraceEvent::CCall,
    TraceEvent::CException,
    TraceEvent::CReturn,
    TraceEvent::Opcode,
];

impl TraceEvent {
    /// The event for a `PyTrace_*` number, or None for a number CPython does not define.
    pub fn from_what(what: i32) -> Option<Self> {
        usize::try_from(what)
            .ok()
            .and_then(|index| ALL_EVENTS.get(index).copied())
    }

    /// The string a Python trace function receives as `event`.
    pub fn name(self) -> &'static str {
        match self {
            TraceEvent::Call => "call",
            TraceEvent::Exception => "exception",
            TraceEvent::Line => "line",
            TraceEvent::Return => "return",
            TraceEvent::CCall => "c_call",
            TraceEvent::CException => "c_exception",
            TraceEvent::CReturn => "c_return",
            TraceEvent::Opcode => "opcode",
        }
    }

    /// Which trace function receives this event.
    pub fn receiver(self) -> Receiver {
        match self {
            TraceEvent::Call => Receiver::Global,
            _ => Receiver::Local,
        }
    }
}

/// Who is called for an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Receiver {
    /// The thread's trace function, the one given to `settrace` (only for `call`).
    Global,
    /// The frame's own function, `frame.f_trace`; no call at all when it is unset.
    Local,
}

/// What a trace function's outcome does to the frame's `f_trace`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalUpdate {
    /// The function returned None: `f_trace` stays as it is (for `call`, it stays unset).
    Keep,
    /// The function returned another object: it becomes `f_trace`.
    Replace,
    /// The function raised: tracing is switched off for the thread and `f_trace` is cleared.
    DisableAndClear,
}

/// The update for a trace function's result, given whether it raised and whether it returned None.
pub fn local_update(raised: bool, returned_none: bool) -> LocalUpdate {
    if raised {
        LocalUpdate::DisableAndClear
    } else if returned_none {
        LocalUpdate::Keep
    } else {
        LocalUpdate::Replace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_pytrace_constants() {
        // PyTrace_CALL .. PyTrace_OPCODE are 0..7 in every supported CPython.
        assert_eq!(TraceEvent::from_what(0), Some(TraceEvent::Call));
        assert_eq!(TraceEvent::from_what(1), Some(TraceEvent::Exception));
        assert_eq!(TraceEvent::from_what(2), Some(TraceEvent::Line));
        assert_eq!(TraceEvent::from_what(3), Some(TraceEvent::Return));
        assert_eq!(TraceEvent::from_what(7), Some(TraceEvent::Opcode));
        assert_eq!(TraceEvent::from_what(8), None);
        assert_eq!(TraceEvent::from_what(-1), None);
    }

    #[test]
    fn names_are_cpythons() {
        let names: Vec<_> = ALL_EVENTS.iter().map(|e| e.name()).collect();
        assert_eq!(
            names,
            [
                "call",
                "exception",
                "line",
                "return",
                "c_call",
                "c_exception",
                "c_return",
                "opcode"
            ]
        );
    }

    #[test]
    fn only_call_goes_to_the_global_function() {
        for event in ALL_EVENTS {
            let expected = if event == TraceEvent::Call {
                Receiver::Global
            } else {
                Receiver::Local
            };
            assert_eq!(event.receiver(), expected, "{event:?}");
        }
    }

    #[test]
    fn none_keeps_other_replaces_error_clears() {
        assert_eq!(local_update(false, true), LocalUpdate::Keep);
        assert_eq!(local_update(false, false), LocalUpdate::Replace);
        assert_eq!(local_update(true, false), LocalUpdate::DisableAndClear);
        assert_eq!(local_update(true, true), LocalUpdate::DisableAndClear);
    }
}
