//! One configuration story: every flag of every command also from a `USER_LEDGER_…` variable
//! (its long name in upper case, `-` as `_`) and from a TOML file (`--config`,
//! `USER_LEDGER_CONFIG`): the global flags at the top, a command's own in a table named for it
//! (`[serve]`). A flag wins over the variable, the variable over the file, the file over the
//! default. A key the file does not know is refused by name; so is a value of the wrong kind.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use serde_json::{json, Value};
use user_ledger::{Error, Failure, Result};

use crate::args::Cli;

/// Where each setting in force came from.
pub(crate) type Sources = BTreeMap<String, (&'static str, Value)>;

/// The variable that names a flag: `USER_LEDGER_` and its long name in upper case.
fn variable(long: &str) -> String {
    format!("USER_LEDGER_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// `command` with a variable for every flag that has none of its own (help and version aside),
/// in every subcommand.
fn with_variables(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| match arg.get_long() {
            Some(long) if arg.get_env().is_none() && !matches!(long, "help" | "version") => {
                let name = variable(long);
                arg.env(name)
            }
            _ => arg,
        })
        .mut_subcommands(with_variables)
}

/// The CLI's definition, as `--help`, the man page and completions show it.
pub(crate) fn command() -> clap::Command {
    with_variables(Cli::command())
}

/// Parses the command line, the environment and the configuration file into the CLI, and where
/// each setting came from. Clap's own errors (and `--help`) print and exit here.
pub(crate) fn parse() -> Result<(Cli, Sources)> {
    parse_from(std::env::args_os().collect())
}

/// [`parse`] of `argv`.
pub(crate) fn parse_from(argv: Vec<OsString>) -> Result<(Cli, Sources)> {
    let definition = command();
    let matches = definition.clone().try_get_matches_from(&argv).unwrap_or_else(|e| e.exit());
    let file = matches.get_one::<PathBuf>("config").cloned();
    let mut from_file = BTreeMap::new();
    let matches = match &file {
        None => matches,
        Some(path) => {
            let table = read(path)?;
            let mut extra = Vec::new();
            add_from_file(&definition, &matches, &table, path, &mut extra, &mut from_file)?;
            let mut all = argv.clone();
            all.extend(extra);
            definition.clone().try_get_matches_from(all).unwrap_or_else(|e| e.exit())
        }
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| config_error(e.to_string()))?;
    Ok((cli, sources(&definition, &matches, &from_file)))
}

fn config_error(why: impl std::fmt::Display) -> Error {
    Error::failed(Failure::Config, why)
}

/// The file as a TOML table; an unreadable or malformed one is an error naming it.
fn read(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::failed_by(
            Failure::Config,
            format!("cannot read the configuration file {}: {e}", path.display()),
            e,
        )
    })?;
    text.parse::<toml::Table>().map_err(|e| {
        config_error(format_args!("the configuration file {} does not parse: {e}", path.display()))
    })
}

/// For each key of `table` that names a flag of `definition` (or, in a table named for the
/// command being run, one of its flags) and that neither the command line nor the environment
/// set, the arguments that give it; `found` learns which. A key that names nothing is refused.
fn add_from_file(
    definition: &clap::Command,
    matches: &ArgMatches,
    table: &toml::Table,
    path: &Path,
    extra: &mut Vec<OsString>,
    found: &mut BTreeMap<String, Value>,
) -> Result<()> {
    let running = matches.subcommand();
    for (key, value) in table {
        if let toml::Value::Table(inner) = value {
            let Some(sub) = definition.find_subcommand(key) else {
                return Err(unknown(path, key, definition));
            };
            // Another command's table stays unread, but its keys must still name its flags.
            let here = running.filter(|(name, _)| name == key).map(|(_, m)| m);
            for (inner_key, inner_value) in inner {
                let arg =
                    flag(sub, inner_key).ok_or_else(|| unknown(path, &format!("{key}.{inner_key}"), sub))?;
                if let Some(sub_matches) = here {
                    give(arg, sub_matches, inner_value, path, &format!("{key}.{inner_key}"), extra, found)?;
                }
            }
            continue;
        }
        let arg = flag(definition, key)
            .filter(|a| a.is_global_set())
            .ok_or_else(|| unknown(path, key, definition))?;
        give(arg, matches, value, path, key, extra, found)?;
    }
    Ok(())
}

/// The flag of `command` whose long name is `key`.
fn flag<'c>(command: &'c clap::Command, key: &str) -> Option<&'c clap::Arg> {
    command
        .get_arguments()
        .find(|a| a.get_long() == Some(key) && !matches!(key, "help" | "version" | "config"))
}

fn unknown(path: &Path, key: &str, command: &clap::Command) -> Error {
    let known: Vec<&str> = command
        .get_arguments()
        .filter_map(clap::Arg::get_long)
        .filter(|l| !matches!(*l, "help" | "version" | "config"))
        .collect();
    config_error(format_args!(
        "unknown key `{key}` in the configuration file {}: the keys are the long flags ({}), and a \
         command's own in a table named for it ([serve])",
        path.display(),
        known.join(", ")
    ))
}

/// The arguments that give `arg` the file's `value`, unless the command line or the
/// environment set it.
fn give(
    arg: &clap::Arg,
    matches: &ArgMatches,
    value: &toml::Value,
    path: &Path,
    key: &str,
    extra: &mut Vec<OsString>,
    found: &mut BTreeMap<String, Value>,
) -> Result<()> {
    let id = arg.get_id().as_str();
    if matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
        return Ok(());
    }
    let long = format!("--{}", arg.get_long().unwrap_or(id));
    let wrong = |what: &str| {
        config_error(format_args!("`{key}` in the configuration file {} must be {what}", path.display()))
    };
    let takes_value = arg.get_action().takes_values();
    let items: Vec<&toml::Value> = match value {
        toml::Value::Array(items) => items.iter().collect(),
        one => vec![one],
    };
    for item in items {
        let text = match item {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Float(x) => x.to_string(),
            toml::Value::Boolean(b) if !takes_value => {
                if *b {
                    extra.push(long.clone().into());
                }
                continue;
            }
            toml::Value::Boolean(b) => b.to_string(),
            _ => return Err(wrong("a string, a number, a boolean or a list of them")),
        };
        if !takes_value {
            return Err(wrong("true or false"));
        }
        extra.push(long.clone().into());
        extra.push(text.into());
    }
    found.insert(id.to_owned(), toml_json(value));
    Ok(())
}

fn toml_json(value: &toml::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Every flag of the command being run with its value in force and where it came from:
/// `flag`, `env` (naming the variable), `file`, or `default`.
fn sources(definition: &clap::Command, matches: &ArgMatches, from_file: &BTreeMap<String, Value>) -> Sources {
    let mut out = Sources::new();
    let mut add = |command: &clap::Command, matches: &ArgMatches| {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            let values: Vec<String> = matches
                .get_raw(id)
                .map(|raw| raw.map(|v| v.to_string_lossy().into_owned()).collect())
                .unwrap_or_default();
            let value = match values.as_slice() {
                [] => Value::Null,
                [one] => json!(one),
                many => json!(many),
            };
            let source = match (from_file.contains_key(id), matches.value_source(id)) {
                (true, _) => "file",
                (false, Some(ValueSource::CommandLine)) => "flag",
                (false, Some(ValueSource::EnvVariable)) => "env",
                _ => "default",
            };
            out.insert(long.to_owned(), (source, value));
        }
    };
    add(definition, matches);
    if let Some((name, sub_matches)) = matches.subcommand() {
        if let Some(sub) = definition.find_subcommand(name) {
            add(sub, sub_matches);
        }
    }
    out
}

/// The long names whose values are secrets: shown as set or not, never as they are.
fn secret(long: &str) -> bool {
    ["password", "secret", "pin", "token"].iter().any(|word| long.contains(word))
}

/// The variables that may hold secrets themselves, reported as set or not.
const SECRET_VARIABLES: &[&str] = &[
    "USER_LEDGER_ROOT_KEY",
    "USER_LEDGER_ROOT_SECRET_ACCESS_KEY",
    "USER_LEDGER_PKCS11_PIN",
    "AWS_SECRET_ACCESS_KEY",
    "PGPASSWORD",
];

/// What `config` prints: the file read, each setting in force with where it came from (secrets
/// redacted, a database URL without its password), and which secret variables are set.
pub(crate) fn effective(file: Option<&Path>, sources: &Sources) -> Value {
    let settings: serde_json::Map<String, Value> = sources
        .iter()
        .map(|(long, (from, value))| {
            let shown = match value {
                Value::Null => Value::Null,
                _ if secret(long) => json!("(redacted)"),
                Value::String(text) if long == "db" => json!(user_ledger::redacted_location(text)),
                other => other.clone(),
            };
            (long.clone(), json!({ "value": shown, "from": from }))
        })
        .collect();
    let secrets: serde_json::Map<String, Value> = SECRET_VARIABLES
        .iter()
        .map(|name| {
            let set = std::env::var_os(name).is_some_and(|v| !v.is_empty());
            ((*name).to_owned(), json!(if set { "set (redacted)" } else { "not set" }))
        })
        .collect();
    json!({ "configFile": file, "settings": settings, "secretVariables": secrets })
}
