//! What a command prints, on stdout or stderr, and the exit code that goes with it.

use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

use user_ledger::wire;

/// What a command prints on success.
pub(crate) enum Output {
    /// One JSON document, pretty.
    Json(Value),
    /// JSON lines (a history).
    Lines(Vec<Value>),
    /// Already printed as it was produced (the log, streamed).
    Printed,
    /// A verification that found a problem: printed like Json, exit 3.
    Failed(Value),
    /// An error a host answered: printed on stderr, exit 1.
    Refused(Value),
}

pub(crate) fn json(response: user_ledger::Result<impl Serialize>) -> user_ledger::Result<Output> {
    response.map(|r| Output::Json(wire::to_json(&r)))
}

/// Prints `outcome` and says how the process exits: 0, 1 for an error, 3 for a failed verify.
pub(crate) fn finish(outcome: user_ledger::Result<Output>) -> ExitCode {
    match outcome {
        Ok(Output::Json(json)) => {
            println!("{json:#}");
            ExitCode::SUCCESS
        }
        Ok(Output::Lines(lines)) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Ok(Output::Printed) => ExitCode::SUCCESS,
        Ok(Output::Failed(json)) => {
            println!("{json:#}");
            ExitCode::from(3)
        }
        Ok(Output::Refused(json)) => {
            eprintln!("{json:#}");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("{:#}", wire::error_body(&error));
            ExitCode::FAILURE
        }
    }
}
