//! `copy`: a ledger into another database, from a directory, a PostgreSQL URL or a running host,
//! with progress on a terminal.

use std::io::IsTerminal;
use std::time::Instant;

use user_ledger::server::client::Client;
use user_ledger::server::{RemoteSource, ROOT_CREDENTIALS_FILE};
use user_ledger::{copy_ledger, CopyOptions, CopyProgress, OpenMode};

use crate::args::{time_ms, Cli, CopyArgs};
use crate::output::Output;
use crate::{open, remote};

/// Runs `copy` as `args` say, the global flags configuring both ends.
pub(crate) fn copy(cli: &Cli, args: &CopyArgs) -> user_ledger::Result<Output> {
    let mut options = CopyOptions::new();
    options.to_seq = args.to_seq;
    options.before_ms = args.before.as_deref().map(|t| time_ms("before", t)).transpose()?;
    // The copy's root key: the one given, or the one beside it; else (new) the source's.
    let mut to = open::config_for(cli, &args.to)?;
    to.mode = OpenMode::Create;
    let mut shown = Progress::new();
    let progress = &mut |p: CopyProgress| shown.show(p);
    let copied = match (&args.from, &args.from_endpoint) {
        (Some(from), _) => {
            let config = open::config_for(cli, from)?;
            let source = open::open_ledger(config)?;
            let copied = source.copy_to(to, options, progress)?;
            carry_root_credentials(from, &args.to)?;
            copied
        }
        (None, Some(endpoint)) => {
            let client = Client::new(
                endpoint,
                remote::credentials(cli)?,
                &remote::region(cli),
                cli.ca_bundle.as_deref(),
            )?;
            copy_ledger(&RemoteSource::new(client, endpoint), to, options, progress)?
        }
        (None, None) => unreachable!("clap requires --from or --from-endpoint"),
    };
    shown.done();
    Ok(Output::Json(serde_json::to_value(&copied).map_err(user_ledger::Error::internal)?))
}

/// The root credentials `serve` made beside a sled database, carried to a sled copy that has
/// none, readable by its owner only, so that a host serving the copy takes the same keys.
fn carry_root_credentials(from: &std::path::Path, to: &std::path::Path) -> user_ledger::Result<()> {
    let (file, copy) = (from.join(ROOT_CREDENTIALS_FILE), to.join(ROOT_CREDENTIALS_FILE));
    if !file.is_file() || !to.is_dir() || copy.exists() {
        return Ok(());
    }
    let bytes = std::fs::read(&file)?;
    let mut out = std::fs::OpenOptions::new();
    std::os::unix::fs::OpenOptionsExt::mode(out.write(true).create_new(true), 0o600);
    std::io::Write::write_all(&mut out.open(&copy)?, &bytes)?;
    Ok(())
}

/// Progress on stderr, when it is a terminal: entries copied, the rate, what remains.
struct Progress {
    started: Instant,
    terminal: bool,
    shown: bool,
}

impl Progress {
    fn new() -> Self {
        Progress { started: Instant::now(), terminal: std::io::stderr().is_terminal(), shown: false }
    }

    fn show(&mut self, p: CopyProgress) {
        if !self.terminal {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = p.copied as f64 / secs;
        let left = p.until.saturating_sub(p.seq);
        eprint!(
            "\rcopied {} events, at seq {} of {}, {rate:.0} events/s, {left} to go   ",
            p.copied, p.seq, p.until
        );
        self.shown = true;
    }

    fn done(&self) {
        if self.shown {
            eprintln!();
        }
    }
}
