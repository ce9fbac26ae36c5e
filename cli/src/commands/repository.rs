//! `cairn repository create|connect|status|disconnect|change-password`.

use anyhow::{bail, Result};
use cairn_engine::chunker::ChunkerParams;
use cairn_engine::format::CreateOptions;
use cairn_engine::storage::s3::S3Credentials;
use cairn_engine::Access;
use cairn_transport::client::RemoteRepository;
use cairn_transport::ConnectionConfig;

use super::Context;
use crate::args::{ConnectArgs, FormatArgs, RepositoryCommand, StorageArgs};
use crate::config::ClientConfig;
use crate::{credentials, output};

pub fn run(ctx: &Context, command: RepositoryCommand) -> Result<()> {
    match command {
        RepositoryCommand::Create { storage, connect, format } => create(ctx, storage, connect, format),
        RepositoryCommand::Connect { storage, connect } => connect_existing(ctx, storage, connect),
        RepositoryCommand::Status { json } => status(ctx, json),
        RepositoryCommand::Disconnect => disconnect(ctx),
        RepositoryCommand::ChangePassword { new_password, new_password_file } => {
            change_password(ctx, new_password, new_password_file.as_deref())
        }
        RepositoryCommand::Check { read_all_data, json } => super::integrity::check(ctx, read_all_data, json),
    }
}

fn connection(storage: StorageArgs, connect: &ConnectArgs) -> Result<ConnectionConfig> {
    Ok(match storage {
        StorageArgs::Filesystem { path } => ConnectionConfig::Filesystem { path: std::path::absolute(&path)? },
        StorageArgs::Server { url, server_cert_fingerprint } => {
            cairn_transport::tls::parse_fingerprint(&server_cert_fingerprint)?;
            let user = connect
                .override_username
                .clone()
                .unwrap_or_else(|| whoami::account().unwrap_or_else(|_| "unknown".into()));
            let host = connect
                .override_hostname
                .clone()
                .unwrap_or_else(|| whoami::hostname().unwrap_or_else(|_| "localhost".into()));
            ConnectionConfig::Server { url, fingerprint: server_cert_fingerprint, username: format!("{user}@{host}") }
        }
        StorageArgs::S3(s3) => ConnectionConfig::S3 {
            bucket: s3.bucket,
            prefix: s3.prefix.trim_matches('/').to_string(),
            endpoint: s3.endpoint,
            region: s3.region,
            credentials: s3.access_key.zip(s3.secret_access_key).map(|(access_key_id, secret_access_key)| {
                S3Credentials { access_key_id, secret_access_key, session_token: s3.session_token }
            }),
        },
    })
}

fn save_connection(ctx: &Context, storage: ConnectionConfig, connect: &ConnectArgs, password: &str) -> Result<()> {
    let config = ClientConfig {
        storage,
        username: connect.override_username.clone(),
        hostname: connect.override_hostname.clone(),
        persisted_password: connect.persist_credentials,
    };
    credentials::forget(&ctx.config_path);
    config.save(&ctx.config_path)?;
    if let ConnectionConfig::S3 { credentials: Some(keys), .. } = &config.storage {
        let path = credentials::persist_s3(&ctx.config_path, keys)?;
        errln!("S3 access key stored in {} (mode 0600).", path.display());
    }
    if connect.persist_credentials {
        match credentials::persist(&ctx.config_path, password)? {
            credentials::Persisted::Keyring => errln!("Password stored in the OS keyring."),
            credentials::Persisted::File(path) => {
                errln!("No OS keyring available; password stored in {} (mode 0600).", path.display())
            }
        }
    }
    errln!("Connected to repository ({}). Config: {}", config.storage.describe(), ctx.config_path.display());
    Ok(())
}

fn create(ctx: &Context, storage: StorageArgs, connect: ConnectArgs, format: FormatArgs) -> Result<()> {
    if let StorageArgs::Server { .. } = storage {
        bail!("a repository is created where it is stored; connect to a server with `cairn repository connect server`");
    }
    let storage = connection(storage, &connect)?;
    let password = credentials::new_password(ctx.global.password_file.as_deref())?;
    if password.is_empty() {
        bail!("the password must not be empty");
    }
    let options = CreateOptions {
        compression_level: format.compression_level,
        pack_size: format.pack_size_mib.saturating_mul(1 << 20),
        chunker: ChunkerParams {
            min: format.splitter_avg_kib.saturating_mul(256),
            avg: format.splitter_avg_kib.saturating_mul(1024),
            max: format.splitter_avg_kib.saturating_mul(4096),
        },
    };
    let repo = storage.create(password.as_bytes(), &options)?;
    let f = repo.format();
    errln!("Initializing repository with:");
    errln!("  Repository id:    {}", f.repository_id);
    errln!("  Hash:             {}", f.algorithms.hash);
    errln!("  Encryption:       {}", f.algorithms.encryption);
    errln!("  Splitter:         {} {}/{}/{} bytes", f.algorithms.chunker, f.chunker.min, f.chunker.avg, f.chunker.max);
    errln!("  Compression:      zstd level {}", f.compression_level);
    errln!("  Pack size:        {}", output::bytes(f.pack_size as u64));
    errln!("  Key derivation:   argon2id, {} KiB, {} passes", f.kdf.memory_kib, f.kdf.iterations);
    save_connection(ctx, storage, &connect, &password)
}

fn change_password(ctx: &Context, given: Option<String>, file: Option<&std::path::Path>) -> Result<()> {
    let config = ctx.load_config()?;
    if let ConnectionConfig::Server { url, .. } = &config.storage {
        bail!(
            "this client is connected to the repository server {url}: the repository's password is changed where \
             it is connected directly, and a server user's with `cairn server user set`"
        );
    }
    let current = ctx.password(&config)?;
    let new = credentials::changed_password(given, file)?;
    let repo = config.storage.open(current.as_bytes())?;
    repo.change_password(current.as_bytes(), new.as_bytes())?;
    if config.persisted_password {
        credentials::replace_stored(&ctx.config_path, &new).map_err(|e| {
            anyhow::anyhow!(
                "the password was changed, but storing the new one for this client failed ({e:#}); \
                 connect again with the new password"
            )
        })?;
    }
    errln!(
        "Changed the password of repository {} ({}). Clients that stored the old password must connect again.",
        repo.format().repository_id.to_hex(),
        config.storage.describe()
    );
    Ok(())
}

fn connect_existing(ctx: &Context, storage: StorageArgs, connect: ConnectArgs) -> Result<()> {
    let storage = connection(storage, &connect)?;
    let password = credentials::password(ctx.global.password_file.as_deref(), None, false)?;
    if let ConnectionConfig::Server { url, fingerprint, username } = &storage {
        // Logging in checks the fingerprint, the user and the password now rather than at first use.
        let remote = RemoteRepository::connect(url, fingerprint, username, &password)?;
        errln!("Logged in to {url} as {}{}.", remote.user, if remote.admin { " (admin)" } else { "" });
        let (user, host) = username.split_once('@').unwrap_or((username, ""));
        let connect = ConnectArgs {
            override_username: Some(user.to_string()),
            override_hostname: Some(host.to_string()),
            ..connect
        };
        return save_connection(ctx, storage, &connect, &password);
    }
    storage.probe()?;
    storage.open(password.as_bytes())?;
    save_connection(ctx, storage, &connect, &password)
}

fn status(ctx: &Context, json: bool) -> Result<()> {
    let config = ctx.load_config()?;
    if let ConnectionConfig::Server { url, fingerprint, username } = &config.storage {
        let remote_repo = RemoteRepository::connect(url, fingerprint, username, &ctx.password(&config)?)?;
        let snapshots = remote_repo.list_snapshots()?.len();
        let remote = remote_repo.status()?;
        if json {
            let mut value = remote;
            value["configFile"] = ctx.config_path.display().to_string().into();
            value["storage"] = serde_json::to_value(&config.storage)?;
            value["snapshots"] = snapshots.into();
            return output::json(&value);
        }
        outln!("Config file:         {}", ctx.config_path.display());
        outln!("Server:              {}", config.storage.describe());
        outln!("Repository id:       {}", remote["repositoryId"].as_str().unwrap_or("?"));
        outln!(
            "Logged in as:        {}{}",
            remote["user"].as_str().unwrap_or("?"),
            if remote["admin"] == true { " (admin)" } else { "" }
        );
        outln!("Compression:         zstd level {}", remote["compressionLevel"]);
        outln!("Snapshots visible:   {snapshots}");
        return Ok(());
    }
    let repo = ctx.open_direct()?;
    let f = repo.format();
    let snapshots = repo.list_snapshots()?.len();
    let blobs = repo.storage_summary()?;
    let count = |c: char| blobs.get(&c).copied().unwrap_or_default();
    let total_bytes: u64 = blobs.values().map(|(_, b)| b).sum();
    let index = repo.index();
    if json {
        return output::json(&serde_json::json!({
            "configFile": ctx.config_path,
            "storage": config.storage,
            "username": config.username(),
            "hostname": config.hostname(),
            "format": f,
            "snapshots": snapshots,
            "dataPacks": count('p').0,
            "metadataPacks": count('q').0,
            "indexBlobs": count('i').0,
            "indexEntries": index.len(),
            "indexBytesPerEntry": cairn_engine::index::ENTRY_BYTES,
            "storedBytes": total_bytes,
        }));
    }
    outln!("Config file:         {}", ctx.config_path.display());
    outln!("Storage:             {}", config.storage.describe());
    outln!("Connected as:        {}@{}", config.username(), config.hostname());
    outln!("Repository id:       {}", f.repository_id);
    outln!("Format version:      {}", f.version);
    outln!("Hash:                {}", f.algorithms.hash);
    outln!("Encryption:          {}", f.algorithms.encryption);
    outln!("Splitter:            {} {}/{}/{}", f.algorithms.chunker, f.chunker.min, f.chunker.avg, f.chunker.max);
    outln!("Compression:         zstd level {}", f.compression_level);
    outln!("Pack size:           {}", output::bytes(f.pack_size as u64));
    outln!("Snapshots:           {snapshots}");
    outln!("Data packs:          {} ({})", count('p').0, output::bytes(count('p').1));
    outln!("Metadata packs:      {} ({})", count('q').0, output::bytes(count('q').1));
    outln!("Index:               {} blobs, {} entries", count('i').0, index.len());
    outln!("Total stored:        {}", output::bytes(total_bytes));
    Ok(())
}

fn disconnect(ctx: &Context) -> Result<()> {
    credentials::forget(&ctx.config_path);
    match std::fs::remove_file(&ctx.config_path) {
        Ok(()) => {
            errln!("Disconnected from repository.");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("not connected to a repository"),
        Err(e) => Err(e.into()),
    }
}
