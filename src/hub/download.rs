//! One HTTP(S) download into a temporary file inside the cache, hashed (sha256) as it arrives.
//! Nothing here ever names a file the cache lookup would take for weights: the temporary file is
//! deleted on drop unless the caller converts and renames something else into place.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::tempfiles::{self, Temp};

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("HTTP {status} {reason}")]
    Status { status: u16, reason: String },
    #[error("cannot connect or request: {0}")]
    Transport(String),
    #[error(
        "the server sent nothing for {0:?} (stalled); MNV1_HTTP_TIMEOUT sets this limit in seconds"
    )]
    Stalled(Duration),
    #[error("the download broke off after {got} bytes: {source}")]
    Interrupted { got: u64, source: io::Error },
    #[error("the download is truncated: {got} of {expected} bytes arrived")]
    Truncated { got: u64, expected: u64 },
    #[error("sha256 mismatch: expected {expected}, got {actual} (corrupted download or a different file)")]
    Sha256 { expected: String, actual: String },
    #[error("cannot write the download to {dir}: {source}")]
    Write { dir: String, source: io::Error },
    #[error("redirected to {0}: only http and https URLs are followed")]
    BadRedirect(String),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error(
        "the download is larger than the {limit}-byte limit (MNV1_MAX_DOWNLOAD_BYTES sets it)"
    )]
    TooLarge { limit: u64 },
}

/// Redirects followed before giving up.
pub const MAX_REDIRECTS: usize = 10;

/// Bounds on one download.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connecting and every wait for data, not the whole transfer.
    pub timeout: Duration,
    /// Bytes accepted (announced or received).
    pub max_bytes: u64,
}

/// A finished download, not yet checked for content.
pub struct Downloaded {
    pub file: Temp,
    pub size: u64,
    pub sha256: String,
}

/// GETs `url` (following up to [`MAX_REDIRECTS`] http(s) redirects) into a temporary file in
/// `dir`, within `limits`.
pub fn download(
    url: &str,
    dir: &Path,
    limits: Limits,
    progress: bool,
) -> Result<Downloaded, DownloadError> {
    let timeout = limits.timeout;
    let response = get_following_redirects(url, timeout)?;
    let expected: Option<u64> = response
        .header("Content-Length")
        .and_then(|v| v.trim().parse().ok());
    if expected.is_some_and(|n| n > limits.max_bytes) {
        return Err(DownloadError::TooLarge {
            limit: limits.max_bytes,
        });
    }
    let write_err = |source| DownloadError::Write {
        dir: dir.display().to_string(),
        source,
    };
    let mut file = tempfiles::create_in(dir, tempfiles::DOWNLOAD).map_err(write_err)?;
    let bar = super::progress::bytes_bar(expected, url, progress);
    let mut reader = response.into_reader();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                ) =>
            {
                bar.abandon();
                return Err(DownloadError::Stalled(timeout));
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && expected.is_some() => {
                bar.abandon();
                return Err(DownloadError::Truncated {
                    got,
                    expected: expected.unwrap_or_default(),
                });
            }
            Err(source) => {
                bar.abandon();
                return Err(DownloadError::Interrupted { got, source });
            }
        };
        got += n as u64;
        if got > limits.max_bytes {
            bar.abandon();
            return Err(DownloadError::TooLarge {
                limit: limits.max_bytes,
            });
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).map_err(write_err)?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    if let Some(expected) = expected.filter(|&e| e != got) {
        return Err(DownloadError::Truncated { got, expected });
    }
    file.flush().map_err(write_err)?;
    Ok(Downloaded {
        file,
        size: got,
        sha256: hex(&hasher.finalize()),
    })
}

/// ureq 2 follows redirects itself and panics on one to a URL without a host (`file:///...`):
/// its redirects are off here, and each hop is checked before it is requested.
fn get_following_redirects(url: &str, timeout: Duration) -> Result<ureq::Response, DownloadError> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(timeout)
        .timeout_read(timeout)
        .timeout_write(timeout)
        .redirects(0)
        .build();
    let mut current =
        url::Url::parse(url).map_err(|e| DownloadError::Transport(format!("{url}: {e}")))?;
    check_scheme(&current)
        .map_err(|_| DownloadError::Transport(format!("{url}: not an http(s) URL")))?;
    for _ in 0..=MAX_REDIRECTS {
        let response = agent
            .request_url("GET", &current)
            .call()
            .map_err(|e| match e {
                ureq::Error::Status(status, r) => DownloadError::Status {
                    status,
                    reason: r.status_text().to_string(),
                },
                ureq::Error::Transport(t) if is_timeout(&t) => DownloadError::Stalled(timeout),
                ureq::Error::Transport(t) => DownloadError::Transport(t.to_string()),
            })?;
        if !(300..400).contains(&response.status()) {
            return Ok(response);
        }
        let Some(location) = response.header("Location") else {
            return Err(DownloadError::Status {
                status: response.status(),
                reason: format!("{} without a Location", response.status_text()),
            });
        };
        let next = current
            .join(location)
            .map_err(|_| DownloadError::BadRedirect(location.to_string()))?;
        check_scheme(&next)?;
        current = next;
    }
    Err(DownloadError::TooManyRedirects)
}

fn check_scheme(url: &url::Url) -> Result<(), DownloadError> {
    if matches!(url.scheme(), "http" | "https") && url.host().is_some() {
        Ok(())
    } else {
        Err(DownloadError::BadRedirect(url.to_string()))
    }
}

impl Downloaded {
    /// Compares against a pinned sha256 (hex, any case) when there is one.
    pub fn verify_sha256(&self, expected: Option<&str>) -> Result<(), DownloadError> {
        match expected.map(str::trim).filter(|e| !e.is_empty()) {
            Some(e) if !e.eq_ignore_ascii_case(&self.sha256) => Err(DownloadError::Sha256 {
                expected: e.to_ascii_lowercase(),
                actual: self.sha256.clone(),
            }),
            _ => Ok(()),
        }
    }
}

fn is_timeout(t: &ureq::Transport) -> bool {
    use std::error::Error;
    let mut source = t.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return matches!(
                io.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            );
        }
        source = e.source();
    }
    false
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
