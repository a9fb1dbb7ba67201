//! Exit codes, decided in one place ([`exit_code`]) from the types of the errors in a failure's
//! chain, and how a failure is printed ([`message`]).

use std::error::Error as StdError;

use crate::cache::CacheDirError;
use crate::hub::HubError;
use crate::registry::RegistryError;
use crate::train::manifest::ManifestError;
use crate::weights::WeightsError;

/// 0: every input done. 1: some inputs failed (the others' results are written) or the run
/// failed (I/O, network, a broken input). 2: wrong usage or configuration (nothing was
/// processed).
pub mod exit_codes {
    pub const SUCCESS: u8 = 0;
    pub const SOME_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
}

/// A mistake in what the user asked for (a flag, an argument, a setting): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// Usage / configuration (2) or a failure while working (1), for one error type; None for a type
/// that does not say (a wrapper), so the next error in the chain decides.
fn category(e: &(dyn StdError + 'static)) -> Option<u8> {
    use exit_codes::{SOME_FAILED as FAILED, USAGE};
    if e.is::<UsageError>() || e.is::<CacheDirError>() || e.is::<RegistryError>() {
        return Some(USAGE);
    }
    if let Some(e) = e.downcast_ref::<HubError>() {
        return Some(match e {
            HubError::Setting(_) | HubError::Offline { .. } | HubError::CacheDir(_) => USAGE,
            HubError::AllSourcesFailed { .. } | HubError::Io { .. } => FAILED,
        });
    }
    if let Some(e) = e.downcast_ref::<WeightsError>() {
        // Weights that are not MobileNet V1 weights were named by the user; reading them is I/O.
        return Some(if e.is_io() { FAILED } else { USAGE });
    }
    if let Some(e) = e.downcast_ref::<ManifestError>() {
        return Some(match e {
            ManifestError::Io { .. } => FAILED,
            _ => USAGE,
        });
    }
    // MNV1_ISA naming a level this CPU lacks (or none), or bf16 without its instructions, is a
    // setting.
    if let Some(
        crate::model::ModelError::Isa(_)
        | crate::model::ModelError::Bf16(_)
        | crate::model::ModelError::Unsupported(_),
    ) = e.downcast_ref::<crate::model::ModelError>()
    {
        return Some(USAGE);
    }
    if e.is::<std::io::Error>() {
        return Some(FAILED);
    }
    None
}

/// The exit code of a run that ended with `err`: the first error in its chain (outermost first)
/// whose type says; 1 when none does.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(category)
        .unwrap_or(exit_codes::SOME_FAILED)
}

/// The error and its causes on one line, each said once: many errors quote their source in
/// their own message, and printing the chain would repeat it.
pub fn message(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for e in err.chain() {
        let part = e.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

/// True when a write failed because the reader went away (`mnv1 ... | head`): not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outermost_typed_error_decides() {
        let io = || std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        assert_eq!(exit_code(&anyhow::Error::from(io())), 1);
        assert_eq!(exit_code(&anyhow::Error::from(UsageError::new("bad"))), 2);
        // Context strings do not change the category.
        let e = anyhow::Error::from(io()).context("writing results");
        assert_eq!(exit_code(&e), 1);
        let e = anyhow::Error::from(HubError::Setting("MNV1_HTTP_TIMEOUT=x".into()));
        assert_eq!(exit_code(&e), 2);
        let e = anyhow::Error::from(HubError::Io {
            path: "/cache".into(),
            source: io(),
        });
        assert_eq!(exit_code(&e), 1);
        assert_eq!(exit_code(&anyhow::anyhow!("untyped")), 1);
    }

    #[test]
    fn messages_say_each_cause_once() {
        let e = anyhow::Error::from(HubError::Io {
            path: "/cache/x".into(),
            source: std::io::Error::other("disk full"),
        })
        .context("storing weights");
        assert_eq!(message(&e), "storing weights: /cache/x: disk full");
    }
}
