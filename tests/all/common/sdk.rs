//! Clients of the official AWS SDK for Rust, unchanged, pointed at a host.
#![allow(clippy::unwrap_used)]

use aws_sdk_finspacedata::config::{BehaviorVersion, Credentials, Region};
use user_ledger::AccessKeyPair;

/// A finspace-data client at `url` signing with `key` (and session token `token`).
pub fn data_client(url: &str, key: &AccessKeyPair, token: Option<&str>) -> aws_sdk_finspacedata::Client {
    let credentials = Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        token.map(str::to_owned),
        None,
        "user-ledger test",
    );
    let config = aws_sdk_finspacedata::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(url)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_finspacedata::Client::from_conf(config)
}

/// A finspace (kdb) client at `url` signing with `key`.
pub fn kx_client(url: &str, key: &AccessKeyPair) -> aws_sdk_finspace::Client {
    let credentials = aws_sdk_finspace::config::Credentials::new(
        &key.access_key_id,
        &key.secret_access_key,
        None,
        None,
        "user-ledger test",
    );
    let config = aws_sdk_finspace::Config::builder()
        .behavior_version(aws_sdk_finspace::config::BehaviorVersion::latest())
        .region(aws_sdk_finspace::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(url)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    aws_sdk_finspace::Client::from_conf(config)
}
