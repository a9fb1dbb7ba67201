//! Ctrl-C never leaves a half-written file behind: temporary output files register here and
//! are removed by the interrupt handler before the process exits.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Exit status of a process ended by SIGINT, as shells report it.
const INTERRUPTED: i32 = 130;

pub fn install() {
    // A second handler (tests calling twice) is not an error worth reporting.
    let _ = ctrlc::set_handler(|| {
        if let Ok(paths) = PENDING.lock() {
            for p in paths.iter() {
                // A staged model directory (finetune) goes whole.
                let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
            }
        }
        std::process::exit(INTERRUPTED);
    });
}

pub fn register(path: &Path) {
    if let Ok(mut v) = PENDING.lock() {
        v.push(path.to_path_buf());
    }
}

pub fn unregister(path: &Path) {
    if let Ok(mut v) = PENDING.lock() {
        v.retain(|p| p != path);
    }
}
