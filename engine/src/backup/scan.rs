//! The scan stage: lists each folder of the source in name order and reads every entry's metadata (and a
//! symlink's target) on a thread of its own, ahead of the walk, which compares the entries with the parent
//! snapshot and records them. The two split what used to be one thread's work about evenly (the system
//! calls here, the parent snapshot and the index there), so an unchanged re-backup, which does nothing
//! else, runs on both cores.
//!
//! The scan visits folders depth-first in exactly the order the walk records them, and descends into an
//! entry exactly when the walk does: when its metadata was read and says folder. What it sends is a flat
//! stream: a folder's [`Scanned::Listed`], its entries (each folder entry followed by that folder's own
//! stream), then [`Scanned::End`]. At most [`BATCHES_AHEAD`] batches of [`BATCH`] steps are queued (two
//! more are being filled and read), whatever the source's size.

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::names;
use super::stats::StageTimes;

/// One step of the scan. Nearly every step is an entry, so entries are not boxed (a box would cost an
/// allocation per entry to save space only in the rare other steps).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Scanned {
    /// A folder was listed: its entries follow, then [`Scanned::End`]. When listing failed, nothing else
    /// of that folder follows.
    Listed(io::Result<()>),
    /// An entry of the folder being listed.
    Entry(ScannedEntry),
    /// The folder's sorted listing could not be read back from its temporary file: the rest of the folder
    /// is left out, and [`Scanned::End`] follows.
    Truncated(io::Error),
    /// The end of the folder's entries.
    End,
}

/// A name found in a folder, with what the file system said about it.
pub(crate) struct ScannedEntry {
    pub name: Vec<u8>,
    pub path: PathBuf,
    /// Its metadata, symlinks not followed.
    pub meta: io::Result<Metadata>,
    /// A symlink's target; `None` for anything else.
    pub link: Option<io::Result<PathBuf>>,
}

/// Steps sent at once: one channel handoff per entry costs more than the entry.
const BATCH: usize = 128;
/// Batches queued between the scan and the walk. With the one being filled and the one being read, at most
/// 34 batches (4,352 steps) are in flight: about a megabyte, plus the names and paths they hold.
const BATCHES_AHEAD: usize = 32;
/// Stack of the scan thread. The scan recurses once per folder level (1,900 levels overflow 1 MiB in a
/// release build, more in a debug one), and a path's 4,096 bytes allow about 2,000 levels of one-letter
/// folders: a thread's default 2 MiB leaves no margin. Only the pages a tree's depth touches are used.
pub(crate) const STACK_BYTES: usize = 16 << 20;

/// The walk stopped reading (it finished, failed or the backup stopped).
struct Stopped;

/// Starts a scan's channel: the scanner sends into the first half, the walk reads the second.
pub(crate) fn channel() -> (Sender<Vec<Scanned>>, Receiver<Vec<Scanned>>) {
    crossbeam_channel::bounded(BATCHES_AHEAD)
}

/// Scans the folder `root` and everything below it into `out`; returns when done, when the walk stops
/// reading, or once `stopped` says the backup stopped. Adds its busy and blocked time to `stages`.
pub(crate) fn run(
    root: &Path,
    names_in_memory: usize,
    stopped: &dyn Fn() -> bool,
    stages: &StageTimes,
    out: Sender<Vec<Scanned>>,
) {
    let start = Instant::now();
    let mut scanner =
        Scanner { stopped, out, names_in_memory, blocked: Duration::ZERO, batch: Vec::with_capacity(BATCH) };
    if scanner.folder(root).is_ok() {
        let _ = scanner.flush();
    }
    let busy = start.elapsed().saturating_sub(scanner.blocked);
    stages.scan.fetch_add(busy.as_nanos() as u64, Relaxed);
    stages.scan_blocked.fetch_add(scanner.blocked.as_nanos() as u64, Relaxed);
}

struct Scanner<'a> {
    stopped: &'a dyn Fn() -> bool,
    out: Sender<Vec<Scanned>>,
    names_in_memory: usize,
    /// Time spent waiting for room in the channel.
    blocked: Duration,
    batch: Vec<Scanned>,
}

impl Scanner<'_> {
    fn send(&mut self, step: Scanned) -> Result<(), Stopped> {
        self.batch.push(step);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Stopped> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        let start = Instant::now();
        let sent = self.out.send(batch);
        self.blocked += start.elapsed();
        sent.map_err(|_| Stopped)
    }

    /// Lists `path` (entirely, before any entry is sent) and sends its entries in name order, descending
    /// into each sub-folder where it appears.
    fn folder(&mut self, path: &Path) -> Result<(), Stopped> {
        let names = match names::list_sorted(path, self.names_in_memory) {
            Ok(names) => names,
            Err(e) => return self.send(Scanned::Listed(Err(e))),
        };
        self.send(Scanned::Listed(Ok(())))?;
        for name in names {
            if (self.stopped)() {
                return Err(Stopped);
            }
            let name = match name {
                Ok(name) => name,
                Err(e) => {
                    self.send(Scanned::Truncated(e))?;
                    break;
                }
            };
            let child = path.join(std::ffi::OsStr::from_bytes(&name));
            let meta = fs::symlink_metadata(&child);
            let link = match &meta {
                Ok(m) if m.file_type().is_symlink() => Some(fs::read_link(&child)),
                _ => None,
            };
            // The entry takes the path; only a folder, scanned next, needs a copy.
            let folder = meta.as_ref().is_ok_and(Metadata::is_dir).then(|| child.clone());
            self.send(Scanned::Entry(ScannedEntry { name, path: child, meta, link }))?;
            if let Some(folder) = folder {
                self.folder(&folder)?;
            }
        }
        self.send(Scanned::End)
    }
}

/// The walk's end of a scan: steps one at a time.
pub(crate) struct ScanStream {
    rx: Receiver<Vec<Scanned>>,
    batch: std::vec::IntoIter<Scanned>,
}

impl ScanStream {
    pub fn new(rx: Receiver<Vec<Scanned>>) -> Self {
        Self { rx, batch: Vec::new().into_iter() }
    }

    /// A stream that has ended: for a source that is a single file, which has nothing to scan.
    pub fn finished() -> Self {
        let (_, rx) = channel();
        Self::new(rx)
    }

    /// The next step; `None` once the scan ended or stopped.
    pub fn next_step(&mut self) -> Option<Scanned> {
        loop {
            if let Some(step) = self.batch.next() {
                return Some(step);
            }
            self.batch = self.rx.recv().ok()?.into_iter();
        }
    }

    /// Skips the rest of the current folder, sub-folders included, through its [`Scanned::End`]; false when
    /// the scan ended first.
    pub fn skip_folder(&mut self) -> bool {
        let mut depth = 0usize;
        loop {
            match self.next_step() {
                None => return false,
                Some(Scanned::Listed(Ok(()))) => depth += 1,
                Some(Scanned::End) if depth == 0 => return true,
                Some(Scanned::End) => depth -= 1,
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The steps of a scan, as text: `[` a listed folder, `]` its end, names, `->target` for symlinks.
    fn scan_text(root: &Path, names_in_memory: usize, stop_after: Option<usize>) -> Vec<String> {
        let (tx, rx) = channel();
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let stopped = || stop_after.is_some_and(|n| seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= n);
        std::thread::scope(|scope| {
            scope.spawn(|| run(root, names_in_memory, &stopped, &StageTimes::default(), tx));
            let mut stream = ScanStream::new(rx);
            let mut text = Vec::new();
            while let Some(step) = stream.next_step() {
                text.push(match step {
                    Scanned::Listed(Ok(())) => "[".to_string(),
                    Scanned::Listed(Err(e)) => format!("unlisted: {e}"),
                    Scanned::Entry(e) => {
                        let name = String::from_utf8_lossy(&e.name).into_owned();
                        assert_eq!(e.path.file_name().map(|n| n.as_bytes().to_vec()), Some(e.name));
                        match (e.meta, e.link) {
                            (Ok(_), Some(Ok(target))) => format!("{name}->{}", target.display()),
                            (Ok(m), None) => {
                                assert!(!m.file_type().is_symlink());
                                name
                            }
                            (meta, link) => panic!("{name}: {:?} {:?}", meta.err(), link.map(|l| l.err())),
                        }
                    }
                    Scanned::Truncated(e) => format!("truncated: {e}"),
                    Scanned::End => "]".to_string(),
                });
            }
            text
        })
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in ["b", "b/d", "c"] {
            fs::create_dir(root.join(folder)).unwrap();
        }
        for file in ["a", "b/d/x", "b/e", "c/f", "z"] {
            fs::write(root.join(file), file).unwrap();
        }
        std::os::unix::fs::symlink("a", root.join("b/link")).unwrap();
        dir
    }

    #[test]
    fn folders_follow_their_entry_in_name_order_spilled_or_not() {
        let dir = tree();
        let expected = "[ a b [ d [ x ] e link->a ] c [ f ] z ]";
        assert_eq!(scan_text(dir.path(), 1_000, None).join(" "), expected);
        assert_eq!(scan_text(dir.path(), 2, None).join(" "), expected, "listings spilled to a file");
    }

    #[test]
    fn an_unlistable_root_is_one_failed_step() {
        let dir = tempfile::tempdir().unwrap();
        let steps = scan_text(&dir.path().join("gone"), 1_000, None);
        assert_eq!(steps.len(), 1);
        assert!(steps[0].starts_with("unlisted: "), "{steps:?}");
    }

    #[test]
    fn the_scan_stops_when_told_and_when_the_walk_stops_reading() {
        let many = tempfile::tempdir().unwrap();
        let files = BATCH * (BATCHES_AHEAD + 4);
        for i in 0..files {
            fs::write(many.path().join(format!("{i:05}")), b"").unwrap();
        }
        assert_eq!(scan_text(many.path(), 100_000, None).len(), files + 2);
        // Told to stop after 300 entries: what was sent is cut short, without the folder's end.
        let steps = scan_text(many.path(), 100_000, Some(300));
        assert!(steps.len() <= 301 && steps.last().map(String::as_str) != Some("]"), "{} steps", steps.len());
        // More steps than the channel holds, and a walk that reads one batch and leaves: the scan returns.
        let (tx, rx) = channel();
        std::thread::scope(|scope| {
            let scan = scope.spawn(|| run(many.path(), 100_000, &|| false, &StageTimes::default(), tx));
            assert_eq!(rx.recv().unwrap().len(), BATCH);
            drop(rx);
            scan.join().unwrap();
        });
    }

    #[test]
    fn a_tree_as_deep_as_paths_allow_is_scanned_on_the_scan_stack() {
        // 1,900 levels of one-letter folders: a path of about 3,800 bytes at the bottom, close to 4,096.
        let dir = tempfile::tempdir().unwrap();
        let levels = 1_900;
        let mut deepest = dir.path().to_path_buf();
        for _ in 0..levels {
            deepest.push("a");
        }
        fs::create_dir_all(&deepest).unwrap();
        fs::write(deepest.join("f"), b"bottom").unwrap();
        let (tx, rx) = channel();
        let root = dir.path().to_path_buf();
        let scan = std::thread::Builder::new()
            .stack_size(STACK_BYTES)
            .spawn(move || run(&root, 1_000, &|| false, &StageTimes::default(), tx))
            .unwrap();
        let mut stream = ScanStream::new(rx);
        let (mut listed, mut ends, mut files) = (0, 0, 0);
        while let Some(step) = stream.next_step() {
            match step {
                Scanned::Listed(r) => {
                    r.unwrap();
                    listed += 1;
                }
                Scanned::End => ends += 1,
                Scanned::Entry(e) if e.meta.as_ref().is_ok_and(Metadata::is_file) => files += 1,
                Scanned::Entry(e) => assert!(e.meta.unwrap().is_dir()),
                Scanned::Truncated(e) => panic!("{e}"),
            }
        }
        scan.join().unwrap();
        assert_eq!((listed, ends, files), (levels + 1, levels + 1, 1));
    }

    #[test]
    fn skipping_a_folder_skips_its_sub_folders_through_its_end() {
        let dir = tree();
        let (tx, rx) = channel();
        run(dir.path(), 1_000, &|| false, &StageTimes::default(), tx);
        let mut stream = ScanStream::new(rx);
        assert!(matches!(stream.next_step(), Some(Scanned::Listed(Ok(())))));
        assert!(matches!(stream.next_step(), Some(Scanned::Entry(e)) if e.name == b"a"));
        // Skips `b`, its sub-folder `d` and the rest of the root: nothing is left.
        assert!(stream.skip_folder());
        assert!(stream.next_step().is_none());
        assert!(!ScanStream::finished().skip_folder(), "a stream that ends first says so");
    }
}
