//! The operator CLI, shaped like `aws finspace-data`: JSON responses on stdout, AWS errors on stderr.
//!
//! One file per step, as ripgrep's `flags/` does it: `args` the flags, `open` the config they make
//! and the opening, `local` the commands on an open ledger, `remote` the same against a running
//! host, `serve` the host, `health` asking a host whether it is ready, `copy` a ledger into another database, `proof` checking proofs offline, `output` what is printed and the exit code. This file only dispatches.

mod args;
mod copy;
mod health;
mod local;
mod open;
mod output;
mod proof;
mod remote;
mod serve;
mod settings;

use std::process::ExitCode;

use user_ledger::{Error, Failure};

use args::{Cli, Command};
use output::Output;

fn main() -> ExitCode {
    open::give_large_allocations_back();
    let (cli, sources) = match settings::parse() {
        Ok(parsed) => parsed,
        Err(e) => return output::finish(Err(e)),
    };
    // A panic is reported below as an InternalServerException, once, in the CLI's error shape;
    // the default hook would first print it raw (and its exit code, 101, would say nothing).
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| match &cli.command {
        Command::Config { command } => config(&cli, sources, command.as_deref()),
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut settings::command(), "user-ledger", &mut std::io::stdout());
            Ok(Output::Printed)
        }
        Command::Man => {
            let page = clap_mangen::Man::new(settings::command());
            page.render(&mut std::io::stdout()).map_err(|e| {
                Error::failed_by(Failure::Io, format!("cannot print the manual page: {e}"), e)
            })?;
            Ok(Output::Printed)
        }
        _ => run(cli),
    })
    .unwrap_or_else(|payload| {
        let message = user_ledger::panic_message(payload.as_ref());
        Err(Error::failed(Failure::Panicked, format_args!("the CLI panicked: {message}")))
    });
    output::finish(outcome)
}

/// `config`: the settings in force; with `for_command`, that command's too, as it would run now
/// (the same command line with `config --for X` replaced by `X`).
fn config(cli: &Cli, sources: settings::Sources, for_command: Option<&str>) -> user_ledger::Result<Output> {
    let sources = match for_command {
        None => sources,
        Some(name) => {
            let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
            let at = argv.iter().position(|a| a == "config").unwrap_or(argv.len());
            argv.truncate(at);
            argv.extend(std::env::args_os().skip(at + 1).filter(|a| a != "--for" && a != name));
            argv.push(name.into());
            settings::parse_from(argv)?.1
        }
    };
    Ok(Output::Json(settings::effective(cli.config.as_deref(), &sources)))
}

/// Runs the command: against a host with `--endpoint-url`, else on the database `--db` names.
fn run(cli: Cli) -> user_ledger::Result<Output> {
    if let Command::Copy(args) = &cli.command {
        return copy::copy(&cli, args);
    }
    if let Command::VerifyProof { key, handovers, checkpoint, proof, old_checkpoint } = &cli.command {
        let files = proof::Files {
            handovers: handovers.as_deref(),
            checkpoint,
            proof: proof.as_deref(),
            old_checkpoint: old_checkpoint.as_deref(),
        };
        return proof::verify(key, files);
    }
    if let Command::Healthcheck { url } = &cli.command {
        return health::check(url);
    }
    if let Command::NewRootKey { out } = &cli.command {
        let key = user_ledger::RootKey::generate()?;
        key.write_new(out)?;
        return Ok(Output::Json(serde_json::json!({ "file": out, "rootKeyId": key.id() })));
    }
    if let Some(endpoint) = &cli.endpoint_url {
        return remote::run(endpoint, &cli);
    }
    let config = open::config(&cli)?;
    let credentials_file = open::credentials_beside(&cli);
    let caller = args::caller(cli.caller);
    match cli.command {
        Command::AcceptLog => open::accept_log(config),
        Command::Migrate { check } => open::migrate(config, check),
        Command::Serve(args) => serve::serve(config, args, credentials_file),
        command => local::run(&open::open_ledger(config)?, &caller, command),
    }
}
