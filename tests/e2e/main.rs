//! End-to-end tests of the `cairn` binary: real processes, real repositories on disk.
//!
//! One test binary (see STYLE.md); each module covers one area.

mod https;
mod support;
mod tree_gen;

mod backup_restore;
mod cli_errors;
mod credentials;
mod incremental;
mod ui_browser;
mod ui_server;
