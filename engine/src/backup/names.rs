//! A folder's names in byte order, with memory bounded however many there are. Names are read in runs of
//! at most `run` names. A folder that fits in one run is sorted in memory and touches no file. A larger one
//! has each run sorted and appended to one anonymous temporary file (in the OS temp dir, gone when closed,
//! even after a crash), and the runs are merged: memory then holds one buffer per run, not the names.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Names sorted in memory before a run is spilled.
pub const DEFAULT_RUN: usize = 64 * 1024;
/// Read buffers of all runs together, while merging (each run gets at least [`MIN_RUN_BUFFER`]).
const MERGE_BUFFERS: usize = 4 << 20;
const MIN_RUN_BUFFER: usize = 4 << 10;
const MAX_RUN_BUFFER: usize = 64 << 10;

/// The names of one folder, in increasing byte order.
pub enum SortedNames {
    Memory(std::vec::IntoIter<Vec<u8>>),
    Merged(Merge),
}

/// Lists `dir` and sorts its names, spilling runs of `run` names to a temporary file when there are more.
pub fn list_sorted(dir: &Path, run: usize) -> io::Result<SortedNames> {
    let run = run.max(2);
    let mut names = Vec::new();
    let mut spill: Option<Spill> = None;
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name().into_vec();
        if names.len() >= run {
            let spill = match &mut spill {
                Some(s) => s,
                None => spill.insert(Spill::new()?),
            };
            spill.write_run(&mut names)?;
        }
        names.push(name);
    }
    match spill {
        None => {
            names.sort_unstable();
            Ok(SortedNames::Memory(names.into_iter()))
        }
        Some(mut spill) => {
            if !names.is_empty() {
                spill.write_run(&mut names)?;
            }
            Ok(SortedNames::Merged(spill.merge()?))
        }
    }
}

impl SortedNames {
    /// Whether the names went through a temporary file.
    #[cfg(test)]
    pub fn spilled(&self) -> bool {
        matches!(self, SortedNames::Merged(_))
    }
}

impl Iterator for SortedNames {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            SortedNames::Memory(names) => names.next().map(Ok),
            SortedNames::Merged(merge) => merge.next(),
        }
    }
}

/// Sorted runs written one after another: each name as a u32 LE length and its bytes.
struct Spill {
    file: File,
    written: u64,
    /// Start offset and name count of each run.
    runs: Vec<(u64, usize)>,
}

impl Spill {
    fn new() -> io::Result<Self> {
        Ok(Self { file: tempfile::tempfile()?, written: 0, runs: Vec::new() })
    }

    fn write_run(&mut self, names: &mut Vec<Vec<u8>>) -> io::Result<()> {
        names.sort_unstable();
        let start = self.written;
        let mut out = BufWriter::with_capacity(256 << 10, &self.file);
        for name in names.iter() {
            let len = u32::try_from(name.len()).map_err(|_| io::Error::other("file name longer than 4 GiB"))?;
            out.write_all(&len.to_le_bytes())?;
            out.write_all(name)?;
            self.written += 4 + name.len() as u64;
        }
        out.flush()?;
        self.runs.push((start, names.len()));
        names.clear();
        Ok(())
    }

    fn merge(self) -> io::Result<Merge> {
        let file = Arc::new(self.file);
        let buffer = (MERGE_BUFFERS / self.runs.len().max(1)).clamp(MIN_RUN_BUFFER, MAX_RUN_BUFFER);
        let mut runs = Vec::with_capacity(self.runs.len());
        let mut heap = BinaryHeap::with_capacity(self.runs.len());
        for (i, &(start, count)) in self.runs.iter().enumerate() {
            let mut run = Run {
                reader: BufReader::with_capacity(buffer, Segment { file: file.clone(), at: start }),
                left: count,
            };
            if let Some(name) = run.next()? {
                heap.push(Reverse((name, i)));
            }
            runs.push(run);
        }
        Ok(Merge { runs, heap })
    }
}

/// Reads the temporary file from an offset of its own (runs share the file, not a file position).
struct Segment {
    file: Arc<File>,
    at: u64,
}

impl Read for Segment {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

struct Run {
    reader: BufReader<Segment>,
    left: usize,
}

impl Run {
    fn next(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut len = [0u8; 4];
        self.reader.read_exact(&mut len)?;
        let mut name = vec![0u8; u32::from_le_bytes(len) as usize];
        self.reader.read_exact(&mut name)?;
        Ok(Some(name))
    }
}

/// A k-way merge of sorted runs.
pub struct Merge {
    runs: Vec<Run>,
    heap: BinaryHeap<Reverse<(Vec<u8>, usize)>>,
}

impl Iterator for Merge {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse((name, i)) = self.heap.pop()?;
        match self.runs[i].next() {
            Ok(Some(next)) => self.heap.push(Reverse((next, i))),
            Ok(None) => {}
            Err(e) => {
                self.heap.clear();
                return Some(Err(e));
            }
        }
        Some(Ok(name))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn names_in(dir: &Path, run: usize) -> (Vec<Vec<u8>>, bool) {
        let sorted = list_sorted(dir, run).unwrap();
        let spilled = sorted.spilled();
        (sorted.collect::<io::Result<_>>().unwrap(), spilled)
    }

    #[test]
    fn spilled_runs_merge_into_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut expected: Vec<Vec<u8>> = Vec::new();
        for i in 0..2_500u32 {
            // Varied lengths and bytes, including non-UTF-8, so byte order differs from creation order.
            let mut name = format!("{:x}", i.wrapping_mul(2_654_435_761)).into_bytes();
            if i.is_multiple_of(7) {
                name.push(0xff);
            }
            fs::write(dir.path().join(std::ffi::OsStr::from_bytes(&name)), b"").unwrap();
            expected.push(name);
        }
        expected.sort();
        for run in [2, 3, 100, 1_000, 2_499] {
            let (names, spilled) = names_in(dir.path(), run);
            assert!(spilled, "run {run}");
            assert_eq!(names, expected, "run {run}");
        }
        let (names, spilled) = names_in(dir.path(), 2_500);
        assert!(!spilled, "a folder that fits in one run stays in memory");
        assert_eq!(names, expected);
    }

    #[test]
    fn empty_folder_lists_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (names, spilled) = names_in(dir.path(), 2);
        assert!(names.is_empty() && !spilled);
    }
}
