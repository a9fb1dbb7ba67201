//! Fetch-and-cache end to end, against a local HTTP server on 127.0.0.1 (tests/it/common/server.rs)
//! standing in for download.tensorflow.org (via MNV1_MIRROR), tfhub.dev (MNV1_HUB_BASE) and the
//! Hugging Face hub (HF_ENDPOINT). What is served are the TensorFlow-made fixtures
//! (tests/fixtures/README.md) and tests/fixtures/hf_025_128 (tools/make_hf_fixture.py): the same
//! seeded 0.25_128 weights in the release, hub and transformers layouts. Expected outputs are
//! mnv1's own results with `--weights` pointing at the fixture archive, so a fetched-and-converted
//! checkpoint must classify exactly like the archive it came from.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::server::{Reply, Server};
use assert_cmd::Command;
use mnv1::testing::hub::{self, FetchOptions, HubError};
use mnv1::testing::registry::{Head, Registry, Variant};
use mnv1::testing::weights;
use sha2::Digest;

const RELEASE: &str = "/models/mobilenet_v1_2018_02_22/mobilenet_v1_0.25_128.tgz";
const HUB: &str = "/google/imagenet/mobilenet_v1_025_128/classification/3?tf-hub-format=compressed";
const CACHED: &str = "mobilenet_v1_0.25_128.safetensors";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    fs::read(fixture(name)).unwrap()
}

fn image() -> PathBuf {
    fixture("preprocess/rgb_37x29.png")
}

struct Env {
    server: Server,
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            server: Server::start(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The binary with every network base pointed at the local server and a private cache.
    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("mnv1").unwrap();
        c.env("MNV1_CACHE", self.cache())
            .env("MNV1_MIRROR", &self.server.base)
            .env("MNV1_HUB_BASE", &self.server.base)
            .env("HF_ENDPOINT", &self.server.base)
            .env("HF_HOME", self.dir.path().join("hf"))
            .env("MNV1_HTTP_TIMEOUT", "5")
            .env_remove("MNV1_OFFLINE")
            .env_remove("HF_HUB_OFFLINE");
        c
    }

    fn classify(&self) -> Command {
        let mut c = self.cmd();
        c.arg("classify")
            .arg(image())
            .args(["--variant", "025_128", "--format", "json"]);
        c
    }

    /// Names in the cache directory besides the lock directory.
    fn cache_entries(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(self.cache()) else {
            return Vec::new();
        };
        let mut v: Vec<String> = rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".locks")
            .collect();
        v.sort();
        v
    }

    fn options(&self) -> FetchOptions {
        let mut o = FetchOptions::for_cache_dir(self.cache());
        o.mirror = Some(self.server.base.clone());
        o.hub_base = Some(self.server.base.clone());
        o.hf_endpoint = Some(self.server.base.clone());
        o.hf_cache = Some(self.dir.path().join("hf/hub"));
        o.timeout = Duration::from_secs(5);
        o
    }
}

/// What classify prints with the fixture archive given directly.
fn reference_output() -> Vec<u8> {
    let out = Command::cargo_bin("mnv1")
        .unwrap()
        .arg("classify")
        .arg(image())
        .args(["--variant", "025_128", "--format", "json", "--weights"])
        .arg(fixture("mobilenet_v1_0.25_128.tgz"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sha256_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn release_tarball_is_fetched_converted_cached_then_used_offline() {
    let env = Env::new();
    let tgz = bytes("mobilenet_v1_0.25_128.tgz");
    env.server.route(RELEASE, Reply::Body(tgz.clone()));
    let out = env.classify().output().unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(out.stdout, reference_output());
    // What was downloaded is reported so that users can pin it.
    assert!(
        err.contains(&format!(
            "downloaded {} bytes, sha256 {}",
            tgz.len(),
            sha256_hex(&tgz)
        )),
        "{err}"
    );
    assert_eq!(env.server.requests(), vec![RELEASE.to_string()]);
    assert_eq!(
        env.cache_entries(),
        vec![CACHED.to_string()],
        "no temporary files left behind"
    );

    // Offline, three ways: same answer, no request.
    for (flag, var) in [
        (Some("--offline"), None),
        (None, Some("MNV1_OFFLINE")),
        (None, Some("HF_HUB_OFFLINE")),
    ] {
        let mut c = env.classify();
        if let Some(f) = flag {
            c.arg(f);
        }
        if let Some(v) = var {
            c.env(v, "1");
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert_eq!(out.stdout, reference_output());
        assert_eq!(out.stderr, b"", "a cached run says nothing");
    }
    assert_eq!(env.server.requests().len(), 1);

    // The cached file is canonical safetensors holding exactly the archive's tensors.
    let cached = weights::load(&env.cache().join(CACHED)).unwrap();
    let direct = weights::load(&fixture("mobilenet_v1_0.25_128.tgz")).unwrap();
    assert_eq!(cached.tensors, direct.tensors);
}

#[test]
fn a_corrupted_cached_file_is_detected_and_fetched_again() {
    let env = Env::new();
    env.server
        .route(RELEASE, Reply::Body(bytes("mobilenet_v1_0.25_128.tgz")));
    env.cmd()
        .args(["fetch", "--variant", "025_128"])
        .assert()
        .success();
    let path = env.cache().join(CACHED);
    let mut b = fs::read(&path).unwrap();
    let at = b.len() - 100; // inside the tensor data, past the header
    b[at] ^= 0x40;
    fs::write(&path, &b).unwrap();

    let listed = env.cmd().args(["cache", "list"]).output().unwrap();
    assert!(!listed.status.success());
    assert!(String::from_utf8_lossy(&listed.stdout).contains("damaged (checksum mismatch"));

    let out = env.classify().output().unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("is damaged (checksum mismatch"), "{err}");
    assert_eq!(out.stdout, reference_output());
    assert_eq!(env.server.count(RELEASE), 2);
    assert_eq!(env.cache_entries(), vec![CACHED.to_string()]);
}

#[test]
fn the_hub_module_is_the_second_source() {
    let env = Env::new();
    env.server.route(RELEASE, Reply::Status(404));
    env.server
        .route(HUB, Reply::Body(bytes("hub_025_128.tar.gz")));
    let out = env.classify().output().unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("HTTP 404"), "{err}");
    assert_eq!(out.stdout, reference_output());
    assert_eq!(
        env.server.requests(),
        vec![RELEASE.to_string(), HUB.to_string()]
    );
}

/// A release-style archive holding only the float .tflite (BatchNorm folded).
fn tflite_only_tgz() -> Vec<u8> {
    let tgz = bytes("mobilenet_v1_0.25_128.tgz");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&tgz[..]));
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".tflite") {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            let mut header = entry.header().clone();
            builder.append_data(&mut header, &name, &data[..]).unwrap();
        }
    }
    builder.into_inner().unwrap().finish().unwrap()
}

#[test]
fn a_tarball_with_only_a_tflite_is_converted_from_the_tflite() {
    let env = Env::new();
    env.server.route(RELEASE, Reply::Body(tflite_only_tgz()));
    env.cmd()
        .args(["fetch", "--variant", "025_128"])
        .assert()
        .success();
    let cached = weights::load(&env.cache().join(CACHED)).unwrap();
    assert!(
        cached.tensors.contains_key("MobilenetV1/Conv2d_0/biases"),
        "folded layers"
    );
    cached.check_complete().unwrap();
    let out = env.classify().arg("--offline").output().unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let top = |o: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(o).unwrap();
        v["predictions"][0]["index"]
            .as_u64()
            .or_else(|| v[0]["predictions"][0]["index"].as_u64())
    };
    assert_eq!(top(&out.stdout), top(&reference_output()));
}

#[test]
fn http_errors_truncation_and_corrupt_archives_leave_nothing_behind() {
    let tgz = bytes("mobilenet_v1_0.25_128.tgz");
    let mut garbage = tgz.clone();
    garbage[tgz.len() / 2..].fill(0x5a);
    let cases: Vec<(Reply, &str)> = vec![
        (Reply::Status(404), "HTTP 404"),
        (Reply::Status(500), "HTTP 500"),
        (Reply::Truncated(tgz.clone(), tgz.len() / 3), "truncated"),
        (Reply::Body(garbage), "not usable weights"),
    ];
    for (reply, expected) in cases {
        let env = Env::new();
        env.server.route(RELEASE, reply.clone());
        env.server.route(HUB, reply);
        let out = env.classify().output().unwrap();
        let err = stderr_of(&out);
        // A network failure is a failure (1), not a usage error, in every command (issue 11).
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(out.stdout.is_empty());
        assert!(
            err.contains("no source gave usable weights for mobilenet_v1_0.25_128"),
            "{err}"
        );
        assert!(
            err.contains(&format!("release tarball {}{RELEASE}: ", env.server.base)),
            "{err}"
        );
        assert!(
            err.matches(expected).count() >= 2,
            "expected '{expected}' for both sources: {err}"
        );
        assert_eq!(env.cache_entries(), Vec::<String>::new(), "{expected}");
    }
}

#[test]
fn a_stalled_server_times_out() {
    let env = Env::new();
    let tgz = bytes("mobilenet_v1_0.25_128.tgz");
    env.server.route(
        RELEASE,
        Reply::Stall {
            body: tgz.clone(),
            sent: 1000,
            for_: Duration::from_secs(30),
        },
    );
    env.server.route(
        HUB,
        Reply::Stall {
            body: tgz,
            sent: 0,
            for_: Duration::from_secs(30),
        },
    );
    let started = std::time::Instant::now();
    let out = env
        .classify()
        .env("MNV1_HTTP_TIMEOUT", "1")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert_eq!(err.matches("(stalled)").count(), 4, "{err}"); // noted per source, then summed up
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "gave up long before the server would have"
    );
    assert_eq!(env.cache_entries(), Vec::<String>::new());
}

#[test]
fn four_concurrent_cold_processes_download_once() {
    let env = Env::new();
    env.server.route(
        RELEASE,
        Reply::Slow(
            bytes("mobilenet_v1_0.25_128.tgz"),
            Duration::from_millis(700),
        ),
    );
    let children: Vec<_> = (0..4)
        .map(|_| {
            let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("mnv1"));
            c.env("MNV1_CACHE", env.cache())
                .env("MNV1_MIRROR", &env.server.base)
                .env("MNV1_HUB_BASE", &env.server.base)
                .env("HF_ENDPOINT", &env.server.base)
                .env("HF_HOME", env.dir.path().join("hf"))
                .env_remove("MNV1_OFFLINE")
                .env_remove("HF_HUB_OFFLINE")
                .arg("classify")
                .arg(image())
                .args(["--variant", "025_128", "--format", "json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            c.spawn().unwrap()
        })
        .collect();
    let reference = reference_output();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr_of(&out));
        assert_eq!(out.stdout, reference);
    }
    assert_eq!(env.server.count(RELEASE), 1, "{:?}", env.server.requests());
    assert_eq!(env.cache_entries(), vec![CACHED.to_string()]);
}

#[test]
fn offline_with_an_empty_cache_names_the_fetch_command() {
    let env = Env::new();
    for (flag, var) in [(Some("--offline"), None), (None, Some("HF_HUB_OFFLINE"))] {
        let mut c = env.classify();
        if let Some(f) = flag {
            c.arg(f);
        }
        if let Some(v) = var {
            c.env(v, "1");
        }
        let out = c.output().unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("mnv1 fetch --variant 025_128"), "{err}");
    }
    assert!(env.server.requests().is_empty());
    assert_eq!(env.cache_entries(), Vec::<String>::new());
}

#[test]
fn mirror_flag_and_cache_subcommands() {
    let env = Env::new();
    let other = Server::start();
    other.route(
        &format!("/tf{RELEASE}"),
        Reply::Body(bytes("mobilenet_v1_0.25_128.tgz")),
    );
    let mirror = format!("{}/tf/", other.base);
    env.cmd()
        .args(["fetch", "-m", "0.25_128", "--mirror", &mirror])
        .assert()
        .success();
    assert_eq!(other.requests(), vec![format!("/tf{RELEASE}")]);
    assert!(
        env.server.requests().is_empty(),
        "--mirror wins over MNV1_MIRROR"
    );

    let path = env.cmd().args(["cache", "path"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&path.stdout).trim(),
        env.cache().display().to_string()
    );
    let list = env.cmd().args(["cache", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.status.success());
    assert!(
        text.starts_with("mobilenet_v1_0.25_128\t") && text.contains("\tok\t"),
        "{text}"
    );
    env.cmd()
        .args(["cache", "rm", "--variant", "025_128"])
        .assert()
        .success();
    assert_eq!(env.cache_entries(), Vec::<String>::new());
    let list = env.cmd().args(["cache", "list"]).output().unwrap();
    assert!(list.stdout.is_empty());
}

/// 025_128 with a Hugging Face repository: the registry names one only for 1.0_224 and 0.75_192,
/// whose weights are too large for a fixture; the code path is the same.
fn variant_with_hf_repo(sha256: Option<&str>) -> Variant {
    let mut v = Registry::builtin()
        .resolve("025_128", Head::Logits)
        .unwrap()
        .clone();
    v.hf_repo = Some("google/mobilenet_v1_0.25_128".into());
    v.sha256 = sha256.map(str::to_string);
    v
}

fn serve_hf(server: &Server) {
    for f in ["config.json", "model.safetensors"] {
        server.route(
            &format!("/google/mobilenet_v1_0.25_128/resolve/main/{f}"),
            Reply::Hf(bytes(&format!("hf_025_128/{f}"))),
        );
    }
}

#[test]
fn the_hugging_face_repository_is_fetched_through_hf_endpoint() {
    let env = Env::new();
    serve_hf(&env.server);
    let path = hub::ensure_weights(&variant_with_hf_repo(None), &env.options()).unwrap();
    assert_eq!(path, env.cache().join(CACHED));
    let reqs = env.server.requests();
    assert_eq!(reqs[0], RELEASE);
    assert_eq!(reqs[1], HUB);
    // hf-hub: a ranged probe, then the body, per file.
    let base = "/google/mobilenet_v1_0.25_128/resolve/main";
    assert_eq!(
        reqs[2..],
        [
            format!("{base}/config.json"),
            format!("{base}/config.json"),
            format!("{base}/model.safetensors"),
            format!("{base}/model.safetensors")
        ]
    );
    // Transposed back from OIHW / Linear: bit for bit the TF checkpoint.
    let cached = weights::load(&path).unwrap();
    let direct = weights::load(&fixture("mobilenet_v1_0.25_128.tgz")).unwrap();
    assert_eq!(cached.tensors, direct.tensors);
    assert!(
        env.dir
            .path()
            .join("hf/hub/models--google--mobilenet_v1_0.25_128")
            .is_dir(),
        "hf-hub's own cache"
    );

    // Offline, the hf-hub cache alone can refill mnv1's cache.
    fs::remove_file(&path).unwrap();
    let mut offline = env.options();
    offline.offline = true;
    hub::ensure_weights(&variant_with_hf_repo(None), &offline).unwrap();
    assert_eq!(env.server.requests().len(), 6);
}

#[test]
fn transformers_safetensors_work_as_weights() {
    let out = Command::cargo_bin("mnv1")
        .unwrap()
        .arg("classify")
        .arg(image())
        .args(["--variant", "025_128", "--format", "json", "--weights"])
        .arg(fixture("hf_025_128/model.safetensors"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert_eq!(out.stdout, reference_output());
}

#[test]
fn a_pinned_sha256_is_enforced() {
    let tgz = bytes("mobilenet_v1_0.25_128.tgz");
    let env = Env::new();
    env.server.route(RELEASE, Reply::Body(tgz.clone()));
    let wrong = "0".repeat(64);
    let err = hub::ensure_weights(&variant_with_hf_repo(Some(&wrong)), &env.options()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HubError::AllSourcesFailed { .. }));
    assert!(
        msg.contains(&format!(
            "sha256 mismatch: expected {wrong}, got {}",
            sha256_hex(&tgz)
        )),
        "{msg}"
    );
    assert_eq!(env.cache_entries(), Vec::<String>::new());
    let right = sha256_hex(&tgz).to_uppercase();
    hub::ensure_weights(&variant_with_hf_repo(Some(&right)), &env.options()).unwrap();
    assert_eq!(env.cache_entries(), vec![CACHED.to_string()]);
}

// Issue 11 (hardening), item 5: protocol surprises are failed sources, never a panic.

#[test]
fn redirects_to_other_schemes_loops_and_oversized_downloads_fail_the_source_only() {
    // A redirect to file:// (ureq 2 panicked on it when following redirects itself), then the
    // TF-Hub module serves the weights.
    let env = Env::new();
    env.server
        .route(RELEASE, Reply::Redirect("file:///etc/passwd".into()));
    env.server
        .route(HUB, Reply::Body(bytes("hub_025_128.tar.gz")));
    let out = env.classify().output().unwrap();
    let err = stderr_of(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("only http and https URLs are followed"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.stdout, reference_output());

    // A relative redirect is followed; a loop ends with a message.
    let env = Env::new();
    env.server
        .route(RELEASE, Reply::Redirect("/moved.tgz".into()));
    env.server.route(
        "/moved.tgz",
        Reply::Body(bytes("mobilenet_v1_0.25_128.tgz")),
    );
    env.cmd()
        .args(["fetch", "-m", "025_128"])
        .assert()
        .success();
    assert_eq!(env.server.requests(), vec![RELEASE, "/moved.tgz"]);
    let env = Env::new();
    env.server.route(RELEASE, Reply::Redirect(RELEASE.into()));
    // `fetch` names the checkpoint by its feature-vector module.
    env.server.route(
        &HUB.replace("classification", "feature_vector"),
        Reply::Redirect("ftp://example.com/x".into()),
    );
    let out = env.cmd().args(["fetch", "-m", "025_128"]).output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("more than 10 redirects"), "{err}");
    assert!(err.contains("ftp://example.com/x"), "{err}");
    assert_eq!(env.cache_entries(), Vec::<String>::new());

    // The size cap: announced (Content-Length) or counted.
    let env = Env::new();
    env.server
        .route(RELEASE, Reply::Body(bytes("mobilenet_v1_0.25_128.tgz")));
    let out = env
        .cmd()
        .env("MNV1_MAX_DOWNLOAD_BYTES", "1000")
        .args(["fetch", "-m", "025_128"])
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("larger than the 1000-byte limit"), "{err}");
    assert_eq!(env.cache_entries(), Vec::<String>::new());
    env.cmd()
        .env("MNV1_MAX_DOWNLOAD_BYTES", "lots")
        .args(["fetch", "-m", "025_128"])
        .assert()
        .code(2);
}

#[test]
fn a_hugging_face_redirect_to_a_file_url_is_a_failed_source() {
    let env = Env::new();
    let base = "/google/mobilenet_v1_0.25_128/resolve/main";
    // An absolute redirect hf-hub hands to its redirect-following client, whose next hop
    // leaves HTTP.
    env.server.route(
        &format!("{base}/config.json"),
        Reply::Redirect(format!("{}/hop", env.server.base)),
    );
    env.server
        .route("/hop", Reply::Redirect("file:///etc/passwd".into()));
    let err = hub::ensure_weights(&variant_with_hf_repo(None), &env.options()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HubError::AllSourcesFailed { .. }), "{msg}");
    assert!(msg.contains("Hugging Face repository"), "{msg}");
    assert_eq!(env.cache_entries(), Vec::<String>::new());
}

#[test]
fn stale_downloads_of_killed_runs_are_removed_and_cache_rm_removes_only_mnv1_files() {
    let env = Env::new();
    fs::create_dir_all(env.cache()).unwrap();
    // A pid that is gone: a child already waited for.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = [
        format!(".download-{dead}-AbCdEf.part"),
        format!(".convert-{dead}-AbCdEf"),
    ];
    for s in &stale {
        fs::write(env.cache().join(s), b"partial").unwrap();
    }
    let live = format!(".download-{}-AbCdEf.part", std::process::id());
    fs::write(env.cache().join(&live), b"in progress").unwrap();
    fs::write(env.cache().join("notes.safetensors"), b"the user's").unwrap();
    fs::write(env.cache().join(CACHED), b"damaged").unwrap();
    env.cmd().args(["cache", "rm", "--all"]).assert().success();
    assert_eq!(
        env.cache_entries(),
        vec![live.clone(), "notes.safetensors".to_string()]
    );
    // The next fetch cleans up too.
    for s in &stale {
        fs::write(env.cache().join(s), b"partial").unwrap();
    }
    env.server
        .route(RELEASE, Reply::Body(bytes("mobilenet_v1_0.25_128.tgz")));
    env.cmd()
        .args(["fetch", "-m", "025_128"])
        .assert()
        .success();
    assert_eq!(
        env.cache_entries(),
        vec![live, CACHED.to_string(), "notes.safetensors".to_string()]
    );
}

#[test]
fn a_cache_setting_that_is_a_file_is_a_configuration_error() {
    let env = Env::new();
    let file = env.dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    for args in [
        vec!["cache", "list"],
        vec!["fetch", "-m", "025_128"],
        vec!["list"],
    ] {
        let out = env
            .cmd()
            .env("MNV1_CACHE", &file)
            .args(&args)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("MNV1_CACHE") && err.contains("not a directory"),
            "{err}"
        );
    }
    assert_eq!(fs::read(&file).unwrap(), b"x");
}
