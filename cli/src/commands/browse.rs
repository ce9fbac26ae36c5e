//! `cairn ls ID[/path]`: list a folder of a snapshot.

use cairn_engine::Access;
use std::os::unix::ffi::OsStrExt;

use anyhow::{bail, Result};
use cairn_engine::ids::TreeId;
use cairn_engine::tree::{Node, NodeKind};
use chrono::DateTime;

use super::{find_snapshot, split_target, Context};
use crate::args::LsArgs;
use crate::output;

pub fn run(ctx: &Context, args: LsArgs) -> Result<()> {
    let (config, repo) = ctx.open()?;
    let (id, path) = split_target(&args.target);
    let snap = find_snapshot(repo.as_ref(), &config, id)?;
    let resolved = repo.resolve_path(&snap.root, path)?;
    let mut rows = Vec::new();
    match (resolved.tree, resolved.node) {
        (Some(tree), _) => collect(repo.as_ref(), &tree, "", args.recursive, &mut rows)?,
        (None, Some(node)) => rows.push((String::new(), node)),
        (None, None) => bail!("nothing at {path}"),
    }
    if args.json {
        let items: Vec<_> = rows.iter().map(|(prefix, n)| entry_json(prefix, n)).collect();
        return output::json(&items);
    }
    for (prefix, n) in &rows {
        let name = format!("{prefix}{}", display_name(n));
        if args.long {
            let mtime = DateTime::from_timestamp_nanos(n.mtime_ns).format("%Y-%m-%d %H:%M:%S");
            println!("{} {:>12} {} {}", mode_string(n), n.size, mtime, name);
        } else {
            println!("{name}");
        }
    }
    Ok(())
}

fn collect(
    repo: &dyn Access,
    tree: &TreeId,
    prefix: &str,
    recursive: bool,
    out: &mut Vec<(String, Node)>,
) -> Result<()> {
    for node in repo.read_tree(tree)? {
        let sub = match (&node.kind, recursive) {
            (NodeKind::Dir { tree }, true) => {
                Some((*tree, format!("{prefix}{}/", String::from_utf8_lossy(&node.name))))
            }
            _ => None,
        };
        out.push((prefix.to_string(), node));
        if let Some((tree, sub_prefix)) = sub {
            collect(repo, &tree, &sub_prefix, true, out)?;
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
