//! The command line, declared with clap. Command words and flags follow Kopia's where Kopia has them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cairn", version, about = "Fast, deduplicating, encrypted backups", propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Connection config file [default: $XDG_CONFIG_HOME/cairn/repository.config]
    #[arg(long, global = true, env = "CAIRN_CONFIG_PATH")]
    pub config_file: Option<PathBuf>,
    /// Read the repository password from this file (else $CAIRN_PASSWORD, stored credentials, or a prompt)
    #[arg(long, global = true)]
    pub password_file: Option<PathBuf>,
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace)
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create, connect to and inspect repositories
    #[command(alias = "repo")]
    Repository(RepositoryArgs),
    /// Create, list and delete snapshots
    Snapshot(SnapshotArgs),
    /// List the contents of a snapshot: ID[/path]
    Ls(LsArgs),
    /// Restore a snapshot (or a path inside it) into TARGET
    Restore(RestoreArgs),
    /// Compact the index; with --full, also collect garbage
    Maintenance(MaintenanceArgs),
    /// Rebuild the index from the packs
    Index(IndexArgs),
}

#[derive(Args, Debug)]
pub struct MaintenanceArgs {
    #[command(subcommand)]
    pub command: MaintenanceCommand,
}

#[derive(Subcommand, Debug)]
pub enum MaintenanceCommand {
    /// Run maintenance now
    Run(MaintenanceRunArgs),
}

#[derive(Args, Debug)]
pub struct MaintenanceRunArgs {
    /// Also remove data no snapshot references (rewrites mostly-unused packs)
    #[arg(long)]
    pub full: bool,
    /// full: keep the safety margins (safe with backups running elsewhere); none: delete at once
    #[arg(long, default_value = "full")]
    pub safety: String,
    /// Safety margin in seconds instead of the default hour (at least 20)
    #[arg(long, hide = true)]
    pub safety_margin: Option<u64>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct IndexArgs {
    #[command(subcommand)]
    pub command: IndexCommand,
}

#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Rebuild the index from the packs' entry tables (after an index blob was lost)
    Rebuild {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ExpireArgs {
    #[arg(long)]
    pub keep_latest: Option<u32>,
    #[arg(long)]
    pub keep_hourly: Option<u32>,
    #[arg(long)]
    pub keep_daily: Option<u32>,
    #[arg(long)]
    pub keep_weekly: Option<u32>,
    #[arg(long)]
    pub keep_monthly: Option<u32>,
    #[arg(long)]
    pub keep_annual: Option<u32>,
    /// Show what would be deleted
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RepositoryArgs {
    #[command(subcommand)]
    pub command: RepositoryCommand,
}

#[derive(Subcommand, Debug)]
pub enum RepositoryCommand {
    /// Create a new repository and connect to it
    Create {
        #[command(subcommand)]
        storage: StorageArgs,
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Connect to an existing repository
    Connect {
        #[command(subcommand)]
        storage: StorageArgs,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Show the connected repository
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Forget the connection (and any stored password); the repository is untouched
    Disconnect,
    /// Check the index against the packs (and, with --read-all-data, every stored blob)
    Check {
        #[arg(long)]
        read_all_data: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum StorageArgs {
    /// A repository in a local folder
    Filesystem {
        /// The repository folder
        #[arg(long)]
        path: PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Store the password in the OS keyring (or a 0600 file beside the config when there is none)
    #[arg(long, global = true)]
    pub persist_credentials: bool,
    /// Record snapshots as this user instead of the current one
    #[arg(long, global = true)]
    pub override_username: Option<String>,
    /// Record snapshots as this host instead of this machine's name
    #[arg(long, global = true)]
    pub override_hostname: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct FormatArgs {
    /// zstd level for new data (0 turns compression off)
    #[arg(long, global = true, default_value_t = cairn_engine::format::DEFAULT_COMPRESSION_LEVEL)]
    pub compression_level: i32,
    /// Target pack size in MiB
    #[arg(long, global = true, default_value_t = 16)]
    pub pack_size_mib: u32,
    /// Average chunk size in KiB (a power of two; minimum is a quarter, maximum four times)
    #[arg(long, global = true, default_value_t = 512)]
    pub splitter_avg_kib: u32,
}

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Back up one or more folders (one snapshot each)
    Create(SnapshotCreateArgs),
    /// List snapshots, of PATH or of every source
    #[command(alias = "ls")]
    List {
        /// Only snapshots of this folder
        path: Option<PathBuf>,
        /// Snapshots of every user and host, not just this one
        #[arg(long, short = 'a')]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Delete snapshot records (data is reclaimed by maintenance)
    Delete {
        /// Snapshot ids or unique prefixes
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check that everything snapshots reference is stored (and read back a share of file data)
    Verify {
        /// Snapshot ids or prefixes [default: all]
        ids: Vec<String>,
        /// Percentage of file chunks to read, decrypt and re-hash (chosen at random)
        #[arg(long, default_value_t = 0.0)]
        verify_files_percent: f64,
        /// Threads reading chunks [default: one per core]
        #[arg(long)]
        parallel: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Delete snapshots a retention policy does not keep
    Expire(ExpireArgs),
}

#[derive(Args, Debug)]
pub struct SnapshotCreateArgs {
    /// Folders to back up
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Tags as key:value (repeatable)
    #[arg(long = "tags", value_name = "KEY:VALUE")]
    pub tags: Vec<String>,
    /// Free-text description
    #[arg(long, default_value = "")]
    pub description: String,
    /// Print one JSON object per snapshot (an array when several paths are given)
    #[arg(long)]
    pub json: bool,
    /// Print per-stage timing (also in --json)
    #[arg(long)]
    pub stats: bool,
    /// Read every file even if unchanged since the previous snapshot
    #[arg(long)]
    pub force_hash: bool,
    /// Worker threads for hashing, compression and encryption [default: one per core]
    #[arg(long)]
    pub parallel: Option<usize>,
    /// MiB of file data in flight between reading and packing (bounds memory)
    #[arg(long, default_value_t = 64)]
    pub max_buffer_mib: usize,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id (or prefix, or `latest`), optionally followed by /path
    pub target: String,
    /// Long listing: mode, size, mtime
    #[arg(long, short = 'l')]
    pub long: bool,
    /// List sub-folders recursively
    #[arg(long, short = 'r')]
    pub recursive: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id (or prefix, or `latest`), optionally followed by /path
    pub source: String,
    /// Where to write the snapshot root's contents (or the file)
    pub target: PathBuf,
    /// Replace existing files at the target
    #[arg(long)]
    pub overwrite: bool,
    #[arg(long)]
    pub json: bool,
}
