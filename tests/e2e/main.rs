//! End-to-end tests of the `cairn` binary: real processes, real repositories on disk.
//!
//! One test binary (see STYLE.md); each module covers one area.

mod https;
mod support;
mod tree_gen;

mod backup_restore;
mod benchmark;
mod cli_errors;
mod credentials;
mod disk_full;
mod incremental;
mod integrity;
mod launcher;
mod read_only;
mod repository_server;
mod restore_targets;
mod s3;
mod security;
mod sources;
mod special_files;
mod ui_browser;
mod ui_server;
