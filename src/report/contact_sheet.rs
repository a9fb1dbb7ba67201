//! `classify --format html`: a contact sheet, one card per input in input order (a thumbnail,
//! the top-k labels with probability bars, or the reason it failed), written as results come.
//!
//! Memory stays bounded however many inputs there are: cards are written in chunks of `CHUNK`
//! and dropped; thumbnails are embedded (`data:` URIs) for the first `embed_limit` images only,
//! later cards link to the original files relative to the page (the browser loads them lazily);
//! the closing list of failures keeps at most `FAILURES_LISTED` (all are shown in place).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use rayon::prelude::*;

use super::html::{self, esc, percent};
use super::thumbnail;
use crate::output::{Prediction, Sink};

/// Cards made (thumbnails in parallel) and written at a time.
const CHUNK: usize = 32;
/// Failures repeated in the list at the end (every failure also has its card in place).
pub const FAILURES_LISTED: usize = 1000;
/// Default of `--sheet-embed`: about 5-10 KB each, so a few MB of page.
pub const DEFAULT_EMBED_LIMIT: usize = 1000;
const THUMB_SIDE: u32 = 160;

pub struct SheetOptions {
    pub title: String,
    pub subtitle: String,
    /// Thumbnails embedded for the first this many images; links to the originals after.
    pub embed_limit: usize,
    pub max_pixels: u64,
    /// The page's directory: links to originals are relative to it.
    pub page_dir: PathBuf,
}

enum Card {
    Done {
        name: String,
        /// (label, probability), most likely first.
        top: Vec<(String, f32)>,
    },
    Failed {
        path: String,
        reason: String,
    },
}

pub struct ContactSheet {
    sink: Sink,
    opts: SheetOptions,
    pending: Vec<Card>,
    /// Cards written so far (the id of the next one).
    written: usize,
    images: usize,
    failures: Vec<(usize, String, String)>,
    failed: usize,
}

/// Characters escaped in a path segment of a relative URL (plus all non-ASCII, as UTF-8).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\'')
    .add(b'\\')
    .add(b'/');

/// `file` as a URL relative to `page_dir` (both made absolute first).
pub fn relative_link(file: &Path, page_dir: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let rel = pathdiff::diff_paths(abs(file), abs(page_dir)).unwrap_or_else(|| abs(file));
    let mut parts: Vec<String> = rel
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => {
                Some(utf8_percent_encode(&s.to_string_lossy(), SEGMENT).to_string())
            }
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    if rel.is_absolute() {
        parts.insert(0, String::new());
    } else if parts.first().is_some_and(|p| p.contains(':')) {
        // `a:b.jpg` would read as a URL scheme.
        parts.insert(0, ".".into());
    }
    parts.join("/")
}

/// The file behind a result name and the image's index in it: `x.npy[3]` is image 3 of x.npy.
fn source_of(name: &str) -> (PathBuf, usize) {
    let whole = Path::new(name);
    if !whole.exists() {
        if let Some((file, k)) = name
            .strip_suffix(']')
            .and_then(|s| s.rsplit_once('['))
            .and_then(|(f, k)| Some((f, k.parse::<usize>().ok()?)))
        {
            return (PathBuf::from(file), k);
        }
    }
    (whole.to_path_buf(), 0)
}

impl ContactSheet {
    pub fn new(mut sink: Sink, opts: SheetOptions) -> io::Result<Self> {
        sink.write_all(html::page_start(&opts.title, &opts.subtitle).as_bytes())?;
        sink.write_all(b"<div class=\"grid sheet\">\n")?;
        Ok(Self {
            sink,
            opts,
            pending: Vec::with_capacity(CHUNK),
            written: 0,
            images: 0,
            failures: Vec::new(),
            failed: 0,
        })
    }

    pub fn done(&mut self, name: &str, predictions: &[Prediction]) -> io::Result<()> {
        self.pending.push(Card::Done {
            name: name.to_string(),
            top: predictions
                .iter()
                .map(|p| (p.label.to_string(), p.probability))
                .collect(),
        });
        self.write_when_full()
    }

    pub fn failed(&mut self, path: &Path, reason: &str) -> io::Result<()> {
        self.pending.push(Card::Failed {
            path: path.display().to_string(),
            reason: reason.to_string(),
        });
        self.write_when_full()
    }

    fn write_when_full(&mut self) -> io::Result<()> {
        if self.pending.len() >= CHUNK {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Makes the pending cards' thumbnails (in parallel), writes the cards, drops them.
    fn write_pending(&mut self) -> io::Result<()> {
        let first = self.written;
        let opts = &self.opts;
        let mut images_before = self.images;
        // Which cards embed their thumbnail: the first `embed_limit` images overall.
        let embed: Vec<bool> = self
            .pending
            .iter()
            .map(|c| match c {
                Card::Done { .. } => {
                    images_before += 1;
                    images_before <= opts.embed_limit
                }
                Card::Failed { .. } => false,
            })
            .collect();
        let html: Vec<String> = self
            .pending
            .par_iter()
            .zip(embed)
            .enumerate()
            .map(|(i, (card, embed))| card_html(first + i, card, embed, opts))
            .collect();
        self.written += self.pending.len();
        for (i, card) in self.pending.drain(..).enumerate() {
            match card {
                Card::Done { .. } => self.images += 1,
                Card::Failed { path, reason } => {
                    self.failed += 1;
                    if self.failures.len() < FAILURES_LISTED {
                        self.failures.push((first + i, path, reason));
                    }
                }
            }
        }
        for h in html {
            self.sink.write_all(h.as_bytes())?;
        }
        // Cards show up as they are made, also through pipes.
        self.sink.flush()
    }

    /// Writes what is pending, the list of failures and the end of the page, then commits.
    pub fn finish(mut self) -> io::Result<()> {
        self.write_pending()?;
        let mut s = String::from("</div>\n");
        let _ = write!(
            s,
            "<section class=\"summary\"><h2>{} inputs: {} classified, {} failed</h2>",
            self.images + self.failed,
            self.images,
            self.failed
        );
        if self.images > self.opts.embed_limit {
            let _ = write!(
                s,
                "<p class=\"note\">Thumbnails are embedded for the first {} images; the others \
                 show the original files, linked relative to this page.</p>",
                self.opts.embed_limit
            );
        }
        if !self.failures.is_empty() {
            s.push_str("<ul class=\"failures\">\n");
            for (i, path, reason) in &self.failures {
                let _ = writeln!(
                    s,
                    "<li><a href=\"#i{i}\">{}</a>: <span class=\"reason\">{}</span></li>",
                    esc(path),
                    esc(reason)
                );
            }
            s.push_str("</ul>\n");
            if self.failed > self.failures.len() {
                let _ = write!(
                    s,
                    "<p class=\"note\">and {} more, each shown in place above.</p>",
                    self.failed - self.failures.len()
                );
            }
        }
        s.push_str("</section>\n");
        s.push_str(html::PAGE_END);
        self.sink.write_all(s.as_bytes())?;
        self.sink.finish()
    }
}

/// The last component of a path, as shown on a card (the whole path is its tooltip).
fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or(path.to_string(), |n| n.to_string_lossy().into_owned())
}

fn card_html(id: usize, card: &Card, embed: bool, opts: &SheetOptions) -> String {
    match card {
        Card::Done { name, top } => {
            let (file, index) = source_of(name);
            let link = relative_link(&file, &opts.page_dir);
            let is_npy = file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
            let img = if embed {
                match std::fs::read(&file)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        thumbnail::from_file_bytes(&b, index, THUMB_SIDE, opts.max_pixels)
                    }) {
                    Ok(jpeg) => format!(
                        "<img class=\"thumb\" alt=\"\" src=\"{}\">",
                        thumbnail::data_uri(&jpeg)
                    ),
                    Err(reason) => {
                        format!("<div class=\"thumb\">no preview: {}</div>", esc(&reason))
                    }
                }
            } else if is_npy {
                "<div class=\"thumb\">tensor (no preview)</div>".to_string()
            } else {
                format!(
                    "<img class=\"thumb\" alt=\"\" loading=\"lazy\" src=\"{}\">",
                    esc(&link)
                )
            };
            let shown = file_name(name);
            let mut s = format!(
                "<figure class=\"item\" id=\"i{id}\"><a href=\"{}\">{img}</a><figcaption>\
                 <span class=\"name\" title=\"{}\">{}</span>",
                esc(&link),
                esc(name),
                esc(&shown)
            );
            for (label, p) in top {
                let _ = write!(
                    s,
                    "<div class=\"bar\"><span title=\"{0}\">{0}</span><b>{1}</b><i><s style=\"width:{2:.1}%\"></s></i></div>",
                    esc(label),
                    percent(*p as f64),
                    (p * 100.0).clamp(0.0, 100.0)
                );
            }
            s.push_str("</figcaption></figure>\n");
            s
        }
        Card::Failed { path, reason } => format!(
            "<figure class=\"item failed\" id=\"i{id}\"><div class=\"thumb\">failed</div>\
             <figcaption><span class=\"name\" title=\"{}\">{}</span>\
             <span class=\"reason\">{}</span></figcaption></figure>\n",
            esc(path),
            esc(&file_name(path)),
            esc(reason)
        ),
    }
}
