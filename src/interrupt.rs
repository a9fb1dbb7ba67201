//! A signal never leaves a half-written file behind: every temporary file mnv1 makes registers
//! here (see `tempfiles`), and SIGINT, SIGTERM and SIGHUP remove them before the process exits
//! with 128 + the signal's number, as shells report a death by that signal.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn remove_pending() {
    // A poisoned lock still holds the list: clean up anyway.
    let paths = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    for p in paths.iter() {
        // A staged model directory (finetune) goes whole.
        let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
    }
}

/// Installs the handler (once; a second call is a no-op).
#[cfg(unix)]
pub fn install() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                remove_pending();
                std::process::exit(128 + sig);
            }
        });
    });
}

#[cfg(not(unix))]
pub fn install() {
    // A second handler (tests calling twice) is not an error worth reporting.
    let _ = ctrlc::set_handler(|| {
        remove_pending();
        std::process::exit(130);
    });
}

pub(crate) fn register(path: &Path) {
    let mut v = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    v.push(path.to_path_buf());
}

pub(crate) fn unregister(path: &Path) {
    let mut v = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    v.retain(|p| p != path);
}
