//! Helpers shared by integration tests.
pub mod npz;
pub mod server;

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A file of tests/fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `mnv1 SUB --variant 025_128 --threads 2 --weights <TF-made fixture>`, with an empty cache of
/// the suite's own (`mnv1-SUITE-empty-cache` in the temporary directory).
pub fn mnv1_025(suite: &str, sub: &str) -> Command {
    let mut cmd = Command::cargo_bin("mnv1").unwrap();
    cmd.env(
        "MNV1_CACHE",
        std::env::temp_dir().join(format!("mnv1-{suite}-empty-cache")),
    )
    .arg(sub)
    .args(["--variant", "025_128", "--threads", "2", "--weights"])
    .arg(fixture("mobilenet_v1_0.25_128.tgz"));
    cmd
}
