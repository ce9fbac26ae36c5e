//! The command line of the server the launcher starts: its fixed flags (what a desktop launcher passes)
//! plus the user's extra flags after `--`, minus those that would break what the launcher relies on.
//! `--insecure` (plain HTTP) passes only with `--i-understand-insecure`.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Result};

/// Flags the launcher sets itself, with why the user may not pass them.
const RESERVED: &[(&str, &str)] = &[
    ("--ui", "the launcher always starts the UI server"),
    ("--address", "the launcher picks a free loopback port (or, with --unix-socket, a private socket)"),
    ("--config-file", "give it to `cairn ui` itself: `cairn --config-file F ui`"),
    ("--random-password", "the launcher always uses a one-time password"),
    ("--server-password", "the launcher always uses a one-time password"),
    ("--shutdown-on-stdin", "the launcher always holds the server's standard input"),
    ("--tls-generate-cert", "the launcher always generates a certificate and checks it"),
    ("--tls-print-server-cert", "the launcher always reads the printed certificate"),
];

/// What the launcher asks of its server.
pub struct ServerFlags {
    /// Everything after `server start`.
    pub args: Vec<OsString>,
    /// Plain HTTP (`--insecure`, confirmed).
    pub insecure: bool,
    /// The UI user name (`--server-username`, else `cairn`).
    pub username: String,
}

/// Where the server should listen.
pub enum Listen<'a> {
    Loopback,
    Socket(&'a Path),
}

/// Checks the extra flags and builds the server's command line.
pub fn server_flags(
    extra: &[String],
    listen: Listen<'_>,
    config: &Path,
    confirmed_insecure: bool,
) -> Result<ServerFlags> {
    for arg in extra {
        let name = arg.split_once('=').map_or(arg.as_str(), |(name, _)| name);
        if let Some((flag, why)) = RESERVED.iter().find(|(flag, _)| *flag == name) {
            bail!("`cairn ui -- {flag}` is not allowed: {why}");
        }
    }
    let insecure = extra.iter().any(|a| a == "--insecure" || a.starts_with("--insecure="));
    if insecure && !confirmed_insecure {
        bail!(
            "`cairn ui -- --insecure` serves the UI over plain HTTP: the password and every byte of your data \
             cross the connection unencrypted, and any program on this machine can pose as the server. Add \
             --i-understand-insecure to `cairn ui` if you really want that (for debugging only)"
        );
    }
    let mut args: Vec<OsString> = ["server", "start", "--ui"].iter().map(OsString::from).collect();
    if !insecure {
        args.extend(["--tls-generate-cert", "--tls-print-server-cert"].map(OsString::from));
    }
    args.extend(["--random-password", "--shutdown-on-stdin"].map(OsString::from));
    args.push(match listen {
        Listen::Loopback => "--address=127.0.0.1:0".into(),
        Listen::Socket(path) => {
            let mut a = OsString::from("--address=unix:");
            a.push(path);
            a
        }
    });
    args.push("--config-file".into());
    args.push(config.into());
    args.extend(extra.iter().map(OsString::from));
    Ok(ServerFlags { args, insecure, username: username(extra) })
}

/// The value of `--server-username` among the extra flags, else the server's default.
fn username(extra: &[String]) -> String {
    let mut found = None;
    for (i, arg) in extra.iter().enumerate() {
        if let Some(value) = arg.strip_prefix("--server-username=") {
            found = Some(value.to_string());
        } else if arg == "--server-username" {
            found = extra.get(i + 1).cloned();
        }
    }
    found.unwrap_or_else(|| "cairn".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(flags: &ServerFlags) -> Vec<String> {
        flags.args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn launcher_flags_then_extra_flags() {
        let extra = vec!["--log-level".to_string(), "debug".to_string()];
        let flags = server_flags(&extra, Listen::Loopback, Path::new("/c/repository.config"), false).unwrap();
        assert_eq!(
            strings(&flags).join(" "),
            "server start --ui --tls-generate-cert --tls-print-server-cert --random-password --shutdown-on-stdin \
             --address=127.0.0.1:0 --config-file /c/repository.config --log-level debug"
        );
        assert!(!flags.insecure);
        assert_eq!(flags.username, "cairn");
        let socket = server_flags(&[], Listen::Socket(Path::new("/run/x.sock")), Path::new("c"), false).unwrap();
        assert!(strings(&socket).contains(&"--address=unix:/run/x.sock".to_string()));
    }

    #[test]
    fn reserved_and_unconfirmed_insecure_flags_are_refused() {
        let config = Path::new("c");
        for bad in ["--address=0.0.0.0:80", "--address", "--server-password", "--config-file=x"] {
            let err = server_flags(&[bad.to_string()], Listen::Loopback, config, true).err().expect(bad);
            assert!(err.to_string().contains("not allowed"), "{err}");
        }
        let insecure = vec!["--insecure".to_string()];
        let err = server_flags(&insecure, Listen::Loopback, config, false).err().expect("refused");
        assert!(err.to_string().contains("--i-understand-insecure"), "{err}");
        let flags = server_flags(&insecure, Listen::Loopback, config, true).unwrap();
        assert!(flags.insecure);
        assert!(!strings(&flags).iter().any(|a| a.starts_with("--tls")), "plain HTTP: no certificate flags");
    }

    #[test]
    fn username_comes_from_the_extra_flags() {
        assert_eq!(username(&["--server-username".into(), "me".into()]), "me");
        assert_eq!(username(&["--server-username=you".into()]), "you");
        assert_eq!(username(&["--server-username".into()]), "cairn");
    }
}
