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
    /// Log level for diagnostics on stderr (off, error, warn, info, debug, trace)
    #[arg(long, global = true, default_value = "warn",
          value_parser = ["off", "error", "warn", "info", "debug", "trace"])]
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
    /// Measure the algorithms Cairn offers on this machine
    Benchmark(BenchmarkArgs),
    /// Run the repository server (QUIC) and/or the UI server (HTTPS); manage server users
    Server(ServerArgs),
    /// Compact the index; with --full, also collect garbage
    Maintenance(MaintenanceArgs),
    /// Rebuild the index from the packs
    Index(IndexArgs),
    /// Set and show per-folder snapshot policies (schedule and retention)
    Policy(PolicyArgs),
    /// Start the UI server for this repository and open it in the browser; stops it on exit
    Ui(UiArgs),
}

#[derive(Args, Debug)]
pub struct UiArgs {
    /// Do not open a web browser
    #[arg(long)]
    pub no_browser: bool,
    /// Print the address, user and password of the UI server a running `cairn ui` started, and exit
    #[arg(long)]
    pub show_credentials: bool,
    /// Serve on a Unix socket (no TCP port); the browser reaches it through a loopback port of the
    /// launcher's that exists only while the launcher runs
    #[arg(long)]
    pub unix_socket: bool,
    /// Confirm `-- --insecure` (plain HTTP, for debugging only)
    #[arg(long)]
    pub i_understand_insecure: bool,
    /// Extra flags for `cairn server start`, after `--` (e.g. `-- --log-level debug`)
    #[arg(last = true, value_name = "SERVER_FLAGS")]
    pub server_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Change the policy of a folder (unset fields keep their value)
    Set(PolicySetArgs),
    /// Show the policy of a folder
    Show {
        path: PathBuf,
        /// Print the result as JSON on stdout, for scripts
        #[arg(long)]
        json: bool,
    },
    /// List every policy
    List {
        /// Print the result as JSON on stdout, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Remove the policy of a folder
    Delete { path: PathBuf },
}

#[derive(Args, Debug)]
pub struct PolicySetArgs {
    /// The folder
    pub path: PathBuf,
    /// Time between scheduled snapshots taken by the UI server (e.g. 30m, 1h, 1d)
    #[arg(long, conflicts_with = "manual")]
    pub snapshot_interval: Option<String>,
    /// Take snapshots only by hand (clears --snapshot-interval)
    #[arg(long)]
    pub manual: bool,
    #[command(flatten)]
    pub keep: KeepArgs,
    /// Print the result as JSON on stdout, for scripts
    #[arg(long)]
    pub json: bool,
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
    /// Print the result as JSON on stdout, for scripts
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
        /// Print the result as JSON on stdout, for scripts
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub struct ExpireArgs {
    #[command(flatten)]
    pub keep: KeepArgs,
    /// Show what would be deleted
    #[arg(long)]
    pub dry_run: bool,
    /// Print the result as JSON on stdout, for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    #[command(subcommand)]
    pub command: ServerCommand,
}

#[derive(Subcommand, Debug)]
pub enum ServerCommand {
    /// Serve the connected repository
    Start(ServerStartArgs),
    /// Manage the users allowed to connect to the repository server
    User(ServerUserArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ServerStartArgs {
    /// Where to listen: HOST:PORT (port 0 picks a free one), or unix:/path/to/socket (UI server only: a
    /// socket only this user can reach, and no network port)
    #[arg(long, default_value = "127.0.0.1:51515")]
    pub address: String,
    /// Also serve the HTTPS API and web UI (on the same port number, over TCP)
    #[arg(long)]
    pub ui: bool,
    /// TLS certificate (PEM)
    #[arg(long)]
    pub tls_cert_file: Option<std::path::PathBuf>,
    /// TLS private key (PKCS#8 PEM)
    #[arg(long)]
    pub tls_key_file: Option<std::path::PathBuf>,
    /// Generate a self-signed certificate (written to --tls-cert-file/--tls-key-file when given, which must
    /// not exist; otherwise kept in memory for this run)
    #[arg(long)]
    pub tls_generate_cert: bool,
    /// DNS names for a generated certificate (repeatable); the listening IP is always added
    #[arg(long, default_value = "localhost")]
    pub tls_generate_cert_name: Vec<String>,
    /// Print the certificate (base64 of the PEM, one line) on stderr
    #[arg(long)]
    pub tls_print_server_cert: bool,
    /// UI server: generate a random password for the UI user and print it
    #[arg(long)]
    pub random_password: bool,
    /// UI server: user name for HTTP Basic auth
    #[arg(long, default_value = "cairn")]
    pub server_username: String,
    /// UI server: password for HTTP Basic auth
    #[arg(long, env = "CAIRN_SERVER_PASSWORD")]
    pub server_password: Option<String>,
    /// Exit cleanly when standard input closes (for launchers)
    #[arg(long)]
    pub shutdown_on_stdin: bool,
    /// UI server: serve plain HTTP (dangerous)
    #[arg(long)]
    pub insecure: bool,
    /// UI server: key that signs session cookies (random per run by default)
    #[arg(long)]
    pub auth_cookie_signing_key: Option<String>,
    /// UI server: time between quick maintenance runs (0 turns it off)
    #[arg(long, default_value = "1h", hide = true)]
    pub maintenance_interval: String,
    /// UI server: folder for task logs [default: $XDG_CACHE_HOME/cairn/logs]
    #[arg(long, hide = true)]
    pub log_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ServerUserArgs {
    #[command(subcommand)]
    pub command: ServerUserCommand,
}

#[derive(Subcommand, Debug)]
pub enum ServerUserCommand {
    /// Add a user (USER@HOST)
    Add {
        name: String,
        /// The user's password (prompted for on a terminal if absent)
        #[arg(long)]
        user_password: Option<String>,
        /// May read and write every snapshot and manage the repository
        #[arg(long)]
        admin: bool,
        /// Give the user its own hashing key: its content never deduplicates against other users', so it
        /// cannot probe whether they stored some content (fixed at creation)
        #[arg(long)]
        isolated: bool,
    },
    /// Change a user's password or admin flag
    Set {
        name: String,
        #[arg(long)]
        user_password: Option<String>,
        #[arg(long)]
        admin: Option<bool>,
    },
    /// List users
    List {
        /// Print the result as JSON on stdout, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Delete a user
    Delete { name: String },
}

#[derive(Args, Debug)]
pub struct BenchmarkArgs {
    #[command(subcommand)]
    pub command: BenchmarkCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum BenchmarkCommand {
    /// Content-defined chunking at each offered average size
    Splitter(BenchmarkOptions),
    /// Content-id hashing
    Hashing(BenchmarkOptions),
    /// Chunk encryption
    Encryption(BenchmarkOptions),
    /// zstd at every offered level: speed and ratio
    Compression(BenchmarkOptions),
}

#[derive(Args, Debug, Clone)]
pub struct BenchmarkOptions {
    /// Sample data: text (compressible) or random
    #[arg(long, value_enum, default_value_t = SampleData::Text)]
    pub data: SampleData,
    /// Measure on the contents of this file instead (its first --size-mib MiB), e.g. a tar of your own data
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub data_file: Option<std::path::PathBuf>,
    /// MiB of sample data
    #[arg(long, default_value_t = 32)]
    pub size_mib: usize,
    /// Bytes per block (chunk) for hashing, encryption and compression, in KiB
    #[arg(long, default_value_t = 512)]
    pub block_kib: usize,
    /// Seconds to measure each option
    #[arg(long, default_value_t = 0.5)]
    pub seconds: f64,
    /// Print the result as JSON on stdout, for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleData {
    Text,
    Random,
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
        /// Print the result as JSON on stdout, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Forget the connection (and any stored password); the repository is untouched
    Disconnect,
    /// Change the repository's password (its content and keys stay as they are; other clients connected
    /// with the old password must connect again with the new one)
    ChangePassword {
        /// The new password. Other local users can see it in the process list: prefer
        /// --new-password-file, CAIRN_NEW_PASSWORD or the prompt
        #[arg(long)]
        new_password: Option<String>,
        /// Read the new password from this file
        #[arg(long, conflicts_with = "new_password")]
        new_password_file: Option<std::path::PathBuf>,
    },
    /// Check the index against the packs (and, with --read-all-data, every stored blob)
    Check {
        #[arg(long)]
        read_all_data: bool,
        /// Print the result as JSON on stdout, for scripts
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
    /// A repository server (connect only)
    Server {
        /// quic://HOST:PORT
        #[arg(long)]
        url: String,
        /// SHA-256 of the server certificate's DER (64 hex digits, as `SERVER CERT SHA256:` prints it)
        #[arg(long)]
        server_cert_fingerprint: String,
    },
    /// A repository in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, B2, Wasabi, R2); the bucket must exist
    S3(S3Args),
}

#[derive(Args, Debug, Clone)]
pub struct S3Args {
    /// The bucket
    #[arg(long)]
    pub bucket: String,
    /// Key prefix of the repository inside the bucket
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Service URL for stores other than AWS, e.g. http://127.0.0.1:9000
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Region [default: $AWS_REGION, else us-east-1]
    #[arg(long)]
    pub region: Option<String>,
    /// Access key id; kept in a 0600 file beside the config [default: $AWS_ACCESS_KEY_ID]
    #[arg(long, requires = "secret_access_key")]
    pub access_key: Option<String>,
    /// Secret access key; kept with the access key [default: $AWS_SECRET_ACCESS_KEY]
    #[arg(long, requires = "access_key")]
    pub secret_access_key: Option<String>,
    /// Session token for temporary credentials; kept with the access key [default: $AWS_SESSION_TOKEN]
    #[arg(long, requires = "access_key")]
    pub session_token: Option<String>,
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
        /// Print the result as JSON on stdout, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Delete snapshot records (data is reclaimed by maintenance)
    Delete {
        /// Snapshot ids or unique prefixes
        #[arg(required = true)]
        ids: Vec<String>,
        /// Print the result as JSON on stdout, for scripts
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
        /// Print the result as JSON on stdout, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Delete snapshots a retention policy does not keep
    Expire(ExpireArgs),
}

#[derive(Args, Debug)]
pub struct SnapshotCreateArgs {
    /// Folders or single files to back up
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
    #[arg(long, default_value_t = 32)]
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
    /// Print the result as JSON on stdout, for scripts
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Snapshot id (or prefix, or `latest`), optionally followed by /path
    pub source: String,
    /// Where to write the snapshot root's contents (or the file; a single-file snapshot goes into this folder)
    pub target: PathBuf,
    /// Replace existing files at the target
    #[arg(long)]
    pub overwrite: bool,
    /// Files and chunk groups fetched at once [default: twice the cores, at least 8]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: Option<u16>,
    /// Print the result as JSON on stdout, for scripts
    #[arg(long)]
    pub json: bool,
}

/// Retention rules, shared by `snapshot expire` and `policy set`.
#[derive(Args, Debug, Clone, Copy)]
pub struct KeepArgs {
    /// Keep the N newest snapshots
    #[arg(long)]
    pub keep_latest: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours
    #[arg(long)]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days
    #[arg(long)]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks
    #[arg(long)]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months
    #[arg(long)]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years
    #[arg(long)]
    pub keep_annual: Option<u32>,
}
