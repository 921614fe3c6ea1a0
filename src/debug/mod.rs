//! The debugger's decisions, pure Rust (no interpreter): for each trace event, whether bdb's
//! Python dispatch could do anything observable (stop, call a `user_*` hook, change the
//! stepping state) or would only hand back its own trace function.
//!
//! The answer is an over-approximation of `bdb.Bdb.trace_dispatch`: when in doubt, deliver.
//! What is delivered runs bdb's own Python code, so the debugger behaves exactly as stock bdb;
//! what is not delivered is an event for which stock bdb would have returned
//! `self.trace_dispatch` (or None on `call`) and done nothing else.

pub mod breakpoints;

pub use breakpoints::BreakTable;

/// The legacy trace events the debugger sees (`PyTrace_*` minus the C ones, never set by bdb).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Call,
    Line,
    Return,
    Exception,
    Opcode,
}

/// The part of bdb's stepping state that the decisions read, mirrored from the Python object
/// whenever bdb assigns it (`stopframe`, `returnframe`, `stoplineno`, `botframe`, `quitting`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepState {
    /// `stopframe is not None`.
    pub stopframe_set: bool,
    /// The stop frame's code is a generator, coroutine or async generator.
    pub stopframe_is_generator: bool,
    /// `stoplineno`: stop in the stop frame at lines >= this; -1: never stop there.
    pub stoplineno: i64,
    /// `botframe is not None` (None: the next `call` records it).
    pub botframe_set: bool,
    pub quitting: bool,
    /// A subclass overrides a `dispatch_*`, `stop_here`, `break_here` or `break_anywhere`
    /// method: only its own Python code can decide, so everything is delivered.
    pub python_decides: bool,
    /// `user_call` is not bdb's or pdb's (which act only when `stop_here`): every `call` of a
    /// file with breakpoints is delivered, as bdb would call it.
    pub user_call_observes: bool,
}

impl StepState {
    /// `continue` with no stepping anywhere: only breakpoints can stop the program.
    pub fn only_breakpoints(&self) -> bool {
        self.stopframe_set && self.stoplineno == -1 && !self.quitting && !self.python_decides
    }
}

/// What the event's frame is, as far as the decision needs.
#[derive(Clone, Copy, Debug)]
pub struct FrameFacts<'a> {
    /// The frame is bdb's `stopframe` / `returnframe`.
    pub is_stopframe: bool,
    pub is_returnframe: bool,
    /// `frame.f_lineno` now, and `f_code.co_firstlineno`.
    pub lineno: i64,
    pub first_lineno: i64,
    /// The code is a generator, coroutine or async generator.
    pub is_generator: bool,
    /// Breakpoint lines of the frame's (canonic) file; None when the file has none.
    pub file_breaks: Option<&'a [i64]>,
    /// The event is on another thread than the one whose command set the stepping state:
    /// only breakpoints stop there (stepping is per thread, as in gdb's all-stop mode).
    pub other_thread: bool,
    /// The frame's module matches one of bdb's `skip` patterns (bdb's `is_skipped_module`):
    /// `stop_here` is false there.
    pub module_skipped: bool,
}

/// What to do with one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Call bdb's Python `trace_dispatch`.
    Deliver,
    /// A `line` event that only a breakpoint can stop at (bdb's `stop_here` is false): bdb's
    /// `dispatch_line` decides (and evaluates the breakpoint's condition).
    DeliverBreakpointLine,
    /// Nothing to do; the frame keeps (or, on `call`, gets) the debugger as its local function.
    KeepTracing,
    /// `call` only: the frame is not traced (bdb's dispatch_call returns None).
    NoLocalTracing,
}

/// bdb's `stop_here`.
fn may_stop_here(state: &StepState, frame: &FrameFacts<'_>) -> bool {
    if frame.other_thread || frame.module_skipped {
        return false;
    }
    if frame.is_stopframe {
        return state.stoplineno != -1 && frame.lineno >= state.stoplineno;
    }
    !state.stopframe_set
}

/// bdb's `break_here` before `effective()`: a breakpoint on this line, or on the first line of
/// the function (a breakpoint set by function name).
fn may_break_here(frame: &FrameFacts<'_>) -> bool {
    frame
        .file_breaks
        .is_some_and(|lines| lines.contains(&frame.lineno) || lines.contains(&frame.first_lineno))
}

/// Decides one event; mirrors `bdb.Bdb.trace_dispatch` and its `dispatch_*` methods (3.11 and
/// 3.13), delivering whenever they could do more than return the trace function.
pub fn decide(state: &StepState, event: Event, frame: &FrameFacts<'_>) -> Decision {
    if state.python_decides || state.quitting {
        return Decision::Deliver;
    }
    let stop_here = may_stop_here(state, frame);
    let deliver_if = |condition: bool| {
        if condition {
            Decision::Deliver
        } else {
            Decision::KeepTracing
        }
    };
    match event {
        Event::Line if !stop_here && may_break_here(frame) => Decision::DeliverBreakpointLine,
        Event::Line | Event::Opcode => deliver_if(stop_here || may_break_here(frame)),
        Event::Call => {
            if !state.botframe_set {
                return Decision::Deliver;
            }
            if !(stop_here || frame.file_breaks.is_some()) {
                return Decision::NoLocalTracing;
            }
            if state.stopframe_set && frame.is_generator {
                return Decision::KeepTracing;
            }
            deliver_if(stop_here || state.user_call_observes)
        }
        Event::Return => deliver_if(stop_here || (frame.is_returnframe && !frame.other_thread)),
        Event::Exception => deliver_if(
            stop_here
                || (state.stopframe_set && !frame.is_stopframe && state.stopframe_is_generator),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(stoplineno: i64) -> StepState {
        StepState {
            stopframe_set: true,
            stoplineno,
            botframe_set: true,
            ..StepState::default()
        }
    }

    fn frame(lineno: i64, file_breaks: Option<&[i64]>) -> FrameFacts<'_> {
        FrameFacts {
            is_stopframe: false,
            is_returnframe: false,
            lineno,
            first_lineno: 1,
            is_generator: false,
            file_breaks,
            other_thread: false,
            module_skipped: false,
        }
    }

    #[test]
    fn continuing_without_breakpoints_in_the_file_does_not_trace_the_call() {
        let state = running(-1);
        assert_eq!(
            decide(&state, Event::Call, &frame(3, None)),
            Decision::NoLocalTracing
        );
        assert!(state.only_breakpoints());
    }

    #[test]
    fn continuing_delivers_only_breakpoint_lines() {
        let state = running(-1);
        let breaks = [7];
        assert_eq!(
            decide(&state, Event::Call, &frame(3, Some(&breaks))),
            Decision::KeepTracing
        );
        assert_eq!(
            decide(&state, Event::Line, &frame(6, Some(&breaks))),
            Decision::KeepTracing
        );
        assert_eq!(
            decide(&state, Event::Line, &frame(7, Some(&breaks))),
            Decision::DeliverBreakpointLine
        );
        assert_eq!(
            decide(&state, Event::Return, &frame(7, Some(&breaks))),
            Decision::KeepTracing
        );
    }

    #[test]
    fn a_function_breakpoint_is_its_first_line() {
        let state = running(-1);
        let breaks = [1];
        assert_eq!(
            decide(&state, Event::Line, &frame(4, Some(&breaks))),
            Decision::DeliverBreakpointLine
        );
    }

    #[test]
    fn a_user_call_that_observes_gets_calls_of_files_with_breakpoints() {
        let state = StepState {
            user_call_observes: true,
            ..running(-1)
        };
        assert_eq!(
            decide(&state, Event::Call, &frame(3, Some(&[9]))),
            Decision::Deliver
        );
        assert_eq!(
            decide(&state, Event::Call, &frame(3, None)),
            Decision::NoLocalTracing
        );
    }

    #[test]
    fn stepping_delivers_everything() {
        let state = StepState {
            stopframe_set: false,
            botframe_set: true,
            ..StepState::default()
        };
        for event in [
            Event::Call,
            Event::Line,
            Event::Return,
            Event::Exception,
            Event::Opcode,
        ] {
            assert_eq!(decide(&state, event, &frame(3, None)), Decision::Deliver);
        }
    }

    #[test]
    fn next_delivers_the_stop_frame_and_its_return_only() {
        let state = running(0);
        let mut stop = frame(5, None);
        stop.is_stopframe = true;
        assert_eq!(decide(&state, Event::Line, &stop), Decision::Deliver);
        assert_eq!(decide(&state, Event::Return, &stop), Decision::Deliver);
        let other = frame(5, None);
        assert_eq!(decide(&state, Event::Line, &other), Decision::KeepTracing);
        assert_eq!(
            decide(&state, Event::Call, &other),
            Decision::NoLocalTracing
        );
        assert_eq!(
            decide(&state, Event::Exception, &other),
            Decision::KeepTracing
        );
    }

    #[test]
    fn until_waits_for_a_later_line_of_the_stop_frame() {
        let state = running(10);
        let mut stop = frame(9, None);
        stop.is_stopframe = true;
        assert_eq!(decide(&state, Event::Line, &stop), Decision::KeepTracing);
        stop.lineno = 10;
        assert_eq!(decide(&state, Event::Line, &stop), Decision::Deliver);
    }

    #[test]
    fn return_command_delivers_the_return_frame() {
        let state = running(0);
        let mut returning = frame(5, None);
        returning.is_returnframe = true;
        assert_eq!(decide(&state, Event::Return, &returning), Decision::Deliver);
        assert_eq!(
            decide(&state, Event::Line, &returning),
            Decision::KeepTracing
        );
    }

    #[test]
    fn a_generator_stop_frame_gets_stop_iteration_from_elsewhere() {
        let state = StepState {
            stopframe_is_generator: true,
            ..running(0)
        };
        assert_eq!(
            decide(&state, Event::Exception, &frame(5, None)),
            Decision::Deliver
        );
    }

    #[test]
    fn generator_calls_are_ignored_unless_stepping() {
        let state = running(0);
        let mut generator = frame(5, Some(&[99]));
        generator.is_generator = true;
        assert_eq!(
            decide(&state, Event::Call, &generator),
            Decision::KeepTracing
        );
    }

    #[test]
    fn other_threads_stop_only_at_breakpoints_while_one_steps() {
        let stepping = StepState {
            stopframe_set: false,
            botframe_set: true,
            ..StepState::default()
        };
        let breaks = [7];
        let mut elsewhere = frame(6, Some(&breaks));
        elsewhere.other_thread = true;
        assert_eq!(
            decide(&stepping, Event::Line, &elsewhere),
            Decision::KeepTracing
        );
        assert_eq!(
            decide(&stepping, Event::Call, &frame(1, None)),
            Decision::Deliver
        );
        let mut no_breaks = frame(1, None);
        no_breaks.other_thread = true;
        assert_eq!(
            decide(&stepping, Event::Call, &no_breaks),
            Decision::NoLocalTracing
        );
        elsewhere.lineno = 7;
        assert_eq!(
            decide(&stepping, Event::Line, &elsewhere),
            Decision::DeliverBreakpointLine
        );
        elsewhere.is_returnframe = true;
        assert_eq!(
            decide(&stepping, Event::Return, &elsewhere),
            Decision::KeepTracing
        );
    }

    #[test]
    fn stepping_passes_over_skipped_modules_but_not_their_breakpoints() {
        let stepping = StepState {
            stopframe_set: false,
            botframe_set: true,
            ..StepState::default()
        };
        let breaks = [7];
        let mut skipped = frame(6, Some(&breaks));
        skipped.module_skipped = true;
        assert_eq!(
            decide(&stepping, Event::Line, &skipped),
            Decision::KeepTracing
        );
        assert_eq!(
            decide(&stepping, Event::Call, &skipped),
            Decision::KeepTracing
        );
        skipped.lineno = 7;
        assert_eq!(
            decide(&stepping, Event::Line, &skipped),
            Decision::DeliverBreakpointLine
        );
        skipped.file_breaks = None;
        assert_eq!(
            decide(&stepping, Event::Call, &skipped),
            Decision::NoLocalTracing
        );
    }

    #[test]
    fn the_first_call_records_the_bottom_frame() {
        let state = StepState::default();
        assert_eq!(
            decide(&state, Event::Call, &frame(1, None)),
            Decision::Deliver
        );
    }

    #[test]
    fn quitting_and_overridden_dispatch_go_to_python() {
        for state in [
            StepState {
                quitting: true,
                ..running(-1)
            },
            StepState {
                python_decides: true,
                ..running(-1)
            },
        ] {
            assert_eq!(
                decide(&state, Event::Line, &frame(3, None)),
                Decision::Deliver
            );
            assert!(!state.only_breakpoints());
        }
    }
}
