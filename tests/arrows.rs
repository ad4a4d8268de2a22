//! The layers' arrows point down (`../shared/LAYOUT.md`): the pure core names no storage, write
//! path, handle or host; the storage backends name neither the handle, the host nor the write
//! path above them. Read off the source, so a new `use` that breaks a layer fails here.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

/// The core's files: decisions, their types, and the pure encoding of what is stored.
const CORE: &[&str] = &[
    "decider.rs",
    "domain.rs",
    "event.rs",
    "codec.rs",
    "idempotency.rs",
    "validate.rs",
    "clock.rs",
    "seal.rs",
];
/// What the core must not name.
const ABOVE_CORE: &[&str] = &[
    "backend",
    "commit",
    "writer",
    "write",
    "ledger",
    "server",
    "subscribe",
    "refold",
    "audit",
    "spill",
    "views",
    "guard",
    "sled",
];
/// What a backend must not name.
const ABOVE_BACKEND: &[&str] = &["ledger", "server", "commit", "writer", "write", "subscribe"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The code of `file` without comments and without its `#[cfg(test)]` module (tests may reach
/// up to build their fixtures).
fn code(file: &Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The modules of this crate that `code` names, as `crate::name` or inside `crate::{…}`.
fn named_modules(code: &str) -> Vec<String> {
    let mut names = vec![];
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            names.extend(group.split(',').map(|p| p.trim().split("::").next().unwrap().to_owned()));
        } else {
            names.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    names
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = vec![];
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

fn offenders(files: &[PathBuf], forbidden: &[&str]) -> Vec<String> {
    let mut found = vec![];
    for file in files {
        for name in named_modules(&code(file)) {
            if forbidden.contains(&name.as_str()) {
                found.push(format!("{} names crate::{name}", file.strip_prefix(src()).unwrap().display()));
            }
        }
    }
    found
}

#[test]
fn the_core_names_nothing_above_it() {
    let files: Vec<PathBuf> = CORE.iter().map(|f| src().join(f)).collect();
    assert_eq!(offenders(&files, ABOVE_CORE), Vec::<String>::new());
    // Nor does it reach for I/O of its own.
    for file in &files {
        let code = code(file);
        for io in ["std::fs", "std::net", "std::thread", "sled::", "tokio::"] {
            assert!(!code.contains(io), "{} uses {io}", file.display());
        }
    }
}

#[test]
fn the_backends_name_nothing_above_them() {
    assert_eq!(offenders(&rust_files(&src().join("backend")), ABOVE_BACKEND), Vec::<String>::new());
}

#[test]
fn the_check_itself_sees_an_arrow_pointing_up() {
    let code = "use crate::domain::User;\nuse crate::{backend::Backend, error::Error};\nfn f() { crate::ledger::x() }";
    assert_eq!(named_modules(code), ["domain", "backend", "error", "ledger"]);
}
