//! The stored formats, pinned: bincode writes an enum's variant as its index in declaration
//! order, so the order of every enum that is stored (in the log's events, token records, views) is
//! part of the on-disk format. Append new variants at the end; never reorder, rename (the wire
//! enums' strings are their names here), or remove one. These lists change only by appending.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use crate::core::domain::{ApiAccess, ApplicationPermission, Caller, MembershipStatus, UserStatus, UserType};
use crate::core::event::Event;
use crate::core::idempotency::Response;

/// The variant names of the enum `T`, in the order whose index is its stored tag: what serde's
/// derive hands the deserializer.
fn variants<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    struct Capture(Option<&'static [&'static str]>);
    impl<'de> Deserializer<'de> for &mut Capture {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("not an enum"))
        }
        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _: &'static str,
            variants: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(variants);
            Err(de::Error::custom("captured"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
            unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
        }
    }
    let mut capture = Capture(None);
    let _ = T::deserialize(&mut capture);
    capture.0.unwrap_or_default()
}

#[test]
fn every_stored_enum_keeps_its_variants_in_their_stored_order() {
    assert_eq!(
        variants::<Event>(),
        &[
            "Created",
            "Updated",
            "Enabled",
            "Disabled",
            "KxUserCreated",
            "KxRoleChanged",
            "KxUserDeleted",
            "AccessKeyCreated",
            "AccessKeyDeleted",
            "PermissionGroupCreated",
            "PermissionGroupUpdated",
            "PermissionGroupDeleted",
            "UserAddedToGroup",
            "UserRemovedFromGroup",
            "PasswordReset",
            "SignedIn",
            "PrincipalKeyCreated",
            "PrincipalKeyDeleted",
            "CredentialsIssued",
            "CredentialsRevoked",
            "DataKeyRotated",
            "DataKeyRetired",
            "RootKeyChanged",
            "CheckpointKeyRotated",
            "EpochStarted",
            "SignInLockoutCleared",
            "PersonalDataErased"
        ]
    );
    assert_eq!(variants::<Caller>(), &["System", "User", "Principal"]);
    assert_eq!(
        variants::<Response>(),
        &[
            "UserId",
            "KxUser",
            "Empty",
            "AccessKey",
            "PermissionGroupId",
            "PasswordReset",
            "PrincipalKey",
            "Credentials",
            "PasswordIssued"
        ]
    );
    assert_eq!(variants::<UserType>(), &["SUPER_USER", "APP_USER"]);
    assert_eq!(variants::<UserStatus>(), &["CREATING", "ENABLED", "DISABLED"]);
    assert_eq!(variants::<ApiAccess>(), &["ENABLED", "DISABLED"]);
    assert_eq!(
        variants::<ApplicationPermission>(),
        &[
            "CreateDataset",
            "ManageClusters",
            "ManageUsersAndGroups",
            "ManageAttributeSets",
            "ViewAuditData",
            "AccessNotebooks",
            "GetTemporaryCredentials"
        ]
    );
    assert_eq!(
        variants::<MembershipStatus>(),
        &["ADDITION_IN_PROGRESS", "ADDITION_SUCCESS", "REMOVAL_IN_PROGRESS"]
    );
}

#[test]
fn every_view_keeps_its_stored_tag_and_all_lists_them_in_tag_order() {
    use crate::views::ViewTree;
    let tags: Vec<(&str, u8)> = ViewTree::ALL.iter().map(|v| (v.name(), v.tag())).collect();
    assert_eq!(
        tags,
        [
            ("users", 0),
            ("emails", 1),
            ("counters", 2),
            ("kx_users", 3),
            ("history", 4),
            ("access_keys", 5),
            ("permission_groups", 6),
            ("memberships", 7),
            ("passwords", 8),
            ("principal_keys", 9),
            ("temporary_credentials", 10),
            ("merkle", 11),
        ]
    );
}
