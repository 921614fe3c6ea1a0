//! Chrome Trace Event Format (the JSON `chrome://tracing` and Perfetto's UI load).
//!
//! The file is one object, `{"traceEvents":[...]}`, one event per line:
//! - metadata events (`"ph":"M"`): `process_name`, and per thread `thread_name` and
//!   `thread_sort_index` (threads in recording order, the first usually `MainThread`);
//! - one complete event (`"ph":"X"`) per call: `name` the qualified name, `cat` `"python"`,
//!   `pid`, `tid`, `ts` and `dur` in microseconds (exact: up to three decimals, from integer
//!   nanoseconds), and `args` with `file`, `line` (where the call started), `return` (the
//!   value's repr), `exception`, and `"unfinished": true` for a call still open at the end
//!   (see [`crate::output`]).
//!
//! Complete events are written thread by thread, each thread's in call order: a parent
//! before its children, so viewers that sort stably by `ts` nest calls that start at the same
//! time correctly. To know a call's duration before writing it, each thread is read twice;
//! the first pass keeps 32 bytes per call of that thread.

use std::io::{self, BufWriter, Write};

use super::spans::{End, Step, Steps};
use super::{describe, TraceWriter};
use crate::record::{Recording, ThreadBuffer};

/// Writes [`Format::Chrome`](super::Format::Chrome).
#[derive(Clone, Copy, Debug, Default)]
pub struct ChromeWriter;

impl TraceWriter for ChromeWriter {
    fn write(&self, recording: &Recording, out: &mut dyn Write) -> io::Result<()> {
        let mut json = JsonEvents {
            out: BufWriter::with_capacity(1 << 16, out),
            first: true,
        };
        json.out.write_all(b"{\"traceEvents\":[")?;
        let pid = recording.process.pid;
        if !recording.process.name.is_empty() {
            json.metadata(pid, 0, "process_name", "name", |out| {
                write_string(out, &recording.process.name)
            })?;
        }
        for (index, thread) in recording.threads().iter().enumerate() {
            if !thread.name().is_empty() {
                json.metadata(pid, thread.tid(), "thread_name", "name", |out| {
                    write_string(out, thread.name())
                })?;
            }
            json.metadata(
                pid,
                thread.tid(),
                "thread_sort_index",
                "sort_index",
                |out| write!(out, "{index}"),
            )?;
        }
        for thread in recording.threads() {
            write_thread(&mut json, recording, thread)?;
        }
        json.out.write_all(b"\n]}\n")?;
        json.out.flush()
    }
}

/// The `traceEvents` array being written.
struct JsonEvents<W: Write> {
    out: W,
    first: bool,
}

impl<W: Write> JsonEvents<W> {
    fn start_event(&mut self) -> io::Result<()> {
        let separator: &[u8] = if self.first { b"\n" } else { b",\n" };
        self.first = false;
        self.out.write_all(separator)
    }

    fn metadata(
        &mut self,
        pid: u32,
        tid: u64,
        name: &str,
        arg: &str,
        value: impl FnOnce(&mut W) -> io::Result<()>,
    ) -> io::Result<()> {
        self.start_event()?;
        write!(
            self.out,
            "{{\"ph\":\"M\",\"name\":\"{name}\",\"pid\":{pid},\"tid\":{tid},\"args\":{{\"{arg}\":"
        )?;
        value(&mut self.out)?;
        self.out.write_all(b"}}")
    }
}

fn write_thread<W: Write>(
    json: &mut JsonEvents<W>,
    recording: &Recording,
    thread: &ThreadBuffer,
) -> io::Result<()> {
    let end_ns = recording.end_timestamp_ns();
    // Pass 1: the end of each call, by call number.
    let mut ends: Vec<Option<End<'_>>> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    for step in Steps::of_thread(thread, end_ns) {
        match step {
            Step::Begin { .. } => {
                open.push(ends.len());
                ends.push(None);
            }
            Step::End(end) => {
                if let Some(slot) = open.pop().and_then(|call| ends.get_mut(call)) {
                    *slot = Some(end);
                }
            }
        }
    }
    // Pass 2: the calls in order, each with its end.
    let (pid, tid) = (recording.process.pid, thread.tid());
    let mut ends = ends.into_iter();
    for step in Steps::of_thread(thread, end_ns) {
        let Step::Begin { call, ts } = step else {
            continue;
        };
        let end = ends.next().flatten();
        let (name, file) = describe(&recording.functions, call.function);
        json.start_event()?;
        let out = &mut json.out;
        out.write_all(b"{\"ph\":\"X\",\"cat\":\"python\",\"name\":")?;
        write_string(out, name)?;
        write!(out, ",\"pid\":{pid},\"tid\":{tid},\"ts\":")?;
        write_micros(out, ts)?;
        out.write_all(b",\"dur\":")?;
        write_micros(out, end.as_ref().map_or(0, |e| e.ts.saturating_sub(ts)))?;
        out.write_all(b",\"args\":{\"file\":")?;
        write_string(out, file)?;
        write!(out, ",\"line\":{}", call.line())?;
        if let Some(end) = end {
            if let Some(value) = end.return_value() {
                out.write_all(b",\"return\":")?;
                write_string(out, value)?;
            }
            if let Some(exception) = end.exception() {
                out.write_all(b",\"exception\":")?;
                write_string(out, exception)?;
            }
            if end.unfinished() {
                out.write_all(b",\"unfinished\":true")?;
            }
        }
        out.write_all(b"}}")?;
    }
    Ok(())
}

/// Nanoseconds as a JSON number of microseconds, exactly: `1500` is `1.5`, `2000` is `2`.
fn write_micros(out: &mut impl Write, ns: u64) -> io::Result<()> {
    let (whole, frac) = (ns / 1000, ns % 1000);
    match frac {
        0 => write!(out, "{whole}"),
        _ if frac % 100 == 0 => write!(out, "{whole}.{}", frac / 100),
        _ if frac % 10 == 0 => write!(out, "{whole}.{:02}", frac / 10),
        _ => write!(out, "{whole}.{frac:03}"),
    }
}

/// A JSON string literal for any text: `"` and `\` escaped, control characters as `\n`,
/// `\t`, ... or `\u00XX`, and U+2028/U+2029 as `\u2028`/`\u2029` (valid JSON raw, but not
/// valid JavaScript); everything else as UTF-8.
fn write_string(out: &mut impl Write, text: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        let escape: &[u8] = match c {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\n' => b"\\n",
            '\r' => b"\\r",
            '\t' => b"\\t",
            '\u{8}' => b"\\b",
            '\u{c}' => b"\\f",
            '\u{0}'..='\u{1f}' | '\u{2028}' | '\u{2029}' => b"",
            _ => continue,
        };
        out.write_all(&text.as_bytes()[start..i])?;
        if escape.is_empty() {
            write!(out, "\\u{:04x}", u32::from(c))?;
        } else {
            out.write_all(escape)?;
        }
        start = i + c.len_utf8();
    }
    out.write_all(&text.as_bytes()[start..])?;
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::testing::{check_golden, parse_json, small_recording, Json};
    use crate::record::{Event, EventKind, FunctionId, FunctionInfo, ProcessInfo};

    fn write(recording: &Recording) -> String {
        let mut out = Vec::new();
        ChromeWriter.write(recording, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn events(recording: &Recording) -> Vec<Json> {
        let text = write(recording);
        let doc = parse_json(&text).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{text}"));
        doc.get("traceEvents").unwrap().array().unwrap().to_vec()
    }

    fn ns(value: &Json) -> u64 {
        let micros = value.num().unwrap();
        assert!(micros >= 0.0);
        (micros * 1000.0).round() as u64
    }

    /// `(tid, name, start ns, end ns)` of the complete events, in file order.
    fn slices(events: &[Json]) -> Vec<(u64, String, u64, u64)> {
        events
            .iter()
            .filter(|e| e.get("ph").and_then(Json::str) == Some("X"))
            .map(|e| {
                let start = ns(e.get("ts").unwrap());
                (
                    e.get("tid").unwrap().num().unwrap() as u64,
                    e.get("name").unwrap().str().unwrap().to_owned(),
                    start,
                    start + ns(e.get("dur").unwrap()),
                )
            })
            .collect()
    }

    /// Every earlier slice of the same thread either contains a later one or ends before it
    /// starts.
    fn assert_nested(slices: &[(u64, String, u64, u64)]) {
        for (i, later) in slices.iter().enumerate() {
            for earlier in &slices[..i] {
                if earlier.0 != later.0 {
                    continue;
                }
                let contains = earlier.2 <= later.2 && later.3 <= earlier.3;
                assert!(
                    contains || earlier.3 <= later.2,
                    "{earlier:?} overlaps {later:?}"
                );
            }
        }
    }

    #[test]
    fn one_complete_event_per_call_properly_nested() {
        let recording = small_recording();
        let events = events(&recording);
        let slices = slices(&events);
        assert_eq!(slices.len(), recording.call_count());
        assert_nested(&slices);
        let names: Vec<(u64, &str)> = slices.iter().map(|s| (s.0, s.1.as_str())).collect();
        assert_eq!(
            names,
            [
                (1001, "main"),
                (1001, "Cart.total"),
                (1001, "parse"),
                (1001, "restock"),
                (1001, "restock"),
                (1001, "<lambda>"),
                (1002, "Worker.<locals>.work"),
                (1002, "Cart.total"),
            ]
        );
        // main contains everything on its thread; work is closed at the recording's end.
        assert_eq!((slices[0].2, slices[0].3), (1_000_000, 1_010_000));
        assert_eq!((slices[6].2, slices[6].3), (1_001_500, 1_012_000));
        for e in events
            .iter()
            .filter(|e| e.get("ph").unwrap().str() == Some("X"))
        {
            assert_eq!(e.get("cat").unwrap().str(), Some("python"));
            assert_eq!(e.get("pid").unwrap().num(), Some(4242.0));
        }
    }

    #[test]
    fn timestamps_are_microseconds() {
        let events = events(&small_recording());
        let x: Vec<&Json> = events
            .iter()
            .filter(|e| e.get("ph").unwrap().str() == Some("X"))
            .collect();
        // Cart.total: 1_000_500 ns .. 1_002_000 ns.
        assert_eq!(x[1].get("ts").unwrap().num(), Some(1000.5));
        assert_eq!(x[1].get("dur").unwrap().num(), Some(1.5));
        // The resumed generator ran for 1 ns.
        assert_eq!(x[4].get("dur").unwrap().num(), Some(0.001));
        let mut out = Vec::new();
        for ns in [0, 7, 10, 100, 1000, 1230, 1_234_567, u64::MAX] {
            write_micros(&mut out, ns).unwrap();
            out.push(b' ');
        }
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0 0.007 0.01 0.1 1 1.23 1234.567 18446744073709551.615 "
        );
    }

    #[test]
    fn args_carry_file_line_return_and_exception() {
        let events = events(&small_recording());
        let args: Vec<&Json> = events
            .iter()
            .filter(|e| e.get("ph").unwrap().str() == Some("X"))
            .map(|e| e.get("args").unwrap())
            .collect();
        let arg = |i: usize, key: &str| args[i].get(key).cloned();
        assert_eq!(arg(0, "file"), Some(Json::String("/app/demo.py".into())));
        assert_eq!(arg(0, "line"), Some(Json::Number(10.0)));
        assert_eq!(arg(0, "return"), Some(Json::String("{'apples': 6}".into())));
        let error = Json::String("ValueError: bad count\n\t\"x\"".into());
        assert_eq!(arg(0, "exception"), Some(error.clone()));
        assert_eq!(arg(2, "exception"), Some(error));
        assert_eq!(arg(2, "return"), None);
        assert_eq!(arg(4, "line"), Some(Json::Number(41.0)));
        assert_eq!(
            arg(5, "return"),
            Some(Json::String("'\u{1}\u{2028}€𝄞'".into()))
        );
        assert_eq!(
            arg(6, "file"),
            Some(Json::String("/app/tools/ünï \"quoted\"\\.py".into()))
        );
        assert_eq!(arg(6, "unfinished"), Some(Json::Bool(true)));
        assert_eq!(arg(7, "unfinished"), None);
    }

    #[test]
    fn metadata_names_the_process_and_threads() {
        let events = events(&small_recording());
        let metadata: Vec<(String, u64, Json)> = events
            .iter()
            .filter(|e| e.get("ph").unwrap().str() == Some("M"))
            .map(|e| {
                let args = e.get("args").unwrap();
                let Json::Object(members) = args else {
                    panic!("args is not an object")
                };
                (
                    e.get("name").unwrap().str().unwrap().to_owned(),
                    e.get("tid").unwrap().num().unwrap() as u64,
                    members[0].1.clone(),
                )
            })
            .collect();
        let s = |v: &str| Json::String(v.into());
        assert_eq!(
            metadata,
            [
                ("process_name".into(), 0, s("python demo.py")),
                ("thread_name".into(), 1001, s("MainThread")),
                ("thread_sort_index".into(), 1001, Json::Number(0.0)),
                ("thread_name".into(), 1002, s("worker-1 ✓")),
                ("thread_sort_index".into(), 1002, Json::Number(1.0)),
            ]
        );
    }

    #[test]
    fn strings_are_escaped_for_any_text() {
        let all_controls: String = (0u8..0x20).map(char::from).collect();
        for text in [
            String::new(),
            all_controls,
            "\"\\/\u{7f}\u{2028}\u{2029}\u{fffd}😀 plain".to_owned(),
        ] {
            let mut out = Vec::new();
            write_string(&mut out, &text).unwrap();
            let literal = String::from_utf8(out).unwrap();
            assert_eq!(parse_json(&literal), Ok(Json::String(text.clone())));
            assert!(!literal.contains('\u{2028}'));
        }
        let mut out = Vec::new();
        write_string(&mut out, "a\u{1}b\u{1f}").unwrap();
        assert_eq!(out, br#""a\u0001b\u001f""#);
    }

    #[test]
    fn unbalanced_and_empty_streams_give_valid_files() {
        let empty = Recording::default();
        assert_eq!(write(&empty), "{\"traceEvents\":[\n]}\n");
        assert!(events(&empty).is_empty());

        let mut recording = Recording::new(ProcessInfo {
            pid: 1,
            name: String::new(),
            start_timestamp_ns: 0,
        });
        let f = recording
            .functions
            .intern(FunctionInfo::new("f", "f", "f.py", 1));
        let mut thread = ThreadBuffer::new(5, "");
        use EventKind::*;
        for (kind, ts) in [
            (Return, 50),
            (Unwind, 40),
            (Call, 30),
            (Call, 20),
            (Exception, 10),
            (Call, 60),
            (Return, 70),
        ] {
            thread.push(Event::new(kind, f, 1, ts));
        }
        thread.push(Event::new(Call, FunctionId(99), 1, 80));
        recording.add_thread(thread);
        let events = events(&recording);
        let slices = slices(&events);
        assert_eq!(slices.len(), 4);
        assert_nested(&slices);
        // Time is clamped: the calls at 30 and 20 both start at 50.
        assert_eq!((slices[0].2, slices[0].3), (50, 80));
        assert_eq!((slices[1].2, slices[1].3), (50, 80));
        assert_eq!((slices[2].2, slices[2].3), (60, 70));
        assert_eq!(slices[3].1, "<unknown>");
        assert_eq!(
            events[2].get("args").unwrap().get("exception"),
            Some(&Json::String(String::new()))
        );
    }

    #[test]
    fn golden_small() {
        check_golden("chrome_small.json", write(&small_recording()).as_bytes());
    }
}
