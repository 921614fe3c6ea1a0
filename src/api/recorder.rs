//! `ferrotrace.Recorder`: a filtered consumer that records natively (no Python per event) and
//! writes Chrome JSON, Perfetto protobuf or text: on `write()`, or by itself when given an
//! `output` (Perfetto then streams: a writer thread encodes while the program runs).

use std::io::Write;
use std::path::{Path, PathBuf};

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyModule, PyTuple};

use crate::api::tracer::filter_of;
use crate::filter::{Filter, FilterSpec};
use crate::hook::backend;
use crate::hook::consumer::{self, with_consumer, Consumer, Sink};
use crate::hook::record_sink::{current_process, RecordSink};
use crate::output::streaming::StreamingWriter;
use crate::output::text::TextWriter;
use crate::output::{write_file_with, Format, TraceWriter};
use crate::record::Recording;

/// Recorder(*, modules=(), files=(), functions=(), user_code=False, threads=(), events=None,
///          depth=0, reprs=False, exit_lines=True, output=None, format=None)
/// --
///
/// Records the events the filter selects into native per-thread buffers (no Python call per
/// event) and writes them with write(path, format). start()/stop(), or a context manager.
/// With output=PATH it writes that file itself, once, when it stops (at interpreter exit at
/// the latest); as "perfetto" (the default) it streams: a native thread writes the trace while
/// the program runs.
#[pyclass(module = "ferrotrace._native", name = "Recorder")]
pub struct Recorder {
    id: u64,
    filter: Filter,
    reprs: bool,
    exit_lines: bool,
    /// The recording while stopped; while running it is in the backend's consumer.
    sink: Option<Box<RecordSink>>,
    running: bool,
    /// The file the recorder writes itself, and in which format.
    output: Option<(PathBuf, Format)>,
    /// The writer thread while a streaming recording runs.
    writer: Option<StreamingWriter>,
    /// The calls the writer wrote, once it has finished.
    streamed_calls: usize,
    /// A recorder with an output has written it (it records once).
    finished: bool,
}

#[pymethods]
impl Recorder {
    #[new]
    #[pyo3(signature = (*, modules=Vec::new(), files=Vec::new(), functions=Vec::new(),
                        user_code=false, threads=Vec::new(), events=None, depth=0, reprs=false,
                        exit_lines=true, output=None, format=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        modules: Vec<String>,
        files: Vec<String>,
        functions: Vec<String>,
        user_code: bool,
        threads: Vec<String>,
        events: Option<String>,
        depth: u32,
        reprs: bool,
        exit_lines: bool,
        output: Option<PathBuf>,
        format: Option<&str>,
    ) -> PyResult<Self> {
        let spec = FilterSpec {
            modules,
            files,
            functions,
            user_code,
            threads,
            events,
            depth,
        };
        let filter = filter_of(&spec)?;
        let output = match (output, format) {
            (Some(path), format) => Some((path, parse_format(format.unwrap_or("perfetto"))?)),
            (None, None) => None,
            (None, Some(_)) => {
                return Err(PyValueError::new_err(
                    "format= is the format of output=: give both, or use write(path, format)",
                ))
            }
        };
        Ok(Recorder {
            id: consumer::new_id(),
            filter,
            reprs,
            exit_lines,
            sink: None,
            running: false,
            output,
            writer: None,
            streamed_calls: 0,
            finished: false,
        })
    }

    /// Start recording: the calling thread, or every thread with all_threads=True. A recorder
    /// started again after stop() adds to the same recording (one with an output: a
    /// RuntimeError, it has written its file).
    #[pyo3(signature = (*, all_threads=false))]
    fn start(slf: &Bound<'_, Self>, all_threads: bool) -> PyResult<()> {
        let py = slf.py();
        let started = slf.try_borrow_mut()?.start_recording(py, all_threads)?;
        if started && slf.try_borrow()?.output.is_some() {
            // The file is written at interpreter exit if the program never stops the recorder
            // (stop() takes this back): what was recorded is not lost.
            py.import("atexit")?
                .call_method1("register", (slf.getattr("stop")?,))?;
        }
        Ok(())
    }

    /// Stop recording and keep what was recorded; with an output, write it (an OSError if it
    /// cannot be: the file is then left as it was). Idempotent.
    fn stop(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let stopped = slf.try_borrow_mut()?.stop_recording(py)?;
        if matches!(stopped, Stopped::NotRunning) {
            return Ok(());
        }
        if slf.try_borrow()?.output.is_some() {
            // Best effort: if it stayed registered, the call at exit finds it stopped.
            let unregister = |stop| py.import("atexit")?.call_method1("unregister", (stop,));
            let _ = slf.getattr("stop").and_then(unregister);
        }
        let Stopped::Streaming(writer, path) = stopped else {
            return Ok(());
        };
        // Waits for the writer with the GIL released and the recorder not borrowed: other
        // threads run, and may read the recorder, meanwhile.
        let calls = py
            .detach(|| writer.finish())
            .map_err(|err| os_error(err, &path))?;
        slf.try_borrow_mut()?.streamed_calls = calls;
        Ok(())
    }

    #[getter]
    fn running(&self) -> bool {
        self.running
    }

    /// Events recorded so far, on every thread.
    #[getter]
    fn event_count(&self, py: Python<'_>) -> usize {
        self.with_recording(py, Recording::event_count).unwrap_or(0)
    }

    /// Calls recorded so far (generator resumptions included), on every thread.
    #[getter]
    fn call_count(slf: &Bound<'_, Self>) -> PyResult<usize> {
        let py = slf.py();
        let (in_memory, asked, streamed_calls) = {
            let this = slf.try_borrow()?;
            let counted = |r: &Recording| (r.call_count(), r.count_streamed_calls());
            let (in_memory, asked) = this.with_recording(py, counted).unwrap_or((0, None));
            (in_memory, asked, this.streamed_calls)
        };
        // A streaming recording's writer counts the calls it has encoded; it answers once it
        // has encoded every chunk sent before the question (a failed writer does not).
        let streamed = match asked {
            Some(answer) => py.detach(move || answer.recv().unwrap_or(0)),
            None => streamed_calls,
        };
        Ok(in_memory + streamed)
    }

    /// write(path, format="perfetto", *, color=False)
    /// --
    ///
    /// Write what was recorded to `path` ("-": standard output) as "perfetto", "chrome" or
    /// "text" (colored with color=True). The file is replaced whole or not at all.
    #[pyo3(signature = (path, format="perfetto", *, color=false))]
    fn write(&self, py: Python<'_>, path: PathBuf, format: &str, color: bool) -> PyResult<()> {
        let format = parse_format(format)?;
        if let Some((output, _)) = &self.output {
            return Err(PyRuntimeError::new_err(format!(
                "this Recorder writes {} itself when it stops (output=); write() is for a \
                 Recorder without an output",
                output.display()
            )));
        }
        self.write_to(py, &path, format, color)
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        Self::start(&slf, false)?;
        Ok(slf)
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(slf: &Bound<'_, Self>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<bool> {
        Self::stop(slf)?;
        Ok(false)
    }
}

impl Recorder {
    /// The sink of a first start(): a streaming one for a Perfetto output file.
    fn new_sink(&mut self, py: Python<'_>) -> PyResult<Box<RecordSink>> {
        let process = current_process(py);
        match &self.output {
            Some((path, Format::Perfetto)) if path.as_os_str() != "-" => {
                let (sink, writer) =
                    RecordSink::streaming(process, self.reprs, self.exit_lines, path)
                        .map_err(|err| os_error(err, path))?;
                self.writer = Some(writer);
                Ok(Box::new(sink))
            }
            _ => Ok(Box::new(RecordSink::new(
                process,
                self.reprs,
                self.exit_lines,
            ))),
        }
    }

    /// Starts recording; false if it was running already.
    fn start_recording(&mut self, py: Python<'_>, all_threads: bool) -> PyResult<bool> {
        if self.running {
            return Ok(false);
        }
        if let (true, Some((path, _))) = (self.finished, &self.output) {
            return Err(PyRuntimeError::new_err(format!(
                "this Recorder wrote {} when it stopped: create a new Recorder to record again",
                path.display()
            )));
        }
        let sink = match self.sink.take() {
            Some(sink) => sink,
            None => self.new_sink(py)?,
        };
        let thread = if all_threads {
            None
        } else {
            // SAFETY: always safe to call.
            Some(unsafe { pyo3::ffi::PyThread_get_thread_ident() } as u64)
        };
        let consumer = Consumer::new(self.id, Sink::Record(sink), self.filter.clone(), thread);
        if let Err(not_started) = backend::add_consumer(py, consumer) {
            // Keep what an earlier start() recorded: a later write() still has it.
            self.sink = not_started
                .consumer
                .and_then(|consumer| into_sink(*consumer));
            return Err(not_started.error);
        }
        self.running = true;
        Ok(true)
    }

    /// Stops recording and, with an output, writes it: a recording kept in memory here, a
    /// streaming one by returning its writer for the caller to wait for without holding the
    /// recorder.
    fn stop_recording(&mut self, py: Python<'_>) -> PyResult<Stopped> {
        if !self.running {
            return Ok(Stopped::NotRunning);
        }
        self.running = false;
        let removed = backend::remove_consumer(py, self.id)?;
        if let Some(mut sink) = removed.and_then(into_sink) {
            sink.mark_end();
            self.sink = Some(sink);
        }
        let Some((path, format)) = self.output.clone() else {
            return Ok(Stopped::Done);
        };
        self.finished = true;
        let started_in = self.sink.as_ref().map(|sink| sink.recording().process.pid);
        if started_in.is_some_and(|pid| pid != std::process::id()) {
            // A forked child (stopping at its exit, say) must not replace the parent's file.
            return Ok(Stopped::Done);
        }
        let Some(writer) = self.writer.take() else {
            self.write_to(py, &path, format, false)?;
            return Ok(Stopped::Done);
        };
        // In a process forked since the recording started nothing goes to the parent's
        // writer (and nothing is written: the file is the parent's).
        if !self.sink.as_mut().is_some_and(|sink| sink.finish_stream()) {
            return Ok(Stopped::Done);
        }
        Ok(Stopped::Streaming(writer, path))
    }

    /// Writes what was recorded to `path` ("-": standard output).
    fn write_to(&self, py: Python<'_>, path: &Path, format: Format, color: bool) -> PyResult<()> {
        let to_stdout = path.as_os_str() == "-";
        if to_stdout {
            // What the program printed comes first.
            py.import("sys")?.getattr("stdout")?.call_method0("flush")?;
        }
        let text = TextWriter {
            color,
            base_dir: std::env::current_dir().ok(),
        };
        let writer: &dyn TraceWriter = match format {
            Format::Text => &text,
            other => other.writer(),
        };
        let write_to = |recording: &Recording| {
            if to_stdout {
                let mut out = std::io::stdout().lock();
                writer.write(recording, &mut out).and_then(|()| out.flush())
            } else {
                write_file_with(writer, recording, path)
            }
        };
        let result = match self.with_recording(py, |recording| write_to(recording)) {
            Some(result) => result,
            None => write_to(&Recording::new(current_process(py))),
        };
        result.map_err(|err| os_error(err, path))
    }

    /// Runs `f` on the recording, wherever it is (None: nothing recorded yet). No Python code
    /// runs inside `f`.
    fn with_recording<R>(&self, py: Python<'_>, f: impl FnOnce(&Recording) -> R) -> Option<R> {
        if self.running {
            with_consumer(py, self.id, |consumer| match &consumer.sink {
                Sink::Record(sink) => Some(f(sink.recording())),
                Sink::Callback(_) => None,
            })
            .flatten()
        } else {
            self.sink.as_ref().map(|sink| f(sink.recording()))
        }
    }
}

/// What [`Recorder::stop_recording`] did.
enum Stopped {
    /// Nothing: the recorder was not running.
    NotRunning,
    /// Stopped, and any output written.
    Done,
    /// Stopped; the writer thread is finishing the output file.
    Streaming(StreamingWriter, PathBuf),
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if self.running {
            // A recorder dropped while running stops: nothing would ever read its events.
            Python::attach(|py| {
                let _ = backend::remove_consumer(py, self.id);
            });
        }
    }
}

fn parse_format(name: &str) -> PyResult<Format> {
    name.parse()
        .map_err(|e: crate::output::UnknownFormat| PyValueError::new_err(e.to_string()))
}

fn into_sink(consumer: Consumer) -> Option<Box<RecordSink>> {
    match consumer.sink {
        Sink::Record(sink) => Some(sink),
        Sink::Callback(_) => None,
    }
}

/// An `OSError` of the right subclass (`FileNotFoundError`, `PermissionError`, ...) naming
/// the file.
fn os_error(err: std::io::Error, path: &Path) -> PyErr {
    let message = err.to_string();
    match err.raw_os_error() {
        Some(errno) => PyOSError::new_err((errno, message, path.to_path_buf())),
        None => PyOSError::new_err(format!("{}: {message}", path.display())),
    }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Recorder>()
}
