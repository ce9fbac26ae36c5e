//! Restore: writes a snapshot's folder (or one file) to a local path. Folders are walked in parallel, files
//! are restored in parallel, and the chunks of a large file are fetched in parallel and written at their
//! offsets. Every chunk is decrypted and re-hashed before it is written; a chunk this restore already wrote
//! is read back from there and re-hashed instead of being fetched again (`copies`). Metadata (mode, owner
//! when permitted, mtime) is applied after contents, folders last, so their mtimes stick; a regular file
//! gets its metadata through the handle it was written with. It is created with its permission bits (so it
//! never has wider access than stored) and changed afterwards only if the umask, a default ACL or an
//! existing file left it with others. A folder is read one stored page at a time, so a folder of millions
//! of entries is never in memory at once. FIFOs are recreated; device nodes too when running as root
//! (otherwise they are skipped with a warning and counted); sockets are skipped (a socket file is only
//! meaningful to the process that bound it).

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use filetime::FileTime;
use rayon::prelude::*;
use serde::Serialize;

use crate::access::{Access, READ_BATCH_BLOBS, READ_BATCH_BYTES};
use crate::entries::TreePages;
use crate::error::{Error, Result};
use crate::ids::{ContentId, TreeId};
use crate::tree::{FileContent, Node, NodeKind};

mod copies;

/// Counters a progress display polls.
#[derive(Default, Debug)]
pub struct RestoreProgress {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    /// Of `bytes`, those of chunks copied from a file this restore had already written.
    pub copied_bytes: AtomicU64,
}

/// How to restore.
#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// Replace files that already exist at the target.
    pub overwrite: bool,
    /// Files and chunks fetched at once. More than the core count, because fetching waits on storage or
    /// the network as much as it computes.
    pub parallel: usize,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self { overwrite: false, parallel: (2 * cores).max(8) }
    }
}

/// What a restore did.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Of `bytes`, those of chunks that appeared more than once and were copied from where this restore had
    /// already written them (checked against their ids) instead of being fetched again.
    pub copied_bytes: u64,
    /// Entries that could not be restored, as `path: message`: the first [`MAX_LISTED_ERRORS`].
    pub errors: Vec<String>,
    /// How many entries could not be restored (`errors` lists at most [`MAX_LISTED_ERRORS`] of them).
    pub error_count: u64,
    /// FIFOs recreated.
    pub fifos: u64,
    /// Character and block devices recreated (only as root).
    pub devices: u64,
    /// Special entries not recreated: sockets, and device nodes when not running as root.
    pub skipped_special: u64,
}

struct Ctx<'a> {
    repo: &'a dyn Access,
    options: &'a RestoreOptions,
    progress: &'a RestoreProgress,
    dirs: AtomicU64,
    symlinks: AtomicU64,
    fifos: AtomicU64,
    devices: AtomicU64,
    skipped: AtomicU64,
    errors: Mutex<Vec<String>>,
    error_count: AtomicU64,
    /// The first error that stops the whole restore (the target is full or read-only); set once.
    fatal: Mutex<Option<Error>>,
    /// Set with `fatal`: every thread stops taking work.
    halted: AtomicBool,
    /// Running as root: owners are restored and device nodes can be made.
    is_root: bool,
    cancel: &'a AtomicBool,
    /// Chunks written so far, for copying when they appear again.
    written: copies::Written,
}

/// Errors a restore lists one by one; beyond them it only counts (a million unwritable entries must not
/// take a million messages of memory, nor a million warnings).
pub const MAX_LISTED_ERRORS: usize = 1000;

impl Ctx<'_> {
    /// Whether to take no more work: the caller cancelled, or the target cannot take more.
    fn stopped(&self) -> bool {
        self.cancel.load(Relaxed) || self.halted.load(Relaxed)
    }

    /// Records an entry that could not be restored. An error saying the target can take nothing more (full,
    /// over quota, read-only) stops the whole restore instead: every later entry would fail the same way.
    fn error(&self, path: &Path, e: Error) {
        if self.halted.load(Relaxed) {
            // The consequences of the error that stopped the restore, or threads noticing the stop.
            return;
        }
        if target_cannot_take_more(&e) {
            self.fatal.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
            self.halted.store(true, Relaxed);
            return;
        }
        let count = self.error_count.fetch_add(1, Relaxed);
        if count < MAX_LISTED_ERRORS as u64 {
            tracing::warn!("{}: {e}", path.display());
            self.errors.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{}: {e}", path.display()));
        } else if count == MAX_LISTED_ERRORS as u64 {
            tracing::warn!("more than {MAX_LISTED_ERRORS} entries could not be restored; counting the rest");
        }
    }
}

impl Ctx<'_> {
    /// After writing a file this restore created failed with `e`: when that stops the restore (a full or
    /// read-only target) or the restore has stopped, the file is removed. It was cut short (perhaps already
    /// at its full length, with holes), and a file that looks whole but is not is worse than a missing one.
    fn remove_cut_short(&self, path: &Path, e: &Error) {
        if target_cannot_take_more(e) || self.halted.load(Relaxed) {
            let _ = fs::remove_file(path);
        }
    }
}

/// Whether `e` says the restore's target can take nothing more: no space, over quota, or read-only.
fn target_cannot_take_more(e: &Error) -> bool {
    match e {
        Error::LocalIo { source, .. } => {
            matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EROFS))
        }
        _ => false,
    }
}

/// Restores the folder `tree` into `target` (created if needed), or — when `file` is given — that one file
/// to `target`.
pub fn restore(
    repo: &dyn Access,
    tree: Option<TreeId>,
    file: Option<&Node>,
    target: &Path,
    options: &RestoreOptions,
    progress: &RestoreProgress,
    cancel: &AtomicBool,
) -> Result<RestoreSummary> {
    let ctx = Ctx {
        repo,
        options,
        progress,
        dirs: AtomicU64::new(0),
        symlinks: AtomicU64::new(0),
        fifos: AtomicU64::new(0),
        devices: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
        error_count: AtomicU64::new(0),
        fatal: Mutex::new(None),
        halted: AtomicBool::new(false),
        // SAFETY: geteuid has no preconditions and cannot fail.
        is_root: unsafe { libc::geteuid() } == 0,
        cancel,
        written: copies::Written::default(),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.parallel.clamp(1, 256))
        .thread_name(|i| format!("cairn-restore-{i}"))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start restore threads: {e}")))?;
    pool.install(|| restore_into(&ctx, tree, file, target, options))?;
    if let Some(e) = ctx.fatal.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    if cancel.load(Relaxed) {
        return Err(Error::Cancelled);
    }
    Ok(RestoreSummary {
        files: progress.files.load(Relaxed),
        dirs: ctx.dirs.load(Relaxed),
        symlinks: ctx.symlinks.load(Relaxed),
        bytes: progress.bytes.load(Relaxed),
        copied_bytes: progress.copied_bytes.load(Relaxed),
        errors: ctx.errors.into_inner().unwrap_or_else(|p| p.into_inner()),
        error_count: ctx.error_count.load(Relaxed),
        fifos: ctx.fifos.load(Relaxed),
        devices: ctx.devices.load(Relaxed),
        skipped_special: ctx.skipped.load(Relaxed),
    })
}

fn restore_into(
    ctx: &Ctx<'_>,
    tree: Option<TreeId>,
    file: Option<&Node>,
    target: &Path,
    options: &RestoreOptions,
) -> Result<()> {
    match (tree, file) {
        (Some(tree), _) => {
            if target.exists()
                && !options.overwrite
                && fs::read_dir(target).map_err(|e| Error::local(target, e))?.next().is_some()
            {
                return Err(Error::InvalidArgument(format!(
                    "{} is not empty; restore into an empty folder or pass --overwrite",
                    target.display()
                )));
            }
            fs::create_dir_all(target).map_err(|e| Error::local(target, e))?;
            restore_dir(ctx, &tree, None, target)?;
        }
        (None, Some(node)) => {
            let path = if target.is_dir() {
                target.join(std::ffi::OsStr::from_bytes(&node.name))
            } else {
                target.to_path_buf()
            };
            restore_entry(ctx, node, &path);
        }
        (None, None) => return Err(Error::InvalidArgument("nothing to restore".into())),
    }
    Ok(())
}

/// Restores a folder's entries in parallel. Pages are taken from the folder's list as threads come free,
/// so at most about one page per restore thread is in memory and no thread waits for a page to finish.
/// `record` is the folder's record when it was fetched with its siblings'.
fn restore_dir(ctx: &Ctx<'_>, tree: &TreeId, record: Option<bytes::Bytes>, path: &Path) -> Result<()> {
    let pages = match record {
        Some(record) => TreePages::from_record(ctx.repo, tree, &record)?,
        None => TreePages::open(ctx.repo, tree)?,
    };
    pages.par_bridge().try_for_each(|page| {
        work_items(&page?).par_iter().for_each(|item| {
            if ctx.stopped() {
                return;
            }
            match item {
                Work::One(node) => restore_entry(ctx, node, &path.join(std::ffi::OsStr::from_bytes(&node.name))),
                Work::SmallFiles(batch) => restore_small_files(ctx, batch, path),
                Work::Folders(batch) => restore_folders(ctx, batch, path),
            }
        });
        Ok(())
    })
}

/// One unit of a folder's restore: an entry on its own, small files fetched together, or sub-folders whose
/// records are fetched together.
enum Work<'a> {
    One(&'a Node),
    SmallFiles(Vec<(&'a Node, ContentId)>),
    Folders(Vec<(&'a Node, TreeId)>),
}

/// Sub-folders whose records are fetched with one read: through a server, one round trip instead of one per
/// folder. Few enough that the records waiting for their folder's turn stay small.
const FOLDER_BATCH: usize = 16;

/// The single chunk of a one-chunk file.
fn single_chunk(node: &Node) -> Option<ContentId> {
    match &node.kind {
        NodeKind::File { content: FileContent::Inline(ids) } if ids.len() == 1 => Some(ids[0]),
        _ => None,
    }
}

/// Groups a folder's one-chunk files into batches of at most [`READ_BATCH_BYTES`] / [`READ_BATCH_BLOBS`],
/// so they are fetched with one read each (one round trip through a server, one ranged read of a pack).
fn work_items(nodes: &[Node]) -> Vec<Work<'_>> {
    let mut items = Vec::new();
    let mut batch: Vec<(&Node, ContentId)> = Vec::new();
    let mut batch_bytes = 0u64;
    let mut folders: Vec<(&Node, TreeId)> = Vec::new();
    for node in nodes {
        if let NodeKind::Dir { tree } = &node.kind {
            folders.push((node, *tree));
            if folders.len() == FOLDER_BATCH {
                items.push(Work::Folders(std::mem::take(&mut folders)));
            }
            continue;
        }
        let Some(id) = single_chunk(node) else {
            items.push(Work::One(node));
            continue;
        };
        if !batch.is_empty() && (batch.len() >= READ_BATCH_BLOBS || batch_bytes + node.size > READ_BATCH_BYTES) {
            items.push(Work::SmallFiles(std::mem::take(&mut batch)));
            batch_bytes = 0;
        }
        batch_bytes += node.size;
        batch.push((node, id));
    }
    if !batch.is_empty() {
        items.push(Work::SmallFiles(batch));
    }
    if !folders.is_empty() {
        items.push(Work::Folders(folders));
    }
    items
}

/// Restores sub-folders whose records are read in one batch. When the batch read fails, each folder reads
/// its own record, so an error is reported against the folder it concerns.
fn restore_folders(ctx: &Ctx<'_>, batch: &[(&Node, TreeId)], dir: &Path) {
    let ids: Vec<TreeId> = batch.iter().map(|(_, tree)| *tree).collect();
    // Each folder takes its record when its turn comes and drops it once decoded. Records beyond a batch's
    // worth of bytes are not kept (their folders read them again), so what waits at each level stays small.
    let mut kept = 0u64;
    let records: Vec<Mutex<Option<bytes::Bytes>>> = match ctx.repo.read_blobs(&ids) {
        Ok(records) if records.len() == batch.len() => records
            .into_iter()
            .map(|r| {
                kept += r.len() as u64;
                Mutex::new((kept <= READ_BATCH_BYTES).then_some(r))
            })
            .collect(),
        _ => batch.iter().map(|_| Mutex::new(None)).collect(),
    };
    batch.par_iter().zip(&records).for_each(|((node, tree), record)| {
        if ctx.stopped() {
            return;
        }
        let record = record.lock().unwrap_or_else(|p| p.into_inner()).take();
        let path = dir.join(std::ffi::OsStr::from_bytes(&node.name));
        if let Err(e) = restore_folder(ctx, node, tree, record, &path) {
            ctx.error(&path, e);
        }
    });
}

/// Creates a folder (or uses the one there), restores its entries, then its metadata.
fn restore_folder(ctx: &Ctx<'_>, node: &Node, tree: &TreeId, record: Option<bytes::Bytes>, path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => {}
        Err(e) => return Err(Error::local(path, e)),
    }
    ctx.dirs.fetch_add(1, Relaxed);
    restore_dir(ctx, tree, record, path)?;
    if ctx.stopped() {
        // Left as it is: its entries are not all there.
        return Ok(());
    }
    apply_metadata(ctx, node, path)
}

/// Restores one-chunk files fetched in one batch; a file whose chunk this restore already wrote elsewhere is
/// copied from there instead. When the batch read fails, each file not yet restored is restored on its own,
/// so an error is reported against the file it concerns.
fn restore_small_files(ctx: &Ctx<'_>, batch: &[(&Node, ContentId)], dir: &Path) {
    let mut fetch: Vec<(&Node, ContentId, PathBuf)> = Vec::with_capacity(batch.len());
    for &(node, id) in batch {
        if ctx.stopped() {
            return;
        }
        let path = dir.join(std::ffi::OsStr::from_bytes(&node.name));
        let copied = match ctx.written.find(&id, node.size) {
            Some(place) => copies::read_back(ctx.repo, &place, &id, |data| write_small_file(ctx, node, &path, data)),
            None => Ok(None),
        };
        match copied {
            Ok(Some(_)) => {
                ctx.progress.copied_bytes.fetch_add(node.size, Relaxed);
            }
            Ok(None) => fetch.push((node, id, path)),
            Err(e) => ctx.error(&path, e),
        }
    }
    if fetch.is_empty() {
        return;
    }
    let ids: Vec<ContentId> = fetch.iter().map(|(_, id, _)| *id).collect();
    let contents = match ctx.repo.read_blobs(&ids) {
        Ok(contents) if contents.len() == ids.len() => Some(contents),
        _ => None,
    };
    let Some(contents) = contents else {
        for (node, _, path) in &fetch {
            if ctx.stopped() {
                return;
            }
            restore_entry(ctx, node, path);
        }
        return;
    };
    for ((node, id, path), data) in fetch.into_iter().zip(contents) {
        if ctx.stopped() {
            return;
        }
        match write_small_file(ctx, node, &path, &data) {
            Ok(file) if data.len() as u64 >= copies::MIN_COPIED_CHUNK => {
                if let Ok(identity) = copies::FileIdentity::of(&file) {
                    ctx.written.record(&id, data.len() as u64, &Arc::new(path), identity, 0);
                }
            }
            Ok(_) => {}
            Err(e) => ctx.error(&path, e),
        }
    }
}

/// Creates a one-chunk file with its chunk's plaintext `data` and its metadata.
fn write_small_file(ctx: &Ctx<'_>, node: &Node, path: &Path, data: &[u8]) -> Result<File> {
    let file = create_file(ctx, node, path)?;
    if data.len() as u64 != node.size {
        return Err(Error::corrupt(
            format!("file {}", path.display()),
            format!("its chunk holds {} bytes, entry says {}", data.len(), node.size),
        ));
    }
    if let Err(e) = file.write_all_at(data, 0).map_err(|e| Error::local(path, e)) {
        ctx.remove_cut_short(path, &e);
        return Err(e);
    }
    ctx.progress.bytes.fetch_add(data.len() as u64, Relaxed);
    ctx.progress.files.fetch_add(1, Relaxed);
    apply_file_metadata(ctx, node, &file, path)?;
    Ok(file)
}

fn restore_entry(ctx: &Ctx<'_>, node: &Node, path: &Path) {
    let result = match &node.kind {
        NodeKind::Dir { tree } => restore_folder(ctx, node, tree, None, path),
        NodeKind::File { .. } => restore_file(ctx, node, path),
        NodeKind::Symlink { target } => (|| {
            if ctx.options.overwrite && fs::symlink_metadata(path).is_ok() {
                fs::remove_file(path).map_err(|e| Error::local(path, e))?;
            }
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path).map_err(|e| Error::local(path, e))?;
            ctx.symlinks.fetch_add(1, Relaxed);
            apply_metadata(ctx, node, path)
        })(),
        NodeKind::Special { rdev } => restore_special(ctx, node, *rdev, path),
    };
    if let Err(e) = result {
        ctx.error(path, e);
    }
}

fn restore_file(ctx: &Ctx<'_>, node: &Node, path: &Path) -> Result<()> {
    let NodeKind::File { content } = &node.kind else { unreachable!("called for files") };
    let chunks = ctx.repo.file_chunks(content)?;
    // A one-chunk file needs no size lookup: its chunk is the whole file (checked when written).
    let sizes = match chunks.len() {
        1 => vec![Some(node.size.min(u32::MAX as u64) as u32)],
        _ => ctx.repo.blob_sizes(&chunks)?,
    };
    // Consecutive chunks in groups of a few MiB, each fetched with one read and written at its offsets.
    let mut groups: Vec<Group> = Vec::new();
    let mut end = 0u64;
    for (id, size) in chunks.iter().zip(sizes) {
        let size = size.ok_or_else(|| Error::NotFound(format!("chunk {id} of {}", path.display())))? as u64;
        match groups.last_mut() {
            Some(g) if g.ids.len() < READ_BATCH_BLOBS && g.bytes + size <= READ_BATCH_BYTES => {
                g.ids.push(*id);
                g.places.push((end, size));
                g.bytes += size;
            }
            _ => groups.push(Group { ids: vec![*id], places: vec![(end, size)], bytes: size }),
        }
        end += size;
    }
    if end != node.size {
        return Err(Error::corrupt(
            format!("file {}", path.display()),
            format!("chunks hold {end} bytes, entry says {}", node.size),
        ));
    }
    let file = &create_file(ctx, node, path)?;
    if groups.len() > 1 {
        // Written out of order: the final length first, so the file's extents are never shrunk or extended
        // in the middle of the writes.
        file.set_len(node.size).map_err(|e| Error::local(path, e))?;
    }
    let shared_path = Arc::new(path.to_path_buf());
    // Without it (an fstat that failed), nothing is remembered from this file.
    let identity = copies::FileIdentity::of(file).ok();
    let write = |group: &Group| -> Result<()> {
        if ctx.stopped() {
            return Err(Error::Cancelled);
        }
        // Chunks this restore already wrote are copied from there; the others are fetched with one read.
        let mut fetch_ids = Vec::new();
        let mut fetch_places = Vec::new();
        for (id, &(offset, size)) in group.ids.iter().zip(&group.places) {
            let copied = match ctx.written.find(id, size) {
                Some(place) => copies::read_back(ctx.repo, &place, id, |data| {
                    file.write_all_at(data, offset).map_err(|e| Error::local(path, e))
                })?,
                None => None,
            };
            if copied.is_some() {
                ctx.progress.bytes.fetch_add(size, Relaxed);
                ctx.progress.copied_bytes.fetch_add(size, Relaxed);
            } else {
                fetch_ids.push(*id);
                fetch_places.push((offset, size));
            }
        }
        if fetch_ids.is_empty() {
            return Ok(());
        }
        let contents = ctx.repo.read_blobs(&fetch_ids)?;
        if contents.len() != fetch_ids.len() {
            return Err(Error::corrupt(
                format!("file {}", path.display()),
                format!("{} chunks read for {} asked", contents.len(), fetch_ids.len()),
            ));
        }
        for ((id, (offset, size)), data) in fetch_ids.iter().zip(fetch_places).zip(contents) {
            if data.len() as u64 != size {
                return Err(Error::corrupt(
                    format!("file {}", path.display()),
                    format!("the chunk at offset {offset} holds {} bytes, the index says {size}", data.len()),
                ));
            }
            file.write_all_at(&data, offset).map_err(|e| Error::local(path, e))?;
            ctx.progress.bytes.fetch_add(size, Relaxed);
            if let Some(identity) = identity {
                ctx.written.record(id, size, &shared_path, identity, offset);
            }
        }
        Ok(())
    };
    let written = match groups.len() > 1 {
        true => groups.par_iter().try_for_each(write),
        false => groups.iter().try_for_each(write),
    };
    if let Err(e) = written {
        ctx.remove_cut_short(path, &e);
        return Err(e);
    }
    ctx.progress.files.fetch_add(1, Relaxed);
    apply_file_metadata(ctx, node, file, path)
}

/// Consecutive chunks of a file, fetched together.
struct Group {
    ids: Vec<ContentId>,
    /// Each chunk's offset in the file and its length.
    places: Vec<(u64, u64)>,
    bytes: u64,
}

/// Creates a file to restore into, with the entry's permission bits (which the umask or a default ACL may
/// narrow). An existing file is replaced only with `--overwrite`; a symlink in its place is removed rather
/// than followed, so neither the contents nor the owner and mode land on whatever it points to.
fn create_file(ctx: &Ctx<'_>, node: &Node, path: &Path) -> Result<File> {
    let mut open = OpenOptions::new();
    open.write(true).mode(node.mode & 0o777).custom_flags(libc::O_NOFOLLOW);
    if ctx.options.overwrite {
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            fs::remove_file(path).map_err(|e| Error::local(path, e))?;
        }
        open.create(true).truncate(true);
    } else {
        open.create_new(true);
    }
    open.open(path).map_err(|e| Error::local(path, e))
}

/// [`apply_metadata`] for a regular file, through its open handle. The mode is changed only when the file
/// does not already have it (it usually does, from its creation); setuid, setgid and sticky bits always go
/// on here, after the owner (changing the owner clears them).
fn apply_file_metadata(ctx: &Ctx<'_>, node: &Node, file: &File, path: &Path) -> Result<()> {
    if ctx.is_root {
        std::os::unix::fs::fchown(file, Some(node.uid), Some(node.gid)).map_err(|e| Error::local(path, e))?;
    }
    let want = node.mode & 0o7777;
    let has = file.metadata().map_err(|e| Error::local(path, e))?.permissions().mode() & 0o7777;
    if has != want {
        file.set_permissions(fs::Permissions::from_mode(want)).map_err(|e| Error::local(path, e))?;
    }
    let mtime = node_mtime(node);
    filetime::set_file_handle_times(file, Some(mtime), Some(mtime)).map_err(|e| Error::local(path, e))
}

fn node_mtime(node: &Node) -> FileTime {
    FileTime::from_unix_time(node.mtime_ns.div_euclid(1_000_000_000), node.mtime_ns.rem_euclid(1_000_000_000) as u32)
}

/// Recreates a FIFO, or a device node as root; skips sockets, and devices when not root, with a warning.
fn restore_special(ctx: &Ctx<'_>, node: &Node, rdev: u64, path: &Path) -> Result<()> {
    let kind = node.mode & libc::S_IFMT;
    let counter = match kind {
        libc::S_IFIFO => &ctx.fifos,
        libc::S_IFCHR | libc::S_IFBLK if ctx.is_root => &ctx.devices,
        libc::S_IFCHR | libc::S_IFBLK => {
            tracing::warn!("{}: device node not recreated (only root can make device nodes)", path.display());
            ctx.skipped.fetch_add(1, Relaxed);
            return Ok(());
        }
        _ => {
            tracing::warn!("{}: socket not recreated", path.display());
            ctx.skipped.fetch_add(1, Relaxed);
            return Ok(());
        }
    };
    if ctx.options.overwrite && fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
        fs::remove_file(path).map_err(|e| Error::local(path, e))?;
    }
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("{}: path contains a NUL byte", path.display())))?;
    let permissions = node.mode & 0o7777;
    // SAFETY: `c_path` is a valid NUL-terminated string for the duration of each call.
    let status = unsafe {
        if kind == libc::S_IFIFO {
            libc::mkfifo(c_path.as_ptr(), permissions as libc::mode_t)
        } else {
            libc::mknod(c_path.as_ptr(), (kind | permissions) as libc::mode_t, rdev as libc::dev_t)
        }
    };
    if status != 0 {
        return Err(Error::local(path, std::io::Error::last_os_error()));
    }
    counter.fetch_add(1, Relaxed);
    apply_metadata(ctx, node, path)
}

fn apply_metadata(ctx: &Ctx<'_>, node: &Node, path: &Path) -> Result<()> {
    let mtime = node_mtime(node);
    if ctx.is_root {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)).map_err(|e| Error::local(path, e))?;
    }
    if !matches!(node.kind, NodeKind::Symlink { .. }) {
        fs::set_permissions(path, fs::Permissions::from_mode(node.mode & 0o7777)).map_err(|e| Error::local(path, e))?;
    }
    // By path without following links (utimensat), never by opening: opening a FIFO would wait for a writer.
    filetime::set_symlink_file_times(path, mtime, mtime).map_err(|e| Error::local(path, e))?;
    Ok(())
}
