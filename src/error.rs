//! Exit codes and the one error type that selects code 2 (usage or configuration).

/// 0: every input done. 1: some inputs failed (the others' results are written) or the run
/// failed. 2: wrong usage or configuration (nothing was processed).
pub mod exit_codes {
    pub const SUCCESS: u8 = 0;
    pub const SOME_FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
}

/// A mistake in what the user asked for: reported like help, exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl UsageError {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// True when a write failed because the reader went away (`mnv1 ... | head`): not an error.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
