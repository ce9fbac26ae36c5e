//! The web page in headless Chromium, driven by Playwright (`tests/browser/ui.mjs`): log in, click
//! "Snapshot now", see it finish, browse into the new snapshot. `.ci/run` installs Chromium and
//! playwright-core; elsewhere the test is skipped when they are missing, but under CI it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::Env;
use crate::tree_gen::write;
use crate::ui_server::UiProcess;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser")
}

fn chromium() -> Option<PathBuf> {
    let from_env = std::env::var_os("CHROMIUM").map(PathBuf::from);
    from_env.into_iter().chain(["/usr/bin/chromium".into(), "/usr/bin/chromium-browser".into()]).find(|p| p.exists())
}

#[test]
fn browser_logs_in_snapshots_now_and_browses_the_new_snapshot() {
    let playwright = browser_dir().join("node_modules/playwright-core");
    let (Some(chromium), true) = (chromium(), playwright.exists()) else {
        let message = "Chromium (/usr/bin/chromium) or tests/browser/node_modules/playwright-core is missing; \
                       .ci/run installs them";
        if std::env::var_os("CI").is_some() {
            panic!("{message}");
        }
        eprintln!("SKIPPED: {message}");
        return;
    };
    let env = Env::new();
    let src = env.path("src");
    write(&src.join("docs/report.txt"), b"quarterly numbers");
    write(&src.join("docs/deep/notes.md"), b"# notes");
    write(&src.join("top.txt"), b"top");
    env.create_repo();
    env.snapshot(&src);
    let server = UiProcess::start(&env, &[]);
    let screenshot = env.path("page.png");
    let out = Command::new("node")
        .arg(browser_dir().join("ui.mjs"))
        .current_dir(browser_dir())
        .env("CAIRN_URL", &server.url)
        .env("CAIRN_PASSWORD", &server.password)
        .env("CAIRN_SOURCE", std::fs::canonicalize(&src).unwrap())
        .env("CAIRN_EXPECT_DIR", "docs")
        .env("CAIRN_EXPECT_FILE", "report.txt")
        .env("CAIRN_SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser test failed:\n{text}");
    assert!(text.contains("browser test passed"), "{text}");
    assert!(screenshot.exists());
    if let Some(dir) = std::env::var_os("CAIRN_KEEP_SCREENSHOT") {
        let _ = std::fs::copy(&screenshot, Path::new(&dir).join("ui-page.png"));
    }
    let snaps = env.json(&["snapshot", "list", "--json"]);
    assert_eq!(snaps.as_array().unwrap().len(), 2, "the click took a snapshot");
}
