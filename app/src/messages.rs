//! Errors as the user reads them: each error of the app's modules becomes a translated
//! sentence that says what happened and what to do (the modules' own messages are the
//! English of the logs).

use crate::i18n::{tr, tr_args};
use crate::resources::ResourceError;
use crate::store::StoreError;

/// A resource choice that does not fit this computer.
pub fn resource_error(e: &ResourceError) -> String {
    match e {
        ResourceError::TooManyCpus { host } => {
            tr_args("error-too-many-cpus", &[("host", &host.to_string())])
        }
        ResourceError::NoCpu => tr("error-no-cpu"),
        ResourceError::TooMuchMemory { host_mib, max_mib } => tr_args(
            "error-too-much-memory",
            &[
                ("host", &host_mib.to_string()),
                ("max", &max_mib.to_string()),
            ],
        ),
        ResourceError::TooLittleMemory { min_mib } => {
            tr_args("error-too-little-memory", &[("min", &min_mib.to_string())])
        }
        ResourceError::DiskTooLarge { want_gib, free_gib } => tr_args(
            "error-disk-too-large",
            &[
                ("want", &want_gib.to_string()),
                ("free", &free_gib.to_string()),
            ],
        ),
        ResourceError::DiskTooSmall { min_gib } => {
            tr_args("error-disk-too-small", &[("min", &min_gib.to_string())])
        }
    }
}

/// The library could not do what was asked.
pub fn store_error(e: &StoreError) -> String {
    match e {
        StoreError::Io { path, source, .. } => tr_args(
            "error-store-io",
            &[
                ("path", &path.display().to_string()),
                ("reason", &source.to_string()),
            ],
        ),
        StoreError::EmptyName => tr("wizard-name-empty"),
        StoreError::NameTaken(name) => tr_args("wizard-name-taken", &[("name", name)]),
        StoreError::Broken { path, reason } => tr_args(
            "error-store-broken",
            &[("path", &path.display().to_string()), ("reason", reason)],
        ),
        StoreError::Gone(path) => {
            tr_args("error-store-gone", &[("path", &path.display().to_string())])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_their_figures_into_the_sentence() {
        let m = resource_error(&ResourceError::DiskTooLarge {
            want_gib: 64,
            free_gib: 12,
        });
        assert!(m.contains("64") && m.contains("12"), "{m}");
        let m = store_error(&StoreError::NameTaken("Debian".into()));
        assert!(m.contains("Debian"), "{m}");
    }
}
