//! The settings a ledger keeps in its backend's meta: the page secret, the region and account,
//! the environment id; and whether the views can be trusted on open.

use std::collections::BTreeMap;
use std::path::Path;

use crate::backend::{Backend, Tip};
use crate::core::codec;
use crate::core::domain::Identity;
use crate::credentials::keyring::{Keyring, RootKey};
use crate::error::{Error, Failure, Result};

const PAGE_SECRET: &str = "page_secret";
const IDENTITY: &str = "identity";
const ENVIRONMENT: &str = "environment_id";
/// The meta name saying the ledger keeps its Merkle tree with every commit: set when it is made,
/// or when a ledger written before the tree existed got it. From then on a missing node is
/// damage for verify to report, never something to build again silently.
const MERKLE_TREE: &str = "merkle_tree";
/// The meta name of a shared ledger's root credentials as older versions kept them: in the clear.
pub const ROOT_CREDENTIALS: &str = "root_credentials";
/// The meta name of a shared ledger's root credentials, sealed under its data key.
pub const SEALED_ROOT_CREDENTIALS: &str = "root_credentials_sealed";

/// The meta name of the keyring: the data keys, wrapped under the root key.
pub const KEYRING: &str = "keyring";

/// The meta name of the ledger's epoch: 0 until `new-epoch`; each starts a new origin.
pub const EPOCH: &str = "epoch";

/// The ledger's epoch (0 if it never began a new one).
pub fn epoch(backend: &dyn Backend) -> Result<u32> {
    backend.meta(EPOCH)?.map_or(Ok(0), |bytes| codec::decode("meta epoch", &bytes))
}

/// The meta name of the verifier key that signs checkpoints, once the checkpoint key was rotated.
pub const CHECKPOINT_KEY: &str = "checkpoint_key";
/// The meta name of the handover checkpoints, in order: each signed by the key before and the
/// key after a rotation.
pub const CHECKPOINT_HANDOVERS: &str = "checkpoint_handovers";

/// The settings a copy carries that say which ledger it is: a destination holding others holds
/// another ledger. (Pages, access keys' secrets and sealed passwords derive from its data keys,
/// or its older clear secret.)
pub const IDENTIFYING: [&str; 5] =
    [PAGE_SECRET, IDENTITY, ENVIRONMENT, ROOT_CREDENTIALS, SEALED_ROOT_CREDENTIALS];

/// The settings a copy carries that change over a ledger's life (keys rotated, re-wrapped): a
/// destination's older ones are replaced.
pub const EVOLVING: [&str; 4] = [KEYRING, CHECKPOINT_KEY, CHECKPOINT_HANDOVERS, EPOCH];

/// Every setting a copy carries.
pub fn carried() -> impl Iterator<Item = &'static str> {
    IDENTIFYING.into_iter().chain(EVOLVING)
}

/// Sets `name` to `value`, whatever it held (a compare-and-set, tried again if another writer
/// changed it in between).
pub fn put_meta(backend: &dyn Backend, name: &str, value: &[u8]) -> Result<()> {
    for _ in 0..8 {
        let stored = backend.insert_meta(name, value)?;
        if stored == value || backend.swap_meta(name, &stored, value)? {
            return Ok(());
        }
    }
    Err(Error::failed(
        Failure::Conflict,
        format_args!("meta {name} changed under each of 8 attempts to set it"),
    ))
}

/// The keyring the database holds, if it holds one.
pub fn keyring(backend: &dyn Backend) -> Result<Option<Keyring>> {
    backend.meta(KEYRING)?.map(|bytes| codec::decode("meta keyring", &bytes)).transpose()
}

/// Data keys' material, by id.
pub type DataKeyBytes = BTreeMap<u32, [u8; 32]>;

/// The data keys everything the ledger derives comes from (pagination tokens' MACs, access
/// keys' secrets, the seal of passwords, the checkpoint key), by id: the keyring's, opened with
/// `root`; or, for a ledger given no root key that has no keyring, its clear secret as key 0,
/// with a warning that says so. Given `root`, a new ledger gets a keyring, and an older ledger's
/// clear secret becomes data key 0 and its clear copy is removed.
pub fn data_keys(
    backend: &dyn Backend,
    root: Option<&RootKey>,
    now_ms: i64,
    migrate: bool,
    shown: &Path,
) -> Result<(DataKeyBytes, Option<String>)> {
    let refuse = |change: &str| Err(crate::error::needs_migration(shown.display(), change));
    if let Some(ring) = keyring(backend)? {
        let root = root.ok_or_else(|| {
            Error::failed(
                Failure::Config,
                format_args!(
                    "this ledger's data keys are wrapped under root key {}: give it (--root-key-file, \
                     USER_LEDGER_ROOT_KEY_FILE or USER_LEDGER_ROOT_KEY; Config::root_key)",
                    ring.root_key_id
                ),
            )
        })?;
        let keys = ring.open_all(root)?;
        // An older ledger wrapped by another opener: its clear copy goes now too (once the
        // database can be written).
        if backend.meta(PAGE_SECRET)?.is_some() {
            if !migrate {
                return refuse("remove the clear copy of a secret the keyring wraps already");
            }
            match backend.remove_meta(PAGE_SECRET) {
                Err(e) if e.failure() != Some(Failure::ReadOnly) => return Err(e),
                _ => {}
            }
        }
        return Ok((keys, None));
    }
    let clear = backend
        .meta(PAGE_SECRET)?
        .map(|bytes| codec::decode::<[u8; 32]>("meta page_secret", &bytes))
        .transpose()?;
    let secret = match clear {
        Some(secret) => secret,
        None if backend.last_seq()? > 0 => {
            return Err(Error::corrupt("corrupt meta: page_secret is missing"))
        }
        None => {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| {
                Error::failed_by(Failure::Io, format!("no randomness for a data key: {e}"), e)
            })?;
            secret
        }
    };
    let Some(root) = root else {
        let warning = "this ledger's secret, from which every access key's secret and the checkpoint key \
                       derive, is stored in the clear inside the database: whoever reads the storage or a \
                       backup can act as any user. Make a root key (`user-ledger new-root-key --out PATH`) \
                       and give it (--root-key-file PATH) to wrap the secret; then rotate keys \
                       (`rotate-keys`, `retire-key --key-id 0`) to end the value of old copies";
        if clear.is_some() {
            return Ok((BTreeMap::from([(0, secret)]), Some(warning.to_owned())));
        }
        // Several hosts share it, and its backups: a new one never keeps a secret in the clear.
        if backend.shared().is_some() {
            return Err(Error::failed(
                Failure::Config,
                "a new ledger on PostgreSQL needs a root key, which wraps its data keys: give \
                 --root-key-file PATH (USER_LEDGER_ROOT_KEY_FILE), USER_LEDGER_ROOT_KEY, or \
                 Config::root_key; `user-ledger new-root-key --out PATH` makes one",
            ));
        }
        // Two hosts opening a new ledger at once: the first secret stored is everyone's.
        let stored = backend.insert_meta(PAGE_SECRET, &codec::encode(&secret))?;
        let secret = codec::decode("meta page_secret", &stored)?;
        return Ok((BTreeMap::from([(0, secret)]), Some(warning.to_owned())));
    };
    if clear.is_some() && !migrate {
        return refuse("wrap the ledger's clear secret under the root key given");
    }
    let ring = Keyring::new(root, &secret, now_ms)?;
    // The first keyring stored is everyone's; then no clear copy is left.
    let stored = match backend.insert_meta(KEYRING, &codec::encode(&ring)) {
        // A read-only database cannot be upgraded now: it goes on with its clear secret.
        Err(e) if clear.is_some() && e.failure() == Some(Failure::ReadOnly) => {
            let warning = format!("this ledger's secret stays in the clear until it is opened writable: {e}");
            return Ok((BTreeMap::from([(0, secret)]), Some(warning)));
        }
        stored => stored?,
    };
    let keys = codec::decode::<Keyring>("meta keyring", &stored)?.open_all(root)?;
    if clear.is_some() {
        backend.remove_meta(PAGE_SECRET)?;
    }
    Ok((keys, None))
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

/// The meta name of the lowest level of the Merkle tree's nodes the ledger stores (one byte);
/// absent from a ledger that kept its tree before there was a floor, which stores every level.
const MERKLE_FLOOR: &str = "merkle_floor";

/// The lowest level of the Merkle tree's nodes the ledger stores: its setting; 0 for a ledger
/// that kept its tree before there was one; [`crate::core::merkle::FLOOR`] for one whose tree
/// is still to be built.
pub fn tree_floor(backend: &dyn Backend) -> Result<u8> {
    match backend.meta(MERKLE_FLOOR)? {
        Some(value) => match value.as_slice() {
            [floor] if *floor < 64 => Ok(*floor),
            _ => Err(Error::corrupt(format_args!("corrupt setting {MERKLE_FLOOR}: {value:?}"))),
        },
        None if keeps_tree(backend)? => Ok(0),
        None => Ok(crate::core::merkle::FLOOR),
    }
}

/// Settles the floor of a tree about to be built (see [`tree_floor`]): the one stored first.
pub fn settle_tree_floor(backend: &dyn Backend) -> Result<u8> {
    let floor = tree_floor(backend)?;
    match backend.insert_meta(MERKLE_FLOOR, &[floor])?.as_slice() {
        [floor] => Ok(*floor),
        other => Err(Error::corrupt(format_args!("corrupt setting {MERKLE_FLOOR}: {other:?}"))),
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
