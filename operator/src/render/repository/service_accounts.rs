//! The `imagePullSecrets` of granted ServiceAccounts: the edits the
//! controller makes (read, edit, replace with the resourceVersion).

use k8s_openapi::api::core::v1::{LocalObjectReference, ServiceAccount};

use crate::render::Problem;

/// Adds `secret` to the account's imagePullSecrets; false when it is there.
pub fn add_image_pull_secret(account: &mut ServiceAccount, secret: &str) -> bool {
    let list = account.image_pull_secrets.get_or_insert_with(Vec::new);
    if list.iter().any(|r| r.name == secret) {
        return false;
    }
    list.push(LocalObjectReference {
        name: secret.into(),
    });
    true
}

/// Removes `secret` from the account's imagePullSecrets; false when it was
/// not there.
pub fn remove_image_pull_secret(account: &mut ServiceAccount, secret: &str) -> bool {
    let Some(list) = account.image_pull_secrets.as_mut() else {
        return false;
    };
    let before = list.len();
    list.retain(|r| r.name != secret);
    list.len() != before
}

/// The note while a granted ServiceAccount does not exist.
pub fn service_account_missing(namespace: &str, account: &str, secret: &str) -> Problem {
    Problem::new(
        "ServiceAccountNotFound",
        format!(
            "ServiceAccount {namespace}/{account} does not exist yet: its pull Secret {secret} is ready and will be added when it appears"
        ),
    )
}
