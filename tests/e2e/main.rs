//! End-to-end tests with real processes. See `tests/src/lib.rs` for the harness.

mod abuse;
mod audit;
mod authz;
mod browser;
mod capture;
mod cli;
mod commands;
mod health;
mod killloop;
mod offline;
mod operations;
mod packages;
mod partition;
mod quarantine;
mod rejects;
mod restore;
mod security;
mod segmentation;
mod speakers;
mod sso;
mod storage;
mod tidy;
mod transcript;
mod upgrade;
mod voice;
mod whisper;
