//! The settings a ledger keeps in its backend's meta: the page secret, the region and account,
//! the environment id; and whether the views can be trusted on open.

use std::path::Path;

use crate::backend::{Backend, Tip};
use crate::core::codec;
use crate::core::domain::Identity;
use crate::error::{Error, Failure, Result};

const PAGE_SECRET: &str = "page_secret";
const IDENTITY: &str = "identity";
const ENVIRONMENT: &str = "environment_id";
/// The meta name saying the ledger keeps its Merkle tree with every commit: set when it is made,
/// or when a ledger written before the tree existed got it. From then on a missing node is
/// damage for verify to report, never something to build again silently.
const MERKLE_TREE: &str = "merkle_tree";
/// The meta name of a shared ledger's root credentials.
pub const ROOT_CREDENTIALS: &str = "root_credentials";

/// The settings a copy carries: what the ledger needs to go on as the same ledger (pages,
/// access keys' secrets and sealed passwords derive from the page secret).
pub const CARRIED: [&str; 4] = [PAGE_SECRET, IDENTITY, ENVIRONMENT, ROOT_CREDENTIALS];

/// The secret that keys pagination tokens and derives access keys' secrets: made once, kept.
pub fn page_secret(backend: &dyn Backend) -> Result<[u8; 32]> {
    if let Some(bytes) = backend.meta(PAGE_SECRET)? {
        return codec::decode("meta page_secret", &bytes);
    }
    if backend.last_seq()? > 0 {
        return Err(Error::corrupt("corrupt meta: page_secret is missing"));
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)
        .map_err(|e| Error::failed(Failure::Io, format_args!("no randomness for the page secret: {e}")))?;
    // Two hosts opening a new ledger at once: the first secret stored is everyone's.
    let stored = backend.insert_meta(PAGE_SECRET, &codec::encode(&secret))?;
    codec::decode("meta page_secret", &stored)
}

/// The region and account: `region` and `account` (or the defaults) for a new database; an
/// existing one keeps its own and refuses others.
pub fn identity(
    backend: &dyn Backend,
    shown: &Path,
    region: Option<&str>,
    account: Option<&str>,
) -> Result<Identity> {
    let bytes = match backend.meta(IDENTITY)? {
        Some(bytes) => bytes,
        None => {
            let default = Identity::default();
            let identity = Identity {
                region: region.map_or(default.region, str::to_owned),
                account: account.map_or(default.account, str::to_owned),
            };
            backend.insert_meta(IDENTITY, &codec::encode(&identity))?
        }
    };
    let identity: Identity = codec::decode("meta identity", &bytes)?;
    for (what, stored, given) in
        [("region", &identity.region, region), ("account", &identity.account, account)]
    {
        if let Some(given) = given.filter(|g| g != stored) {
            return Err(Error::internal(format_args!(
                "database at {} was created for {what} {stored}; it cannot be reopened for {what} {given}",
                shown.display()
            )));
        }
    }
    Ok(identity)
}

/// The FinSpace environment id this database answers GetProgrammaticAccessCredentials for:
/// `given` (or a new ULID) when first asked, and the same ever after; another `given` later is
/// an error.
pub fn environment_id(backend: &dyn Backend, shown: &Path, given: Option<&str>) -> Result<String> {
    let bytes = match backend.meta(ENVIRONMENT)? {
        Some(bytes) => bytes,
        None => {
            let id = given.map_or_else(|| ulid::Ulid::generate().to_string(), str::to_owned);
            backend.insert_meta(ENVIRONMENT, &codec::encode(&id))?
        }
    };
    let stored: String = codec::decode("meta environment_id", &bytes)?;
    match given {
        Some(given) if given != stored => Err(Error::internal(format_args!(
            "database at {} has environment id {stored}; it cannot be reopened as environment {given}",
            shown.display()
        ))),
        _ => Ok(stored),
    }
}

/// Whether the ledger is marked as keeping its Merkle tree (see [`MERKLE_TREE`]).
pub fn keeps_tree(backend: &dyn Backend) -> Result<bool> {
    Ok(backend.meta(MERKLE_TREE)?.is_some())
}

/// Marks the ledger as keeping its Merkle tree, once it holds the whole of it.
pub fn mark_tree_kept(backend: &dyn Backend) -> Result<()> {
    backend.insert_meta(MERKLE_TREE, b"1").map(drop)
}

/// Why the views cannot be trusted, comparing the tip with the log's last entry: `None` if
/// they can.
pub fn staleness(backend: &dyn Backend, tip: &Tip) -> Result<Option<String>> {
    let last = backend.last_seq()?;
    let (head, views) = (tip.head.seq, tip.views_seq);
    Ok(if last != head {
        Some(format!("the log ends at seq {last} but the tip's head is at seq {head}"))
    } else if views != head {
        let how = if views < head { "lag" } else { "lead" };
        Some(format!("the views {how} the log: folded up to seq {views}, the log ends at seq {last}"))
    } else {
        None
    })
}
