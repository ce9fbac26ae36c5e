//! Opening the default browser, when there is one: `open` on macOS; on other systems `xdg-open`, and only
//! inside a graphical session ($DISPLAY or $WAYLAND_DISPLAY), because without one `xdg-open` falls back to
//! a text-mode browser that would take over the launcher's terminal. Plain commands rather than a crate
//! (`open`, `webbrowser`): they are what those crates run anyway, and `webbrowser` would also pick text
//! browsers. The URL carries no secret, since command lines are visible to every local user.

use std::process::{Command, Stdio};

/// Asks the desktop to open `url`; says whether a browser was started.
pub fn open(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        let graphical =
            ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
        if !graphical {
            return false;
        }
        "xdg-open"
    };
    let spawned =
        Command::new(opener).arg(url).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
    match spawned {
        Ok(mut child) => {
            // Reap it whenever it finishes (xdg-open returns once the browser has the URL).
            let _ = std::thread::Builder::new().name("cairn-browser".into()).spawn(move || child.wait());
            true
        }
        Err(_) => false,
    }
}
