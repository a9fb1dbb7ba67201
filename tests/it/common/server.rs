//! A tiny HTTP/1.1 server on 127.0.0.1 for the fetch tests: serves fixed bodies, HTTP errors,
//! truncated bodies, stalls, and the two requests hf-hub's sync client makes per file (a
//! `Range: bytes=0-0` probe that must carry `etag`, `x-repo-commit` and `content-range`, then
//! `Range: bytes=N-` for the body). Every request path is logged.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone)]
pub enum Reply {
    Body(Vec<u8>),
    /// The body after a delay (keeps a fetch in flight while other processes start).
    Slow(Vec<u8>, Duration),
    Status(u16),
    /// Announces the full length, sends `cut` bytes, closes.
    Truncated(Vec<u8>, usize),
    /// Sends the headers and `sent` bytes, then nothing for `for_` (longer than the client's timeout).
    Stall {
        body: Vec<u8>,
        sent: usize,
        for_: Duration,
    },
    /// A file of a Hugging Face repository, honouring Range.
    Hf(Vec<u8>),
    /// `302 Found` to this Location (with the ETag and X-Repo-Commit headers hf-hub's probe
    /// wants, so that it follows the redirect too).
    Redirect(String),
}

pub struct Server {
    pub base: String,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let (r, l) = (Arc::clone(&routes), Arc::clone(&log));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, l) = (Arc::clone(&r), Arc::clone(&l));
                std::thread::spawn(move || {
                    let _ = handle(stream, &r, &l);
                });
            }
        });
        Server { base, routes, log }
    }

    pub fn route(&self, path: &str, reply: Reply) {
        self.routes.lock().unwrap().insert(path.to_string(), reply);
    }

    pub fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|p| p.as_str() == path)
            .count()
    }
}

fn handle(
    stream: TcpStream,
    routes: &Mutex<HashMap<String, Reply>>,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut range_start: Option<(usize, Option<usize>)> = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                let spec = v.trim().trim_start_matches("bytes=");
                let (a, b) = spec.split_once('-').unwrap_or((spec, ""));
                range_start = Some((a.parse().unwrap_or(0), b.parse().ok()));
            }
        }
    }
    log.lock().unwrap().push(path.clone());
    let reply = routes.lock().unwrap().get(&path).cloned();
    let mut out = stream;
    let head = |status: &str, len: usize, extra: &str| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n")
    };
    match reply {
        None => out.write_all(head("404 Not Found", 0, "").as_bytes())?,
        Some(Reply::Status(code)) => {
            let text = if code == 500 {
                "Internal Server Error"
            } else {
                "Error"
            };
            out.write_all(head(&format!("{code} {text}"), 0, "").as_bytes())?
        }
        Some(Reply::Body(body)) => {
            out.write_all(head("200 OK", body.len(), "").as_bytes())?;
            out.write_all(&body)?;
        }
        Some(Reply::Slow(body, delay)) => {
            std::thread::sleep(delay);
            out.write_all(head("200 OK", body.len(), "").as_bytes())?;
            out.write_all(&body)?;
        }
        Some(Reply::Truncated(body, cut)) => {
            out.write_all(head("200 OK", body.len(), "").as_bytes())?;
            out.write_all(&body[..cut])?;
        }
        Some(Reply::Stall { body, sent, for_ }) => {
            out.write_all(head("200 OK", body.len(), "").as_bytes())?;
            out.write_all(&body[..sent])?;
            out.flush()?;
            std::thread::sleep(for_);
        }
        Some(Reply::Redirect(location)) => {
            let extra = format!(
                "Location: {location}\r\nETag: \"0\"\r\n\
                 X-Repo-Commit: 0123456789abcdef0123456789abcdef01234567\r\n"
            );
            out.write_all(head("302 Found", 0, &extra).as_bytes())?;
        }
        Some(Reply::Hf(body)) => {
            let (start, end) = range_start.unwrap_or((0, None));
            let end = end.unwrap_or(body.len() - 1).min(body.len() - 1);
            let part = &body[start..=end];
            let etag = format!(
                "\"{:x}\"",
                body.len() * 7919 + body.iter().take(64).map(|&b| b as usize).sum::<usize>()
            );
            let extra = format!(
                "ETag: {etag}\r\nX-Repo-Commit: 0123456789abcdef0123456789abcdef01234567\r\n\
                 Content-Range: bytes {start}-{end}/{}\r\n",
                body.len()
            );
            out.write_all(head("206 Partial Content", part.len(), &extra).as_bytes())?;
            out.write_all(part)?;
        }
    }
    out.flush()
}
