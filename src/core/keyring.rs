//! The keyring family: which data key is current and which are retired, as the log records it;
//! what rotating, retiring and re-wrapping decide, and how their events fold. The keys' material
//! never reaches the core: only their ids, and the ids of the root keys that wrap them.

use crate::core::apply::contradiction;
use crate::core::event::Event;
use crate::core::{State, ViewChange, Views};
use crate::error::{Error, Result};

/// The number of base32 digits that name a data key at the end of an access key id.
const ID_DIGITS: usize = 3;
/// The character before those digits. Random ids are base32 (`A`–`Z`, `2`–`7`), so an id made
/// before data keys had ids never holds it, and stands for data key 0.
const MARK: char = '9';
const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The most data keys a ledger can have: what the digits of an access key id can name.
pub const MAX_DATA_KEYS: u32 = 1 << (5 * ID_DIGITS as u32);

/// The suffix that names data key `key_id` in an access key id (see [`data_key_of`]).
pub fn id_suffix(key_id: u32) -> String {
    let digit = |i: usize| BASE32.get(((key_id >> (5 * i)) & 31) as usize).map_or('A', |&c| char::from(c));
    std::iter::once(MARK).chain((0..ID_DIGITS).rev().map(digit)).collect()
}

/// The data key an access key id was derived from: the one its suffix names, or 0 for an id
/// without one.
pub fn data_key_of(access_key_id: &str) -> u32 {
    let Some(at) = access_key_id.len().checked_sub(ID_DIGITS + 1) else { return 0 };
    let Some(suffix) = access_key_id.get(at..).filter(|s| s.starts_with(MARK)) else { return 0 };
    suffix.bytes().skip(1).fold(0, |id, b| {
        let digit = BASE32.iter().position(|&c| c == b).unwrap_or(0) as u32;
        (id << 5) | digit
    })
}

/// Refuses an issue of credentials derived from data key `key_id` once it is retired: a host
/// that has not yet seen the retirement issues again under the current key.
pub(super) fn check_issuable(state: &(impl State + ?Sized), access_key_id: &str) -> Result<()> {
    let key_id = data_key_of(access_key_id);
    if state.data_key_retired(key_id)? {
        return Err(retired(key_id));
    }
    Ok(())
}

/// What issuing under a retired data key answers.
fn retired(key_id: u32) -> Error {
    Error::Conflict {
        message: format!("Data key {key_id} is retired"),
        reason: Some("DATA_KEY_RETIRED".into()),
    }
}

/// Make data key `key_id`, already in the keyring, current; ids only grow.
pub(super) fn rotate(state: &(impl State + ?Sized), key_id: u32, root_key_id: &str) -> Result<Vec<Event>> {
    let current = state.current_data_key()?;
    if key_id <= current || key_id >= MAX_DATA_KEYS {
        return Err(Error::Conflict {
            message: format!("Data key {key_id} cannot follow data key {current}"),
            reason: None,
        });
    }
    Ok(vec![Event::DataKeyRotated { key_id, root_key_id: root_key_id.to_owned() }])
}

/// Retire data key `key_id`: one older than the current key; retiring it again changes nothing.
pub(super) fn retire(state: &(impl State + ?Sized), key_id: u32) -> Result<Vec<Event>> {
    let current = state.current_data_key()?;
    if key_id >= current {
        let why = if key_id == current { "is current: rotate first" } else { "is not in use" };
        return Err(Error::Conflict { message: format!("Data key {key_id} {why}"), reason: None });
    }
    if state.data_key_retired(key_id)? {
        return Ok(vec![]);
    }
    Ok(vec![Event::DataKeyRetired { key_id }])
}

/// Folds a keyring event; `None` for an event of another family.
pub(super) fn apply(views: &mut impl Views, event: &Event) -> Option<Result<()>> {
    Some(match event {
        Event::DataKeyRotated { key_id, .. } => match views.current_data_key() {
            Ok(current) if *key_id > current => {
                views.change(ViewChange::CurrentDataKey(*key_id));
                Ok(())
            }
            Ok(_) => Err(contradiction(event, format_args!("data key {key_id}"), true)),
            Err(e) => Err(e),
        },
        Event::DataKeyRetired { key_id } => {
            match (views.current_data_key(), views.data_key_retired(*key_id)) {
                (Ok(current), Ok(false)) if *key_id < current => {
                    views.change(ViewChange::RetiredDataKey(*key_id));
                    Ok(())
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
                _ => Err(contradiction(event, format_args!("data key {key_id}"), false)),
            }
        }
        Event::RootKeyChanged { .. } | Event::CheckpointKeyRotated { .. } | Event::EpochStarted { .. } => {
            Ok(())
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_data_key_and_an_old_id_names_key_0() {
        for key_id in [0, 1, 31, 32, 1000, MAX_DATA_KEYS - 1] {
            let id = format!("ULAKABCDEFGHIJKL{}", id_suffix(key_id));
            assert_eq!(id.len(), 20);
            assert_eq!(data_key_of(&id), key_id, "{id}");
        }
        assert_eq!(data_key_of("ULAKABCDEFGHIJKLMNOP"), 0, "a random base32 id");
        assert_eq!(data_key_of("9"), 0);
        assert_eq!(data_key_of(""), 0);
    }
}
