//! Plain text, one line per event, for reading in a terminal (`ferrotrace trace --format text`).
//!
//! Threads are written one after the other, in recording order; with more than one, each
//! starts with a `--- thread NAME (tid N) ---` header. Each line is
//! `INDENT EVENT FILE:LINE FUNCTION [DETAIL]`, indented by two spaces per open call of the
//! thread (a call's body one level deeper than the call; its return at the call's level):
//!
//! ```text
//! call      shop.py:20 Cart.total
//!   line      shop.py:21 Cart.total  return sum(self.items)
//! return    shop.py:21 Cart.total -> 6
//! ```
//!
//! - `line` events show the source line (read from the file when written; none for code
//!   without a readable file, such as `<string>`);
//! - `return` shows the returned value's repr (when recorded), `exception` the exception;
//! - `unwind` is a frame exited by an exception (`sys.settrace` reports it as `return` with
//!   None) and shows the exception.
//!
//! Files are shown relative to [`TextWriter::base_dir`] when they are below it. With
//! [`TextWriter::color`], ANSI colours mark events, locations and functions.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::TraceWriter;
use crate::record::{EventKind, EventRef, Recording, ThreadBuffer};

/// Writes [`Format::Text`](super::Format::Text).
#[derive(Clone, Debug, Default)]
pub struct TextWriter {
    /// Colour the output (for a terminal).
    pub color: bool,
    /// Show files below this directory relative to it.
    pub base_dir: Option<PathBuf>,
}

/// The ANSI styles of one line's parts: (event, location, function, detail).
struct Palette {
    reset: &'static str,
    location: &'static str,
    function: &'static str,
    detail: &'static str,
}

const COLORS: Palette = Palette {
    reset: "\x1b[0m",
    location: "\x1b[36m",
    function: "\x1b[1m",
    detail: "\x1b[33m",
};

const PLAIN: Palette = Palette {
    reset: "",
    location: "",
    function: "",
    detail: "",
};

fn kind_style(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Call => "\x1b[32m",
        EventKind::Return => "\x1b[34m",
        EventKind::Line => "\x1b[2m",
        EventKind::Exception | EventKind::Unwind => "\x1b[31m",
    }
}

impl TraceWriter for TextWriter {
    fn write(&self, recording: &Recording, out: &mut dyn Write) -> io::Result<()> {
        let mut out = BufWriter::with_capacity(1 << 16, out);
        let mut sources = Sources::default();
        let several = recording.threads().len() > 1;
        for thread in recording.threads() {
            if several {
                writeln!(
                    out,
                    "--- thread {} (tid {}) ---",
                    printable(thread.name()),
                    thread.tid()
                )?;
            }
            self.write_thread(recording, thread, &mut sources, &mut out)?;
        }
        out.flush()
    }
}

impl TextWriter {
    fn write_thread(
        &self,
        recording: &Recording,
        thread: &ThreadBuffer,
        sources: &mut Sources,
        out: &mut impl Write,
    ) -> io::Result<()> {
        let palette = if self.color { &COLORS } else { &PLAIN };
        let mut depth: usize = 0;
        for event in thread.events() {
            let level = match event.kind() {
                EventKind::Call => {
                    depth += 1;
                    depth - 1
                }
                EventKind::Return | EventKind::Unwind => {
                    depth = depth.saturating_sub(1);
                    depth
                }
                EventKind::Line | EventKind::Exception => depth,
            };
            let (name, file) = super::describe(&recording.functions, event.function);
            for _ in 0..level {
                out.write_all(b"  ")?;
            }
            let kind_color = if self.color {
                kind_style(event.kind())
            } else {
                ""
            };
            write!(
                out,
                "{kind_color}{:<9}{reset} {loc}{}:{}{reset} {fun}{}{reset}",
                event.kind().name(),
                self.display_path(file),
                event.line(),
                printable(name),
                reset = palette.reset,
                loc = palette.location,
                fun = palette.function,
            )?;
            self.write_detail(&event, file, sources, palette, out)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn write_detail(
        &self,
        event: &EventRef<'_>,
        file: &str,
        sources: &mut Sources,
        palette: &Palette,
        out: &mut impl Write,
    ) -> io::Result<()> {
        match (event.kind(), event.detail()) {
            (EventKind::Line, _) => {
                if let Some(source) = sources.line(file, event.line()) {
                    write!(out, "  {}", printable(source))?;
                }
            }
            (EventKind::Return, Some(detail)) => {
                write!(
                    out,
                    " -> {}{}{}",
                    palette.detail,
                    printable(detail),
                    palette.reset
                )?;
            }
            (EventKind::Exception | EventKind::Unwind, Some(detail)) => {
                let color = if self.color {
                    kind_style(event.kind())
                } else {
                    ""
                };
                write!(out, "  {color}{}{}", printable(detail), palette.reset)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn display_path<'a>(&self, file: &'a str) -> &'a str {
        let Some(base) = &self.base_dir else {
            return file;
        };
        match Path::new(file).strip_prefix(base) {
            Ok(relative) if !relative.as_os_str().is_empty() => {
                let cut = file.len() - relative.as_os_str().len();
                &file[cut..]
            }
            _ => file,
        }
    }
}

/// Text on one line: control characters become spaces.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// Source files read once each; None for one that cannot be read.
#[derive(Default)]
struct Sources {
    files: HashMap<String, Option<Vec<String>>>,
}

impl Sources {
    fn line(&mut self, file: &str, line: u32) -> Option<&str> {
        let lines = self
            .files
            .entry(file.to_owned())
            .or_insert_with(|| read_lines(file))
            .as_ref()?;
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        lines.get(index).map(|l| l.trim())
    }
}

fn read_lines(file: &str) -> Option<Vec<String>> {
    if file.starts_with('<') {
        return None;
    }
    let bytes = std::fs::read(file).ok()?;
    Some(
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::testing::{check_golden, small_recording};
    use crate::record::{Event, FunctionInfo, ProcessInfo};

    fn write(writer: &TextWriter, recording: &Recording) -> String {
        let mut out = Vec::new();
        writer.write(recording, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn golden_small() {
        let writer = TextWriter {
            color: false,
            base_dir: Some(PathBuf::from("/app")),
        };
        check_golden(
            "text_small.txt",
            write(&writer, &small_recording()).as_bytes(),
        );
    }

    #[test]
    fn colours_only_when_asked() {
        let plain = write(&TextWriter::default(), &small_recording());
        assert!(!plain.contains('\x1b'));
        let colored = TextWriter {
            color: true,
            base_dir: None,
        };
        let colored = write(&colored, &small_recording());
        assert!(colored.contains("\x1b[32mcall"));
        let stripped: String = strip_ansi(&colored);
        assert_eq!(stripped, plain);
    }

    fn strip_ansi(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn line_events_show_the_source_and_calls_indent() {
        let dir = std::env::temp_dir().join(format!("ferrotrace-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("prog.py");
        std::fs::write(&file, "def f():\n    return 1\n").unwrap();
        let mut recording = Recording::new(ProcessInfo::default());
        let f = recording
            .functions
            .intern(FunctionInfo::new("f", "f", file.to_str().unwrap(), 1));
        let mut thread = ThreadBuffer::new(1, "MainThread");
        thread.push(Event::new(EventKind::Call, f, 1, 0));
        thread.push(Event::new(EventKind::Line, f, 2, 1));
        thread.push(Event::new(EventKind::Line, f, 9, 1));
        thread.push(Event::new(EventKind::Return, f, 2, 2).with_detail("1"));
        recording.add_thread(thread);
        let writer = TextWriter {
            color: false,
            base_dir: Some(dir.clone()),
        };
        assert_eq!(
            write(&writer, &recording),
            "call      prog.py:1 f\n  line      prog.py:2 f  return 1\n  \
             line      prog.py:9 f\nreturn    prog.py:2 f -> 1\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
