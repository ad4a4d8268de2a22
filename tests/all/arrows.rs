//! The layers' arrows point down (`../shared/LAYOUT.md`): the pure core names no storage, write
//! path, handle or host; the storage backends name neither the handle, the host nor the write
//! path above them. Read off the source, so a new `use` that breaks a layer fails here.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};

/// The layers, each folder of `src/` with its rank: a module may name only modules of a lower
/// rank (and `error`, which every layer shares). `api` and `write` share a rank, so neither names
/// the other. docs/design.md's "Layout" draws the same picture.
const LAYERS: &[(&str, u8)] = &[
    ("core", 0),
    ("credentials", 1),
    ("views", 1),
    ("backend", 2),
    ("audit", 3),
    ("api", 4),
    ("write", 4),
    ("ledger", 5),
    ("server", 6),
];

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
        // A `tests` folder is test code, which may reach up to build its fixtures.
        if path.is_dir() && !path.ends_with("tests") {
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

fn rank(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, rank)| *rank)
}

#[test]
fn every_layer_names_only_layers_below_it() {
    let mut found = vec![];
    for (layer, own) in LAYERS {
        let below: Vec<&str> =
            LAYERS.iter().filter(|(_, rank)| rank < own).map(|(name, _)| *name).chain(["error"]).collect();
        let above: Vec<&str> = LAYERS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| name != layer && !below.contains(name))
            .collect();
        found.extend(offenders(&rust_files(&src().join(layer)), &above));
    }
    assert_eq!(found, Vec::<String>::new());
    // Every folder of src/ is a layer of the table (a new one must say where it stands).
    for entry in std::fs::read_dir(src()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() && name != "bin" {
            assert!(rank(&name).is_some(), "src/{name} is in no layer of LAYERS");
        }
    }
}

#[test]
fn the_core_does_no_io() {
    for file in rust_files(&src().join("core")) {
        let code = code(&file);
        for io in ["std::fs", "std::net", "std::thread", "sled::", "tokio::"] {
            assert!(!code.contains(io), "{} uses {io}", file.display());
        }
    }
}

#[test]
fn every_folder_says_what_it_owns_and_keeps() {
    for (layer, _) in LAYERS {
        let text = std::fs::read_to_string(src().join(layer).join("mod.rs")).unwrap();
        assert!(text.starts_with("//! "), "src/{layer}/mod.rs opens without a header");
        assert!(text.contains("Invariant"), "src/{layer}/mod.rs names no invariant");
    }
}

#[test]
fn the_check_itself_sees_an_arrow_pointing_up() {
    let code = "use crate::domain::User;\nuse crate::{backend::Backend, error::Error};\nfn f() { crate::ledger::x() }";
    assert_eq!(named_modules(code), ["domain", "backend", "error", "ledger"]);
}
