//! `cairn ls ID[/path]`: list a folder of a snapshot. Entries are printed as they are read, one stored
//! tree page at a time, so listing a folder of millions of entries does not hold them all.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Result};
use cairn_engine::entries::TreePages;
use cairn_engine::ids::TreeId;
use cairn_engine::tree::{Node, NodeKind};
use cairn_engine::Access;
use chrono::DateTime;

use super::{find_snapshot, split_target, Context};
use crate::args::LsArgs;

pub fn run(ctx: &Context, args: LsArgs) -> Result<()> {
    let (config, repo) = ctx.open()?;
    let (id, path) = split_target(&args.target);
    let snap = find_snapshot(repo.as_ref(), &config, id)?;
    let resolved = repo.resolve_path(&snap.root, path)?;
    let stdout = std::io::stdout();
    let mut printer =
        Printer { out: std::io::BufWriter::new(stdout.lock()), json: args.json, long: args.long, rows: 0 };
    printer.start()?;
    match (resolved.tree, resolved.node) {
        (Some(tree), _) => list(repo.as_ref(), &tree, "", args.recursive, &mut printer)?,
        (None, Some(node)) => printer.row("", &node)?,
        (None, None) => bail!("nothing at {path}"),
    }
    printer.end()
}

/// Prints rows as they come: text lines, or the elements of one pretty-printed JSON array.
struct Printer<W: Write> {
    out: W,
    json: bool,
    long: bool,
    rows: u64,
}

impl<W: Write> Printer<W> {
    fn start(&mut self) -> Result<()> {
        if self.json {
            write!(self.out, "[")?;
        }
        Ok(())
    }

    fn row(&mut self, prefix: &str, n: &Node) -> Result<()> {
        if self.json {
            // The same bytes as pretty-printing the whole array: each element indented by two spaces.
            let item = serde_json::to_string_pretty(&entry_json(prefix, n))?;
            let sep = if self.rows == 0 { "\n" } else { ",\n" };
            write!(self.out, "{sep}  {}", item.replace('\n', "\n  "))?;
        } else {
            let name = format!("{prefix}{}", display_name(n));
            if self.long {
                let mtime = DateTime::from_timestamp_nanos(n.mtime_ns).format("%Y-%m-%d %H:%M:%S");
                writeln!(self.out, "{} {:>12} {} {}", mode_string(n), n.size, mtime, name)?;
            } else {
                writeln!(self.out, "{name}")?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    fn end(mut self) -> Result<()> {
        if self.json {
            writeln!(self.out, "{}]", if self.rows == 0 { "" } else { "\n" })?;
        }
        self.out.flush()?;
        Ok(())
    }
}

/// Prints a folder's entries (and, when recursive, its sub-folders' after each of them), a page at a time.
fn list<W: Write>(repo: &dyn Access, tree: &TreeId, prefix: &str, recursive: bool, out: &mut Printer<W>) -> Result<()> {
    for page in TreePages::open(repo, tree)? {
        for node in page? {
            out.row(prefix, &node)?;
            if let (NodeKind::Dir { tree }, true) = (&node.kind, recursive) {
                let sub_prefix = format!("{prefix}{}/", String::from_utf8_lossy(&node.name));
                list(repo, tree, &sub_prefix, true, out)?;
            }
        }
    }
    Ok(())
}

fn display_name(n: &Node) -> String {
    let name = String::from_utf8_lossy(std::ffi::OsStr::from_bytes(&n.name).as_bytes()).into_owned();
    match &n.kind {
        NodeKind::Dir { .. } => format!("{name}/"),
        NodeKind::Symlink { target } => format!("{name} -> {}", String::from_utf8_lossy(target)),
        _ => name,
    }
}

fn mode_string(n: &Node) -> String {
    let kind = match n.kind {
        NodeKind::Dir { .. } => 'd',
        NodeKind::Symlink { .. } => 'l',
        NodeKind::File { .. } => '-',
        NodeKind::Special { .. } => '?',
    };
    let bits: String =
        (0..9).rev().map(|i| if n.mode & (1 << i) != 0 { ['x', 'w', 'r'][i % 3] } else { '-' }).collect();
    format!("{kind}{bits}")
}

fn entry_json(prefix: &str, n: &Node) -> serde_json::Value {
    let kind = match &n.kind {
        NodeKind::Dir { .. } => "dir",
        NodeKind::File { .. } => "file",
        NodeKind::Symlink { .. } => "symlink",
        NodeKind::Special { .. } => "special",
    };
    let mut v = serde_json::json!({
        "name": format!("{prefix}{}", String::from_utf8_lossy(&n.name)),
        "type": kind,
        "mode": format!("{:o}", n.mode & 0o7777),
        "size": n.size,
        "mtime": DateTime::from_timestamp_nanos(n.mtime_ns).to_rfc3339(),
        "uid": n.uid,
        "gid": n.gid,
    });
    if let NodeKind::Dir { tree } = &n.kind {
        v["tree"] = tree.to_hex().into();
    }
    if let NodeKind::Symlink { target } = &n.kind {
        v["target"] = String::from_utf8_lossy(target).into_owned().into();
    }
    v
}
