//! Trace files from a [`Recording`]: Chrome's Trace Event JSON ([`chrome`]) and Perfetto's
//! protobuf trace ([`perfetto`]); both open in Perfetto's UI (ui.perfetto.dev) and the JSON in
//! `chrome://tracing` too. And plain text, one line per event ([`text`]). Pure Rust: the writers read only the native recording, so they can
//! run after the interpreter has torn down its objects.
//!
//! # What a trace file shows (Chrome, Perfetto)
//!
//! One slice per call on its thread's track, named by the function's qualified name, with the
//! function's file and the line the call started at; the returned value and the exception
//! (where recorded) as arguments. A generator or coroutine gives one slice per resumption, as
//! `sys.settrace` gives one `call`/`return` pair per resumption. `Line` events are not
//! written.
//!
//! # Streams that do not balance
//!
//! Every writer goes through [`spans::Steps`], so the rules are the same for all formats:
//! - a call still open after its thread's last event (a thread still running, `os._exit`, a
//!   recording stopped inside a call) is closed at its thread's last timestamp or at
//!   [`Recording::end_timestamp_ns`], whichever is later, and marked `unfinished`;
//! - a return with no open call on its thread (its call came before the recording started)
//!   is dropped, as is an exception outside any call;
//! - a timestamp earlier than its thread's previous one is taken as equal to it, so slices
//!   always nest.
//!
//! `sys.exit` and uncaught exceptions need no special case: their frames unwind with
//! `return` events before the interpreter exits, and whatever is left open is closed as above.
//! [`Format::write_file`] writes to a temporary file beside the target and renames it, so an
//! interrupted write never leaves a truncated trace under the target name.
//!
//! # Threads
//!
//! A thread is labelled with [`ThreadBuffer::tid`](crate::record::ThreadBuffer::tid) and its
//! name. Chrome JSON writes the id as it is; Perfetto's `tid` is an `int32`, so an id above
//! `i32::MAX` (not a Linux thread id, which is at most 2^22) is folded into that range there.

pub mod chrome;
pub mod perfetto;
pub mod protobuf;
pub mod spans;
pub mod streaming;
#[cfg(test)]
mod testing;
pub mod text;

use std::ffi::{CString, OsString};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::record::{FunctionId, FunctionTable, Recording};

/// Writes a whole recording in one file format.
pub trait TraceWriter {
    /// Writes `recording` to `out`, buffering internally (`out` need not be buffered), and
    /// flushes it.
    fn write(&self, recording: &Recording, out: &mut dyn Write) -> io::Result<()>;
}

/// The formats of `ferrotrace trace --format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Chrome Trace Event Format, JSON ([`chrome::ChromeWriter`]).
    Chrome,
    /// Perfetto protobuf trace ([`perfetto::PerfettoWriter`]).
    Perfetto,
    /// One line per event, plain ([`text::TextWriter`]).
    Text,
}

impl Format {
    pub const ALL: [Format; 3] = [Format::Chrome, Format::Perfetto, Format::Text];

    /// The name given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Chrome => "chrome",
            Format::Perfetto => "perfetto",
            Format::Text => "text",
        }
    }

    /// The usual file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Chrome => "json",
            Format::Perfetto => "pftrace",
            Format::Text => "txt",
        }
    }

    pub fn writer(self) -> &'static dyn TraceWriter {
        match self {
            Format::Chrome => &chrome::ChromeWriter,
            Format::Perfetto => &perfetto::PerfettoWriter,
            Format::Text => &PLAIN_TEXT,
        }
    }

    pub fn write(self, recording: &Recording, out: &mut dyn Write) -> io::Result<()> {
        self.writer().write(recording, out)
    }

    /// Writes the file at `path` whole or not at all (see [`write_file_with`]).
    pub fn write_file(self, recording: &Recording, path: &Path) -> io::Result<()> {
        write_file_with(self.writer(), recording, path)
    }
}

/// Writes the file at `path` whole or not at all: into a temporary file beside it, then put in
/// its place ([`TempFile::commit`]). On an error the temporary file is removed and `path` left as it was.
pub fn write_file_with(
    writer: &dyn TraceWriter,
    recording: &Recording,
    path: &Path,
) -> io::Result<()> {
    let mut temp = TempFile::create(path)?;
    writer.write(recording, temp.file())?;
    temp.commit()
}

/// A file written beside its target and put in its place by [`TempFile::commit`]; gone if
/// dropped before. Where the file system allows it the file has no name until the commit
/// (`O_TMPFILE`), so a process that dies while writing (`os._exit`, a signal) leaves nothing
/// behind; elsewhere it is `.NAME.PID.tmp`, removed on drop.
#[derive(Debug)]
pub struct TempFile {
    file: File,
    /// The name it is given (at once, or at the commit) before the rename.
    temp: PathBuf,
    target: PathBuf,
    /// Whether the file has no name yet (`O_TMPFILE`).
    unnamed: bool,
    committed: bool,
}

impl TempFile {
    pub fn create(target: &Path) -> io::Result<Self> {
        let Some(file_name) = target.file_name() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", target.display()),
            ));
        };
        // A NUL byte would cut the name short at the commit's system calls: refused now.
        c_path(target)?;
        let mut temp_name = OsString::from(".");
        temp_name.push(file_name);
        temp_name.push(format!(".{}.tmp", std::process::id()));
        let temp = target.with_file_name(temp_name);
        let (file, unnamed) = match create_unnamed(target) {
            Ok(file) => (file, true),
            Err(_) => (File::create(&temp)?, false),
        };
        Ok(TempFile {
            file,
            temp,
            target: target.to_path_buf(),
            unnamed,
            committed: false,
        })
    }

    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// The temporary name (which an unnamed file only gets at the commit).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Puts the file in place of its target (an unnamed one is first given its temporary
    /// name), atomically: a reader finds the old file or the new one, never none.
    pub fn commit(mut self) -> io::Result<()> {
        if self.unnamed {
            self.name_unnamed()?;
            self.unnamed = false;
        }
        if !self.exchange_with_target() {
            fs::rename(&self.temp, &self.target)?;
        }
        self.committed = true;
        Ok(())
    }

    /// Where the target is a regular file: swaps the two names (`RENAME_EXCHANGE`) and removes
    /// the old file, now under the temporary name. False (nothing done) where that is not
    /// possible: no target, not a regular file, a file system without it.
    ///
    /// Why not a plain rename: ext4 (`auto_da_alloc`, on by default) writes a file's data out
    /// before `rename` returns when the rename replaces an existing file, a wait in proportion
    /// to the trace's size at every re-run (for 13 MB, 2.5 times an exchange and removal); an
    /// exchange does not.
    fn exchange_with_target(&self) -> bool {
        let is_file = fs::symlink_metadata(&self.target).is_ok_and(|m| m.file_type().is_file());
        if !is_file {
            return false;
        }
        let (Ok(temp), Ok(target)) = (c_path(&self.temp), c_path(&self.target)) else {
            return false;
        };
        // SAFETY: both are NUL-terminated paths that outlive the call.
        let exchanged = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                temp.as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        } == 0;
        if exchanged {
            // The old trace. Left behind only if this fails, which the commit does not undo.
            let _ = fs::remove_file(&self.temp);
        }
        exchanged
    }

    /// Links the unnamed file in as `temp`: through `/proc/self/fd` (no privilege needed),
    /// else by copying its bytes into a new file of that name.
    fn name_unnamed(&mut self) -> io::Result<()> {
        use std::os::unix::io::AsRawFd;

        let _ = fs::remove_file(&self.temp); // a leftover of an earlier process with our pid
        let proc_path = format!("/proc/self/fd/{}\0", self.file.as_raw_fd());
        let temp = c_path(&self.temp)?;
        // SAFETY: both paths are NUL-terminated byte strings that outlive the call.
        let linked = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                proc_path.as_ptr().cast(),
                libc::AT_FDCWD,
                temp.as_ptr().cast(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if linked == 0 {
            return Ok(());
        }
        self.copy_to_temp()
    }

    /// Copies the file's bytes into a new file at `temp`.
    fn copy_to_temp(&mut self) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};

        let copied = (|| {
            let mut source = self.file.try_clone()?;
            source.seek(SeekFrom::Start(0))?;
            let mut named = File::create(&self.temp)?;
            io::copy(&mut source, &mut named)?;
            named.flush()
        })();
        if copied.is_err() {
            let _ = fs::remove_file(&self.temp);
        }
        copied
    }
}

/// `path` for a system call; an error (as the standard library gives) if it holds a NUL byte.
fn c_path(path: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;

    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "file name contained an unexpected NUL byte",
        )
    })
}

/// An unnamed file in `target`'s directory (`O_TMPFILE`), if the file system has them.
fn create_unnamed(target: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;

    let directory = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o666)
        .custom_flags(libc::O_TMPFILE)
        .open(directory)
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.committed && !self.unnamed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const PLAIN_TEXT: text::TextWriter = text::TextWriter {
    color: false,
    base_dir: None,
};

/// A format name that is not one of [`Format::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown trace format {:?}: use chrome, perfetto or text",
            self.0
        )
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| UnknownFormat(name.to_owned()))
    }
}

/// What a slice is labelled with: `(name, file)`; `("<unknown>", "")` for an id the table did
/// not give.
pub(crate) fn describe(functions: &FunctionTable, id: FunctionId) -> (&str, &str) {
    match functions.get(id) {
        Some(info) => (info.display_name(), &info.filename),
        None => ("<unknown>", ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Event, EventKind, ProcessInfo, ThreadBuffer};

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("chrome".parse(), Ok(Format::Chrome));
        assert_eq!(" Perfetto ".parse(), Ok(Format::Perfetto));
        let err = "json".parse::<Format>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown trace format \"json\": use chrome, perfetto or text"
        );
        for format in Format::ALL {
            assert_eq!(format.to_string().parse(), Ok(format));
        }
        assert_eq!(Format::Perfetto.extension(), "pftrace");
        assert_eq!(Format::Chrome.extension(), "json");
    }

    #[test]
    fn write_file_replaces_the_target_whole() {
        let dir = std::env::temp_dir().join(format!("ferrotrace-output-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let recording = testing::small_recording();
        for format in Format::ALL {
            let path = dir.join(format!("trace.{}", format.extension()));
            fs::write(&path, b"old").unwrap();
            format.write_file(&recording, &path).unwrap();
            let mut expected = Vec::new();
            format.write(&recording, &mut expected).unwrap();
            assert_eq!(fs::read(&path).unwrap(), expected);
        }
        // A directory that does not exist: an error, and nothing left behind.
        let missing = dir.join("missing").join("trace.json");
        assert!(Format::Chrome.write_file(&recording, &missing).is_err());
        assert!(Format::Chrome
            .write_file(&recording, Path::new("/"))
            .is_err());
        let mut names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["trace.json", "trace.pftrace", "trace.txt"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The names in `dir`, sorted.
    fn sorted_names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_temporary_file_is_named_only_when_committed() {
        let dir = std::env::temp_dir().join(format!("ferrotrace-temp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let listing = || sorted_names(&dir);
        let target = dir.join("trace.bin");
        let mut temp = TempFile::create(&target).unwrap();
        temp.file().write_all(b"written").unwrap();
        let unnamed = temp.unnamed;
        if unnamed {
            assert!(
                listing().is_empty(),
                "an unnamed file shows nowhere before the commit"
            );
        } else {
            assert_eq!(
                listing(),
                [format!(".trace.bin.{}.tmp", std::process::id())]
            );
        }
        temp.commit().unwrap();
        assert_eq!(listing(), ["trace.bin"]);
        assert_eq!(fs::read(&target).unwrap(), b"written");

        // Dropped before its commit: nothing left, the target as it was.
        let mut dropped = TempFile::create(&target).unwrap();
        dropped.file().write_all(b"lost").unwrap();
        drop(dropped);
        assert_eq!(listing(), ["trace.bin"]);
        assert_eq!(fs::read(&target).unwrap(), b"written");

        // Named by copying when it cannot be linked in (as without /proc).
        let mut copied = TempFile::create(&target).unwrap();
        copied.file().write_all(b"copied bytes").unwrap();
        if copied.unnamed {
            copied.copy_to_temp().unwrap();
            copied.unnamed = false;
        }
        copied.commit().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"copied bytes");
        assert_eq!(listing(), ["trace.bin"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_commit_replaces_what_a_rename_would() {
        use std::os::unix::fs::symlink;

        let dir = std::env::temp_dir().join(format!("ferrotrace-commit-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let listing = || sorted_names(&dir);
        let commit = |target: &Path, bytes: &[u8]| {
            let mut temp = TempFile::create(target).unwrap();
            temp.file().write_all(bytes).unwrap();
            temp.commit()
        };
        let target = dir.join("trace.bin");

        // A regular file (exchanged, and the old one removed), and none.
        fs::write(&target, b"old trace").unwrap();
        commit(&target, b"new trace").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"new trace");
        assert_eq!(listing(), ["trace.bin"]);
        fs::remove_file(&target).unwrap();
        commit(&target, b"first").unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"first");
        assert_eq!(listing(), ["trace.bin"]);

        // A symbolic link: the link is replaced, its destination left alone.
        let destination = dir.join("destination");
        fs::write(&destination, b"kept").unwrap();
        let link = dir.join("link.bin");
        symlink(&destination, &link).unwrap();
        commit(&link, b"through the link").unwrap();
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_file());
        assert_eq!(fs::read(&link).unwrap(), b"through the link");
        assert_eq!(fs::read(&destination).unwrap(), b"kept");

        // A name with a NUL byte: refused before anything is created.
        assert!(TempFile::create(&dir.join("a\0b.bin")).is_err());
        assert_eq!(listing(), ["destination", "link.bin", "trace.bin"]);

        // A directory: an error, the directory as it was, no file left.
        let directory = dir.join("directory");
        fs::create_dir(&directory).unwrap();
        fs::write(directory.join("inside"), b"x").unwrap();
        assert!(commit(&directory, b"never").is_err());
        assert!(directory.join("inside").exists());
        assert_eq!(
            listing(),
            ["destination", "directory", "link.bin", "trace.bin"]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn deep_and_long_streams_keep_every_call() {
        let depth = 50_000;
        let mut recording = Recording::new(ProcessInfo::default());
        let f = recording
            .functions
            .intern(crate::record::FunctionInfo::new("f", "f", "f.py", 1));
        let mut thread = ThreadBuffer::new(1, "MainThread");
        for i in 0..depth {
            thread.push(Event::new(EventKind::Call, f, 1, i));
        }
        for i in 0..depth - 10 {
            thread.push(Event::new(EventKind::Return, f, 1, depth + i));
        }
        recording.add_thread(thread);

        let mut json = Vec::new();
        Format::Chrome.write(&recording, &mut json).unwrap();
        let json = String::from_utf8(json).unwrap();
        assert_eq!(json.matches("\"ph\":\"X\"").count(), depth as usize);
        assert_eq!(json.matches("\"unfinished\":true").count(), 10);

        let mut trace = Vec::new();
        Format::Perfetto.write(&recording, &mut trace).unwrap();
        let packets = testing::decode(&trace).unwrap();
        // The process's track, the thread's track and clock, a begin and an end per call.
        assert_eq!(packets.len(), 3 + 2 * depth as usize);
    }

    #[test]
    fn unknown_function_ids_are_labelled() {
        let mut recording = Recording::new(ProcessInfo::default());
        let mut thread = ThreadBuffer::new(1, "");
        thread.push(Event::new(EventKind::Call, FunctionId(7), 0, 0));
        thread.push(Event::new(EventKind::Call, FunctionId::OVERFLOW, 0, 0));
        recording.add_thread(thread);
        assert_eq!(
            describe(&recording.functions, FunctionId(7)),
            ("<unknown>", "")
        );
        for format in Format::ALL {
            let mut out = Vec::new();
            format.write(&recording, &mut out).unwrap();
            assert!(!out.is_empty());
        }
    }
}
