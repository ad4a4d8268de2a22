//! The integration tests as one binary (one link instead of one a file): each module a family of
//! scenarios, with one set of helpers in `common`. The binary needs the `whitebox` feature (its
//! modules reach into the engine), which `cargo test --all-features` turns on. Run one family with
//! `cargo test --all-features --test all <module>::`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

mod arrows;
mod audit;
mod bench_quick;
mod checkpoint_rotation;
mod cli;
mod concurrency;
mod configuration;
mod conformance;
mod copy;
mod crash;
mod credentials;
mod deploy;
mod disk_full;
mod epochs;
mod erasure;
mod failover;
mod faults;
#[cfg(feature = "cli")]
mod file_modes;
mod fold;
mod format1;
mod golden;
mod group_commit;
mod groups;
mod health;
mod hostile;
mod hsm;
mod idempotency;
#[cfg(all(feature = "postgres", feature = "cli"))]
mod keys;
mod kx;
mod memory_backend;
mod merkle;
#[cfg(feature = "cli")]
mod migration;
mod operations;
mod passwords;
#[cfg(all(feature = "postgres", feature = "cli", feature = "server"))]
mod postgres;
#[cfg(all(feature = "postgres", feature = "cli", feature = "server"))]
mod postgres_hostile;
mod processes;
mod python;
mod rotation;
mod rust_sdk;
mod serve;
mod server;
mod subscribe;
mod upgrade;
mod validation;
