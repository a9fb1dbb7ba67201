//! What people look at rather than read: the fine-tuning report (`report.html`), TensorBoard
//! event files of a fine-tuning run, and the contact sheet of `classify --format html`.
//! Pages are single self-contained files: inline SVG and CSS, thumbnails as `data:` URIs, no
//! script, nothing fetched.

pub(crate) mod contact_sheet;
pub mod html;
pub(crate) mod summaries;
pub(crate) mod svg;
pub mod tfevents;
pub(crate) mod thumbnail;
pub(crate) mod training;
