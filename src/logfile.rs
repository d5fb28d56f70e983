//! Log files that logrotate can move: lines are appended, and the file is opened again at its
//! path on SIGUSR1 (nginx's USR1), so a rotated file can be compressed once edgehook lets it go.
//! The access log is written by a thread of its own from a bounded queue: a request never
//! waits for the disk, and when the disk cannot keep up, lines are dropped and counted rather
//! than the proxy slowed.

use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

/// Access log lines that may wait for the writer thread.
const QUEUE: usize = 64 * 1024;

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// A file appended to by many threads, opened again on demand.
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    pub fn open(path: &Path) -> io::Result<Arc<LogFile>> {
        Ok(Arc::new(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(open_append(path)?),
        }))
    }

    /// Opens the file at its path again (logrotate moved the old one away). On failure the
    /// old file stays in use.
    pub fn reopen(&self) -> io::Result<()> {
        let file = open_append(&self.path)?;
        *self.file.lock() = file;
        Ok(())
    }
}

/// Writes through a `LogFile`, one write per call (tracing writes each event whole).
pub struct LogFileWriter(pub Arc<LogFile>);

impl Write for LogFileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.file.lock().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.file.lock().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogFileWriter {
    type Writer = LogFileWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.0.clone())
    }
}

/// The diagnostic log's file, when it has one (tracing's subscriber is the process's too).
static DIAGNOSTIC: OnceLock<Arc<LogFile>> = OnceLock::new();

/// Opens `path` as the diagnostic log, reopened with the access log on SIGUSR1.
pub fn diagnostic_log(path: &Path) -> io::Result<LogFileWriter> {
    let file = LogFile::open(path)?;
    let _ = DIAGNOSTIC.set(file.clone());
    Ok(LogFileWriter(file))
}

/// Opens the log files again on every SIGUSR1, from a thread of its own.
pub fn reopen_on_sigusr1(access: Arc<AccessLog>) {
    let signal = tokio::signal::unix::SignalKind::user_defined1();
    crate::signals::on_every(signal, "edgehook-sigusr1", move || {
        if let Some(diagnostic) = DIAGNOSTIC.get() {
            if let Err(e) = diagnostic.reopen() {
                tracing::error!(error = %e, path = %diagnostic.path.display(), "cannot open the log again; writing on to the old file");
            }
        }
        access.reopen();
        tracing::info!("log files opened again (SIGUSR1)");
    });
}

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Stdout,
    File(PathBuf),
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Stdout => f.write_str("(standard output)"),
            Destination::File(path) => write!(f, "{}", path.display()),
        }
    }
}

enum Message {
    /// A line (with its newline), and the header a new file of its format starts with.
    Line(String, Option<&'static str>),
    Reopen,
}

/// The access log: lines queued for a writer thread.
pub struct AccessLog {
    queue: SyncSender<Message>,
}

impl AccessLog {
    /// Opens the destination and starts its writer thread.
    pub fn start(destination: Destination) -> io::Result<AccessLog> {
        let (queue, lines) = std::sync::mpsc::sync_channel(QUEUE);
        let mut sink = Sink::open(destination)?;
        std::thread::Builder::new()
            .name("edgehook-access-log".into())
            .spawn(move || sink.run(lines))?;
        Ok(AccessLog { queue })
    }

    /// Queues a line (ending in a newline); `header` starts a file that is new. False when
    /// the line was dropped: the writer is behind by a whole queue (or stopped).
    pub fn write(&self, line: String, header: Option<&'static str>) -> bool {
        !matches!(
            self.queue.try_send(Message::Line(line, header)),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_))
        )
    }

    /// Asks the writer to open its file again, after the lines queued before.
    pub fn reopen(&self) {
        let _ = self.queue.send(Message::Reopen);
    }
}

struct Sink {
    destination: Destination,
    out: BufWriter<Box<dyn Write + Send>>,
    /// Nothing was written to this output yet (it may get a header).
    fresh: bool,
}

impl Sink {
    fn open(destination: Destination) -> io::Result<Sink> {
        let (out, fresh): (Box<dyn Write + Send>, bool) = match &destination {
            Destination::Stdout => (Box::new(io::stdout()), true),
            Destination::File(path) => {
                let file = open_append(path)?;
                let fresh = file.metadata()?.len() == 0;
                (Box::new(file), fresh)
            }
        };
        Ok(Sink {
            destination,
            out: BufWriter::with_capacity(64 * 1024, out),
            fresh,
        })
    }

    fn run(&mut self, lines: Receiver<Message>) {
        while let Ok(first) = lines.recv() {
            self.handle(first);
            // Write what else is queued, then flush once: a busy proxy writes in large pieces.
            while let Ok(next) = lines.try_recv() {
                self.handle(next);
            }
            if let Err(e) = self.out.flush() {
                tracing::warn!(error = %e, "cannot write the access log");
            }
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Line(line, header) => {
                let written = match header.filter(|_| self.fresh) {
                    Some(header) => self
                        .out
                        .write_all(header.as_bytes())
                        .and_then(|()| self.out.write_all(line.as_bytes())),
                    None => self.out.write_all(line.as_bytes()),
                };
                self.fresh = false;
                if let Err(e) = written {
                    tracing::warn!(error = %e, "cannot write the access log");
                }
            }
            // Standard output is not a file logrotate moves.
            Message::Reopen if self.destination == Destination::Stdout => {}
            Message::Reopen => {
                let _ = self.out.flush();
                match Sink::open(self.destination.clone()) {
                    Ok(reopened) => *self = reopened,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot open the access log again; writing on to the old file")
                    }
                }
            }
        }
    }
}
