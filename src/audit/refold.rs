//! The fold of a whole log in bounded memory, for full verify and rebuild.
//!
//! The in-memory fold ([`crate::views::MemViews`]) holds every user at once. This one never
//! holds more than the budget of [`crate::Config::fold_memory`] (plus one subject's records):
//!
//! 1. **Scan**: walk the log checking the chain (the same [`audit::walk`]), and sort every sound
//!    entry by (fold key, seq) through a [`Sorter`], which spills sorted runs to temporary files.
//!    The fold key is the event's subject, or for access keys, principals' keys and temporary
//!    credentials the key id: what [`core::apply`] reads and writes for the event.
//! 2. **Fold per subject**: read the runs merged, so each subject's events come together in log
//!    order, and fold them with the decider's own `apply` into views holding that subject only.
//!    Its rows go to a second sorter, keyed by (view, key). What `apply` asks of others is
//!    answered optimistically and written down to be checked in step 3: an email claimed on
//!    creation, a user named by an access key, credentials or a membership. The two counters are
//!    summed as deltas.
//! 3. **Cross-subject checks**: claims sorted by email (the first claim of each is the email
//!    index row; a later one is a contradiction at its seq), needs sorted by user and merged with
//!    when each user was created.
//! 4. The rows come out merged in (view, key) order: compared with the stored views by verify,
//!    written by rebuild.
//!
//! A contradiction anywhere is reported at the smallest seq found, which is where the in-memory
//! fold stops: before it, every subject's state is the same in both folds.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::iter::Peekable;

use crate::audit::spill::{Merge, Sorter};
use crate::audit::{self, Chain, Digest, Fault, Problem, Report};
use crate::core::codec;
use crate::core::domain::{
    email_key, AccessKey, KxUser, PermissionGroup, PrincipalKey, TemporaryCredential, User, UserId,
};
use crate::core::event::{Event, Sealed, Subject};
use crate::core::merkle::Frontier;
use crate::core::{self, State, ViewChange, Views};
use crate::error::Result;
use crate::views::{self, subject_prefix, MemViews, ViewTree};

/// The default of [`crate::Config::fold_memory`]: 16 MiB (more measured no faster at 1M events).
pub const DEFAULT_FOLD_MEMORY: usize = 16 << 20;

/// What a subject's counters start from, so the fold of one subject sees only its own deltas.
const COUNTER_BASE: u64 = 1 << 40;

/// A log folded in bounded memory: the report of the walk, and the folded rows.
#[derive(Debug)]
pub struct Refolded {
    /// What the walk and the fold found.
    pub report: Report,
    rows: Peekable<Merge>,
}

impl Refolded {
    /// The folded rows of `view`, in key order. Ask for the views in [`ViewTree::ALL`]'s order.
    pub fn rows_of(&mut self, view: ViewTree) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        let tag = view.tag();
        std::iter::from_fn(move || {
            // Skip the rows of views not asked for, then yield this view's.
            loop {
                let first = match self.rows.peek()? {
                    Ok((key, _)) => key.first().copied(),
                    Err(_) => None,
                };
                match first {
                    Some(t) if t < tag => {
                        self.rows.next();
                    }
                    Some(t) if t > tag => return None,
                    _ => break,
                }
            }
            Some(self.rows.next()?.map(|(mut key, value)| {
                key.remove(0);
                (key, value)
            }))
        })
    }
}

/// Folds the log in `entries` within about `budget` bytes of memory, checking its chain and
/// `digest` (if given) as [`audit::verify_entries`] does, with the same report. `progress`
/// hears the seq the walk reached, then (starting again from 0) how many events were folded,
/// every [`audit::PROGRESS_EVERY`] and at the end of each. The Merkle tree's rows are its
/// nodes of level `floor` and up, as the ledger stores them.
pub fn refold(
    entries: impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
    digest: Option<Digest>,
    budget: usize,
    floor: u8,
    progress: &mut dyn FnMut(u64),
) -> Result<Refolded> {
    let mut events = Sorter::new(budget / 2);
    let mut out = Outputs::new(budget / 2);
    // The Merkle tree folds in log order, from its frontier alone.
    let mut tree = Frontier::empty(floor);
    let mut report = audit::walk(entries, Chain::default(), digest, progress, &mut |sealed, bytes| {
        let key = at_seq(fold_key(&sealed.envelope.event), sealed.envelope.seq);
        events.push(&key, bytes)?;
        for (node, hash) in tree.append(bytes) {
            out.rows.push(&row_key(ViewTree::Merkle, &node.key()), &hash)?;
        }
        Ok(None)
    })?;
    fold_subjects(events.finish()?, &mut out, progress)?;
    for ((view, key), value) in out.counter_rows() {
        out.rows.push(&row_key(view, &key), &value)?;
    }
    let Outputs { mut rows, claims, needs, facts, mut first, .. } = out;
    check_claims(claims.finish()?, &mut rows, &mut first)?;
    check_needs(needs.finish()?, facts.finish()?, &mut first)?;
    if let Some(c) = first.filter(|c| report.problem.as_ref().is_none_or(|p| c.seq <= p.seq)) {
        report = Report {
            events: c.seq,
            head: Digest { seq: c.seq, hash: c.hash },
            time_ms: c.time_ms,
            problem: Some(Problem { seq: c.seq, fault: Fault::Contradiction(c.message) }),
        };
    }
    Ok(Refolded { report, rows: rows.finish()?.peekable() })
}

/// The key an event is folded under: the state `apply` keeps for it.
fn fold_key(event: &Event) -> Vec<u8> {
    match event {
        Event::AccessKeyCreated { access_key_id, .. }
        | Event::AccessKeyDeleted { access_key_id, .. }
        | Event::PrincipalKeyCreated { access_key_id, .. }
        | Event::PrincipalKeyDeleted { access_key_id, .. }
        | Event::CredentialsIssued { access_key_id, .. }
        | Event::CredentialsRevoked { access_key_id, .. } => {
            [b"a\0", access_key_id.as_bytes(), b"\0"].concat()
        }
        event => subject_prefix(event.subject()),
    }
}

/// A sort key: `prefix`, then `seq` (8 bytes, big-endian), which the readers split off again.
fn at_seq(mut prefix: Vec<u8>, seq: u64) -> Vec<u8> {
    prefix.extend_from_slice(&codec::seq_key(seq));
    prefix
}

/// The rows sorter's key of `view`'s row `key`: the view's tag first, so views come in order.
fn row_key(view: ViewTree, key: &[u8]) -> Vec<u8> {
    [&[view.tag()], key].concat()
}

/// A key that sorts by `text` exactly, whatever bytes it holds: its length, then its bytes.
fn sized(text: &str) -> Vec<u8> {
    [&(text.len() as u32).to_be_bytes()[..], text.as_bytes()].concat()
}

/// The first contradiction found, and what the report says of its entry.
#[derive(Debug)]
struct Contradiction {
    seq: u64,
    message: String,
    hash: [u8; 32],
    time_ms: i64,
}

fn keep_first(first: &mut Option<Contradiction>, found: Contradiction) {
    if first.as_ref().is_none_or(|c| found.seq < c.seq) {
        *first = Some(found);
    }
}

/// What the per-subject folds produce.
#[derive(Debug)]
struct Outputs {
    /// (view tag ‖ key) → value.
    rows: Sorter,
    /// (sized email key ‖ seq) → (user id, stored address, hash, time, released): a Created
    /// event claims the address, its user's erasure releases it.
    claims: Sorter,
    /// (sized user id ‖ seq) → the entry naming the user.
    needs: Sorter,
    /// sized user id → the seq of each Created event of the user.
    facts: Sorter,
    any_user: bool,
    enabled: i64,
    kx_counts: BTreeMap<String, i64>,
    first: Option<Contradiction>,
}

impl Outputs {
    fn new(budget: usize) -> Self {
        Outputs {
            rows: Sorter::new(budget / 2),
            claims: Sorter::new(budget / 6),
            needs: Sorter::new(budget / 6),
            facts: Sorter::new(budget / 6),
            any_user: false,
            enabled: 0,
            kx_counts: BTreeMap::new(),
            first: None,
        }
    }

    fn counter_rows(&self) -> Vec<views::Row> {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let enabled = self.any_user.then(|| ViewChange::EnabledUsers(count(self.enabled)));
        let kx = self.kx_counts.iter().map(|(env, n)| ViewChange::KxUsersIn(env.clone(), count(*n)));
        let rows = enabled.into_iter().chain(kx).flat_map(|change| views::rows(&change));
        rows.map(|(at, value)| (at, value.unwrap_or_default())).collect()
    }
}

/// Folds each subject's events (they come grouped, in log order) and writes what it yields.
fn fold_subjects(events: Merge, out: &mut Outputs, progress: &mut dyn FnMut(u64)) -> Result<()> {
    let (mut subject, mut folded): (Option<SubjectFold>, u64) = (None, 0);
    for record in events {
        folded += 1;
        if folded % audit::PROGRESS_EVERY == 0 {
            progress(folded);
        }
        let (key, bytes) = record?;
        let (prefix, seq) = key.split_at(key.len().saturating_sub(8));
        let seq = codec::seq_of(seq).unwrap_or(0);
        if subject.as_ref().is_none_or(|s| s.prefix != prefix) {
            if let Some(done) = subject.take() {
                done.finish(out)?;
            }
            subject = Some(SubjectFold::new(prefix.to_vec()));
        }
        if let Some(s) = subject.as_mut() {
            s.fold(seq, &bytes, out)?;
        }
    }
    progress(folded);
    match subject {
        Some(done) => done.finish(out),
        None => Ok(()),
    }
}

/// The first claim of an email is its index row, until its owner's erasure releases it; a claim
/// while it is held contradicts it.
fn check_claims(claims: Merge, rows: &mut Sorter, first: &mut Option<Contradiction>) -> Result<()> {
    // The email whose claims are being read, and who holds it now: (user id, stored address).
    let mut email: Option<Vec<u8>> = None;
    let mut owner: Option<(UserId, String)> = None;
    let index = |owner: Option<(UserId, String)>, rows: &mut Sorter| -> Result<()> {
        let Some((user_id, address)) = owner else { return Ok(()) };
        for ((view, key), value) in views::rows(&ViewChange::PutEmail(email_key(&address), user_id)) {
            rows.push(&row_key(view, &key), &value.unwrap_or_default())?;
        }
        Ok(())
    };
    for record in claims {
        let (key, value) = record?;
        let (claimed, seq) = key.split_at(key.len().saturating_sub(8));
        let (user_id, address, hash, time_ms, released): (UserId, String, [u8; 32], i64, bool) =
            codec::decode("a claim", &value)?;
        if email.as_deref() != Some(claimed) {
            index(owner.take(), rows)?;
            email = Some(claimed.to_vec());
        }
        match &owner {
            _ if released => {
                if owner.as_ref().is_some_and(|(held_by, _)| *held_by == user_id) {
                    owner = None;
                }
            }
            Some((held_by, _)) => {
                let seq = codec::seq_of(seq).unwrap_or(0);
                let message = core::email_taken(&user_id, held_by).to_string();
                keep_first(first, Contradiction { seq, message, hash, time_ms });
            }
            None => owner = Some((user_id, address)),
        }
    }
    index(owner, rows)
}

/// A user named by another subject's event must have been created before it.
fn check_needs(needs: Merge, facts: Merge, first: &mut Option<Contradiction>) -> Result<()> {
    let mut facts = facts.peekable();
    for record in needs {
        let (key, bytes) = record?;
        let (user, seq) = key.split_at(key.len().saturating_sub(8));
        let seq = codec::seq_of(seq).unwrap_or(0);
        while facts.peek().is_some_and(|f| f.as_ref().is_ok_and(|(u, _)| u.as_slice() < user)) {
            facts.next();
        }
        let created = match facts.peek() {
            Some(Ok((u, created))) if u.as_slice() == user => codec::seq_of(created),
            Some(Err(e)) => return Err(e.clone()),
            _ => None,
        };
        if created.is_none_or(|created| created >= seq) {
            let sealed = codec::unseal(seq, &bytes)?;
            let message = core::no_such_user(&sealed.envelope.event).to_string();
            keep_first(
                first,
                Contradiction { seq, message, hash: sealed.hash, time_ms: sealed.envelope.time_ms },
            );
        }
    }
    Ok(())
}

/// The fold of one subject's events, in views that hold that subject only.
#[derive(Debug)]
struct SubjectFold {
    prefix: Vec<u8>,
    views: MemViews,
    enabled: u64,
    kx_counts: BTreeMap<String, u64>,
    /// Users the event being folded names besides its subject.
    named: RefCell<Vec<UserId>>,
    failed: bool,
}

impl SubjectFold {
    fn new(prefix: Vec<u8>) -> Self {
        SubjectFold {
            prefix,
            views: MemViews::default(),
            enabled: COUNTER_BASE,
            kx_counts: BTreeMap::new(),
            named: RefCell::new(Vec::new()),
            failed: false,
        }
    }

    fn fold(&mut self, seq: u64, bytes: &[u8], out: &mut Outputs) -> Result<()> {
        if self.failed {
            return Ok(());
        }
        let Sealed { envelope, hash, .. } = codec::unseal(seq, bytes)?;
        self.named.borrow_mut().clear();
        // What an erasure releases: the address of the user it erases.
        let erased = match &envelope.event {
            Event::PersonalDataErased { user_id } => self.views.user(user_id)?,
            _ => None,
        };
        if let Err(e) = views::fold(self, &envelope) {
            self.failed = true;
            let found = Contradiction { seq, message: e.to_string(), hash, time_ms: envelope.time_ms };
            keep_first(&mut out.first, found);
            return Ok(());
        }
        for user in self.named.take() {
            out.needs.push(&at_seq(sized(&user), seq), bytes)?;
        }
        if let Event::Created { user_id, user } = &envelope.event {
            // The count of ENABLED users has a row once any user was created, erased or not.
            out.any_user = true;
            out.facts.push(&sized(user_id), &codec::seq_key(seq))?;
            let claim = codec::encode(&(user_id, &user.email_address, hash, envelope.time_ms, false));
            out.claims.push(&at_seq(sized(&email_key(&user.email_address)), seq), &claim)?;
        }
        if let Some(user) = erased {
            let release = codec::encode(&(&user.user_id, &user.email_address, hash, envelope.time_ms, true));
            out.claims.push(&at_seq(sized(&email_key(&user.email_address)), seq), &release)?;
        }
        Ok(())
    }

    fn finish(self, out: &mut Outputs) -> Result<()> {
        if self.failed {
            return Ok(());
        }
        for view in ViewTree::ALL {
            if matches!(view, ViewTree::Emails | ViewTree::Counters) {
                continue;
            }
            for (key, value) in self.views.rows_of(view) {
                out.rows.push(&row_key(view, &key), &value)?;
            }
        }
        // The keyring's counters are its subject's alone: they come out whole.
        for ((view, key), value) in self.views.keyring_rows() {
            out.rows.push(&row_key(view, &key), &value)?;
        }
        out.enabled += self.enabled as i64 - COUNTER_BASE as i64;
        for (env, count) in self.kx_counts {
            *out.kx_counts.entry(env).or_insert(0) += count as i64 - COUNTER_BASE as i64;
        }
        Ok(())
    }
}

impl State for SubjectFold {
    fn user(&self, user_id: &str) -> Result<Option<User>> {
        self.views.user(user_id)
    }

    fn user_exists(&self, user_id: &str) -> Result<bool> {
        let here = self.views.user_exists(user_id)?;
        if here || subject_prefix(Subject::User(user_id)) == self.prefix {
            return Ok(here);
        }
        // Another subject: assume it exists, and check that once every subject is folded.
        self.named.borrow_mut().push(user_id.to_owned());
        Ok(true)
    }

    fn email_owner(&self, _: &str) -> Result<Option<UserId>> {
        // Checked across subjects from the claims.
        Ok(None)
    }

    fn enabled_users(&self) -> Result<u64> {
        Ok(self.enabled)
    }

    fn kx_user(&self, environment_id: &str, user_name: &str) -> Result<Option<KxUser>> {
        self.views.kx_user(environment_id, user_name)
    }

    fn kx_users_in(&self, environment_id: &str) -> Result<u64> {
        Ok(self.kx_counts.get(environment_id).copied().unwrap_or(COUNTER_BASE))
    }

    fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>> {
        self.views.access_key(access_key_id)
    }

    fn permission_group(&self, group: &str) -> Result<Option<PermissionGroup>> {
        self.views.permission_group(group)
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool> {
        self.views.is_member(group, user)
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>> {
        self.views.groups_of(user)
    }

    fn members_of(&self, group: &str) -> Result<Vec<UserId>> {
        self.views.members_of(group)
    }

    fn password_hash(&self, user: &str) -> Result<Option<String>> {
        self.views.password_hash(user)
    }

    fn principal_key(&self, access_key_id: &str) -> Result<Option<PrincipalKey>> {
        self.views.principal_key(access_key_id)
    }

    fn temporary_credential(&self, access_key_id: &str) -> Result<Option<TemporaryCredential>> {
        self.views.temporary_credential(access_key_id)
    }

    fn users_with_principal(&self, principal_arn: &str) -> Result<Vec<User>> {
        self.views.users_with_principal(principal_arn)
    }

    fn current_data_key(&self) -> Result<u32> {
        self.views.current_data_key()
    }

    fn data_key_retired(&self, key_id: u32) -> Result<bool> {
        self.views.data_key_retired(key_id)
    }
}

impl Views for SubjectFold {
    fn change(&mut self, change: ViewChange) {
        match change {
            // Written from the claims, once they are checked across subjects.
            ViewChange::PutEmail(..) => {}
            // Counted across subjects: each subject adds its difference to a base.
            ViewChange::EnabledUsers(count) => self.enabled = count,
            ViewChange::KxUsersIn(env, count) => {
                self.kx_counts.insert(env, count);
            }
            other => self.views.change(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::domain::{Caller, NewGroup, NewUser, UserChanges, UserType};
    use crate::core::event::Envelope;
    use proptest::prelude::*;

    const USERS: [&str; 3] = ["u1", "u2", "u3"];
    const KEYS: [&str; 2] = ["k1", "k2"];
    const GROUPS: [&str; 2] = ["g1", "g2"];
    const NAMES: [&str; 2] = ["n1", "n2"];

    /// Events over a few ids, so that they often contradict each other.
    fn event() -> impl Strategy<Value = Event> {
        let user = || proptest::sample::select(&USERS[..]).prop_map(str::to_owned);
        let key = || proptest::sample::select(&KEYS[..]).prop_map(str::to_owned);
        let group = || proptest::sample::select(&GROUPS[..]).prop_map(str::to_owned);
        let name = || proptest::sample::select(&NAMES[..]).prop_map(str::to_owned);
        prop_oneof![
            4 => (user(), proptest::sample::select(&["a@x.com", "A@x.com", "b@x.com"][..])).prop_map(|(user_id, email)| Event::Created {
                user_id,
                user: NewUser {
                    email_address: email.to_owned(),
                    user_type: UserType::AppUser,
                    first_name: None,
                    last_name: None,
                    api_access: None,
                    api_access_principal_arn: None,
                },
            }),
            1 => user().prop_map(|user_id| Event::Updated { user_id, changes: UserChanges { first_name: Some("F".into()), ..UserChanges::default() } }),
            1 => user().prop_map(|user_id| Event::Enabled { user_id }),
            1 => user().prop_map(|user_id| Event::Disabled { user_id }),
            1 => user().prop_map(|user_id| Event::SignedIn { user_id }),
            1 => user().prop_map(|user_id| Event::PasswordReset { user_id, password_hash: "h".into() }),
            1 => (key(), user()).prop_map(|(access_key_id, user_id)| Event::AccessKeyCreated { access_key_id, user_id }),
            1 => (key(), user()).prop_map(|(access_key_id, user_id)| Event::AccessKeyDeleted { access_key_id, user_id }),
            1 => key().prop_map(|access_key_id| Event::PrincipalKeyCreated { access_key_id, principal_arn: "p".into() }),
            1 => key().prop_map(|access_key_id| Event::PrincipalKeyDeleted { access_key_id, principal_arn: "p".into() }),
            1 => (key(), user()).prop_map(|(access_key_id, user_id)| Event::CredentialsIssued {
                access_key_id,
                user_id,
                principal_arn: "p".into(),
                expires_ms: 9,
            }),
            1 => (key(), user()).prop_map(|(access_key_id, user_id)| Event::CredentialsRevoked { access_key_id, user_id }),
            2 => group().prop_map(|permission_group_id| Event::PermissionGroupCreated {
                permission_group_id,
                group: NewGroup { name: "G".into(), description: None, application_permissions: Vec::new() },
            }),
            1 => (group(), proptest::collection::btree_set(user(), 0..3)).prop_map(|(permission_group_id, members)| {
                Event::PermissionGroupDeleted { permission_group_id, members: members.into_iter().collect() }
            }),
            3 => (group(), user()).prop_map(|(permission_group_id, user_id)| Event::UserAddedToGroup { permission_group_id, user_id }),
            1 => (group(), user()).prop_map(|(permission_group_id, user_id)| Event::UserRemovedFromGroup { permission_group_id, user_id }),
            2 => name().prop_map(|user_name| Event::KxUserCreated {
                environment_id: "e1".into(),
                user_name,
                iam_role: "r".into(),
                tags: Default::default(),
            }),
            1 => name().prop_map(|user_name| Event::KxRoleChanged {
                environment_id: "e1".into(),
                user_name,
                old_role: "r".into(),
                new_role: "s".into(),
            }),
            1 => name().prop_map(|user_name| Event::KxUserDeleted { environment_id: "e1".into(), user_name }),
        ]
    }

    fn sealed_log(events: Vec<Event>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut prev_hash = [0; 32];
        let mut log = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            let seq = i as u64 + 1;
            let envelope = Envelope {
                seq,
                event_id: ulid::Ulid::from_parts(seq, 0),
                time_ms: seq as i64,
                caller: Caller::System,
                client_token: None,
                event,
            };
            let (bytes, hash) = codec::seal(&envelope, prev_hash);
            prev_hash = hash;
            log.push((codec::seq_key(seq).to_vec(), bytes));
        }
        log
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// The bounded fold gives the in-memory fold's report (the same contradiction at the
        /// same seq) and, for a sound log, its rows byte for byte, whether it spills every
        /// record or none.
        #[test]
        fn the_bounded_fold_equals_the_fold_in_memory(events in proptest::collection::vec(event(), 0..40)) {
            let log = sealed_log(events);
            let (want, views) = audit::verify_entries(log.iter().cloned().map(Ok), None, &mut |_| {}).unwrap();
            for budget in [1, 700, DEFAULT_FOLD_MEMORY] {
                let mut got = refold(log.iter().cloned().map(Ok), None, budget, crate::core::merkle::FLOOR, &mut |_| {}).unwrap();
                prop_assert_eq!(&got.report, &want, "budget {}", budget);
                if want.problem.is_none() {
                    for view in ViewTree::ALL {
                        let rows: Vec<_> = got.rows_of(view).collect::<Result<_>>().unwrap();
                        prop_assert_eq!(rows, views.rows_of(view).collect::<Vec<_>>(), "{:?}, budget {}", view, budget);
                    }
                }
            }
        }
    }
}
