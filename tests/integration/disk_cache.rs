//! The disk tier (`[cache] disk`): objects survive restarts and memory eviction, a `kill -9`
//! mid-write never leaves a torn object to serve, a failing disk costs only its tier, and
//! purges empty both tiers.

use crate::support::*;
use std::path::Path;
use std::time::Duration;

/// A cache of 1 MiB in memory (objects up to `memory_max`) over 64 MiB on disk.
fn config(origin: &Origin, disk: &Path, memory_max: &str) -> String {
    format!(
        "[cache]\nmemory = \"1MiB\"\nmemory_max_object_size = \"{memory_max}\"\nmax_object_size = \"16MiB\"\ndisk = {{ path = \"{}\", size = \"64MiB\" }}\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        disk.display(),
        origin.url()
    )
}

/// A body whose every byte depends on its position, so any misplaced byte shows.
fn pattern(bytes: usize, seed: usize) -> Vec<u8> {
    (0..bytes).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect()
}

fn size_of(path: &str) -> usize {
    match path {
        p if p.starts_with("/big") => 3 << 20,
        p if p.starts_with("/mid") => 100_000,
        _ => 2_000,
    }
}

fn seed_of(path: &str) -> usize {
    path.bytes().map(usize::from).sum()
}

async fn origin() -> Origin {
    Origin::start(|seen| {
        let path = seen.uri.split('?').next().unwrap_or_default().to_string();
        let max_age = if path.starts_with("/short") { 2 } else { 600 };
        Reply::ok(pattern(size_of(&path), seed_of(&path)))
            .header("cache-control", &format!("max-age={max_age}"))
            .header("content-type", "application/octet-stream")
    })
    .await
}

/// The host is part of the cache key, and each process listens on a new port.
const HOST: &str = "www.example.test";

/// A request for `path` naming the site's host.
fn request(edge: &Edgehook, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    client().request(method, edge.url(path)).header("host", HOST)
}

/// A range of `path`.
async fn get_range(edge: &Edgehook, path: &str, range: &str) -> reqwest::Response {
    request(edge, reqwest::Method::GET, path)
        .header("range", range)
        .send()
        .await
        .unwrap()
}

async fn get(edge: &Edgehook, path: &str) -> (String, Vec<u8>) {
    let response = request(edge, reqwest::Method::GET, path).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let x_cache = response.headers()["x-cache"].to_str().unwrap().to_string();
    (x_cache, response.bytes().await.unwrap().to_vec())
}

async fn assert_served(edge: &Edgehook, path: &str, expected_cache: &str) {
    let (x_cache, body) = get(edge, path).await;
    assert_eq!(x_cache, expected_cache, "{path}");
    assert!(body == pattern(size_of(path), seed_of(path)), "{path}: body differs");
}

fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} not in metrics:\n{page}"))
        .trim()
        .parse()
        .unwrap()
}

/// The object files under a disk tier's directory.
fn object_files(disk: &Path) -> usize {
    walk(&disk.join("objects"))
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| if e.path().is_dir() { walk(&e.path()) } else { 1 })
                .sum()
        })
        .unwrap_or(0)
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..250 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn objects_on_disk_are_served_after_a_restart_without_the_origin() {
    let origin = origin().await;
    let disk = tempfile::tempdir().unwrap();
    let paths = ["/small", "/mid", "/big", "/short"];
    let fetched = std::time::Instant::now();
    {
        let edge = Edgehook::start(&config(&origin, disk.path(), "64KiB")).await;
        for path in paths {
            assert_served(&edge, path, "Miss from edgehook").await;
        }
        wait_for("four files on disk", || object_files(disk.path()) == 4).await;
        edge.signal(libc::SIGTERM);
    }
    let edge = Edgehook::start(&config(&origin, disk.path(), "64KiB")).await;
    for path in paths {
        assert_served(&edge, path, "Hit from edgehook").await;
        assert_eq!(origin.count(path), 1, "{path} came from the disk, not the origin");
    }
    // Only the remaining TTL is honoured: the time before the restart counts.
    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(fetched.elapsed())).await;
    let response = request(&edge, reqwest::Method::GET, "/small").send().await.unwrap();
    let age: u64 = response.headers()["age"].to_str().unwrap().parse().unwrap();
    assert!(age >= 2, "age {age} must count the time before the restart");
    assert_served(&edge, "/short", "Miss from edgehook").await;
    assert_eq!(origin.count("/short"), 2, "max-age=2 ran out across the restart");
    let page = edge.metrics_page().await;
    assert!(metric(&page, "edgehook_cache_disk_hits_total") >= 4.0);
    assert_eq!(metric(&page, "edgehook_cache_objects{tier=\"disk\"}"), 4.0);

    // Ranges come from the disk object byte-exact, single and multiple.
    let big = pattern(size_of("/big"), seed_of("/big"));
    let range = get_range(&edge, "/big", "bytes=1000000-1999999").await;
    assert_eq!(range.status(), 206);
    assert_eq!(range.bytes().await.unwrap(), &big[1_000_000..2_000_000]);
    let multi = get_range(&edge, "/big", "bytes=0-9,3000000-3000009").await;
    assert_eq!(multi.status(), 206);
    let content_type = multi.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("multipart/byteranges"), "{content_type}");
    let text = multi.bytes().await.unwrap();
    let find = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
    assert!(find(&big[..10]) && find(&big[3_000_000..3_000_010]));
    assert_eq!(origin.total(), 5);
}

#[tokio::test]
async fn objects_evicted_from_memory_are_served_from_disk_and_promoted() {
    let origin = origin().await;
    let disk = tempfile::tempdir().unwrap();
    let edge = Edgehook::start(&config(&origin, disk.path(), "128KiB")).await;
    // 40 objects of 100 kB: four times what the 1 MiB memory tier holds.
    let paths: Vec<String> = (0..40).map(|i| format!("/mid{i}")).collect();
    for path in &paths {
        assert_served(&edge, path, "Miss from edgehook").await;
    }
    for path in &paths {
        assert_served(&edge, path, "Hit from edgehook").await;
        assert_eq!(origin.count(path), 1, "{path}");
    }
    let page = edge.metrics_page().await;
    assert!(metric(&page, "edgehook_cache_bytes{tier=\"memory\"}") <= (1 << 20) as f64);
    assert!(
        metric(&page, "edgehook_cache_disk_hits_total") >= 20.0,
        "most of the early objects had left memory"
    );
    // A disk hit is promoted once its answer is sent: asked again, it soon comes from memory.
    assert_served(&edge, &paths[0], "Hit from edgehook").await;
    let mut disk_hits = metric(&edge.metrics_page().await, "edgehook_cache_disk_hits_total");
    for attempt in 0.. {
        assert!(attempt < 20, "every hit of {} still came from disk", paths[0]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_served(&edge, &paths[0], "Hit from edgehook").await;
        let now = metric(&edge.metrics_page().await, "edgehook_cache_disk_hits_total");
        if now == disk_hits {
            break;
        }
        disk_hits = now;
    }
}

#[tokio::test]
async fn a_kill_9_during_a_large_write_leaves_no_torn_object() {
    let disk = tempfile::tempdir().unwrap();
    let pieces: Vec<Vec<u8>> = (0..40).map(|i| vec![b'a' + (i % 26) as u8; 64 << 10]).collect();
    let whole: Vec<u8> = pieces.concat();
    let served = pieces.clone();
    let origin = Origin::start(move |_| {
        Reply::streamed(served.clone(), Duration::from_millis(50)).header("cache-control", "max-age=600")
    })
    .await;
    let edge = Edgehook::start(&config(&origin, disk.path(), "64KiB")).await;
    let mut response = client().get(edge.url("/slow")).send().await.unwrap();
    let mut received = 0;
    while received < 5 * (64 << 10) {
        received += response.chunk().await.unwrap().expect("more body").len();
    }
    assert_eq!(walk(&disk.path().join("tmp")), 1, "the object is being written");
    edge.signal(libc::SIGKILL);
    drop(response);
    drop(edge);
    assert_eq!(object_files(disk.path()), 0, "no object was published");

    // Power loss could leave a renamed file cut short: it is refused too.
    let edge = Edgehook::start(&config(&origin, disk.path(), "64KiB")).await;
    let (x_cache, body) = get(&edge, "/slow").await;
    assert_eq!(x_cache, "Miss from edgehook");
    assert!(body == whole);
    assert_eq!(origin.count("/slow"), 2);
    wait_for("the dead writer's temporary file removed", || {
        walk(&disk.path().join("tmp")) == 0
    })
    .await;
    wait_for("the object published", || object_files(disk.path()) == 1).await;
    edge.signal(libc::SIGTERM);
    drop(edge);
    let file = std::fs::read_dir(disk.path().join("objects"))
        .unwrap()
        .flatten()
        .flat_map(|dir| std::fs::read_dir(dir.path()).unwrap().flatten())
        .next()
        .unwrap()
        .path();
    let cut = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
    cut.set_len(cut.metadata().unwrap().len() / 2).unwrap();
    let edge = Edgehook::start(&config(&origin, disk.path(), "64KiB")).await;
    let (x_cache, body) = get(&edge, "/slow").await;
    assert_eq!(x_cache, "Miss from edgehook", "the torn object is not served");
    assert!(body == whole);
    assert_eq!(origin.count("/slow"), 3);
    let page = edge.metrics_page().await;
    assert!(metric(&page, "edgehook_cache_disk_errors_total") >= 1.0);
}

/// A directory that refuses writes once full: a 512 KiB tmpfs where mounting is allowed (root),
/// else a directory without write permission. Unmounted when dropped.
struct FailingDisk {
    dir: tempfile::TempDir,
    mounted: bool,
}

impl FailingDisk {
    fn new() -> FailingDisk {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o500)).unwrap();
        }
        FailingDisk { dir, mounted }
    }
}

impl Drop for FailingDisk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = std::process::Command::new("umount").arg(self.dir.path()).status();
        }
    }
}

#[tokio::test]
async fn a_full_or_unwritable_disk_costs_its_tier_not_requests() {
    let origin = origin().await;
    let full = FailingDisk::new();
    let edge = Edgehook::start(&config(&origin, full.dir.path(), "128KiB")).await;
    // 800 kB: more than the 512 kB disk takes, less than the memory tier's 1 MiB (beyond it,
    // pingora's sharded LRU may evict any of them, the newest included).
    let paths: Vec<String> = (0..8).map(|i| format!("/mid{i}")).collect();
    for path in &paths {
        assert_served(&edge, path, "Miss from edgehook").await;
    }
    // The memory tier still caches what the disk could not take.
    assert_served(&edge, &paths[7], "Hit from edgehook").await;
    let page = edge.metrics_page().await;
    assert!(metric(&page, "edgehook_cache_disk_errors_total") >= 1.0, "{page}");
    drop(edge);

    // A disk path that cannot be a directory at all.
    let file = tempfile::NamedTempFile::new().unwrap();
    let edge = Edgehook::start(&config(&origin, &file.path().join("cache"), "64KiB")).await;
    assert_served(&edge, "/small-a", "Miss from edgehook").await;
    assert_served(&edge, "/small-a", "Hit from edgehook").await;
    assert_eq!(origin.count("/small-a"), 1);
    let page = edge.metrics_page().await;
    assert!(metric(&page, "edgehook_cache_disk_errors_total") >= 1.0);
    assert_eq!(edge_health(&edge).await, 200);
}

async fn edge_health(edge: &Edgehook) -> u16 {
    client()
        .get(edge.admin_url("/healthz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn purges_and_unsafe_requests_empty_both_tiers() {
    let origin = origin().await;
    let disk = tempfile::tempdir().unwrap();
    let edge = Edgehook::start(&config(&origin, disk.path(), "64KiB")).await;
    for path in ["/img/a", "/img/b", "/keep", "/mid-posted"] {
        assert_served(&edge, path, "Miss from edgehook").await;
    }
    wait_for("four files on disk", || object_files(disk.path()) == 4).await;
    let (status, answer) = admin(
        &edge,
        reqwest::Method::POST,
        "/cache/purge",
        r#"{"paths":["/img/*"]}"#,
        true,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["purged"], 2);
    assert_eq!(object_files(disk.path()), 2);
    // A successful POST invalidates its path in both tiers (RFC 9111 4.4).
    let posted = request(&edge, reqwest::Method::POST, "/mid-posted")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 200);
    assert_eq!(object_files(disk.path()), 1);
    edge.signal(libc::SIGTERM);
    drop(edge);

    let edge = Edgehook::start(&config(&origin, disk.path(), "64KiB")).await;
    assert_served(&edge, "/img/a", "Miss from edgehook").await;
    assert_served(&edge, "/mid-posted", "Miss from edgehook").await;
    assert_served(&edge, "/keep", "Hit from edgehook").await;
}

#[tokio::test]
async fn disk_settings_are_checked() {
    let origin = origin().await;
    let dir = tempfile::tempdir().unwrap();
    let bad = format!(
        "[cache]\nmax_object_size = \"2GiB\"\ndisk = {{ path = \"{}\", size = \"1GiB\" }}\n[origins.app]\nurl = \"{}\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n",
        dir.path().display(),
        origin.url()
    );
    let config = write_config(dir.path(), free_addr(), free_addr(), free_addr(), "", &bad);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success());
    assert!(
        text.contains("cache.max_object_size") && text.contains("cache.disk.size"),
        "{text}"
    );
    let missing = bad.replace(", size = \"1GiB\"", "");
    let config = write_config(dir.path(), free_addr(), free_addr(), free_addr(), "", &missing);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("cache.disk.size") && text.contains("is required"),
        "{text}"
    );
}

#[tokio::test]
async fn a_process_started_by_serve_upgrade_serves_what_its_predecessor_stored() {
    let origin = origin().await;
    let disk = tempfile::tempdir().unwrap();
    let mut old = Edgehook::start(&config(&origin, disk.path(), "64KiB")).await;
    for path in ["/small", "/mid"] {
        assert_served(&old, path, "Miss from edgehook").await;
    }
    wait_for("two files on disk", || object_files(disk.path()) == 2).await;
    let config_path = old.log.parent().unwrap().join("edgehook.toml");
    let mut new = std::process::Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(["serve", "--upgrade", "--config"])
        .arg(&config_path)
        .env("TMPDIR", disk.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    old.signal(libc::SIGQUIT);
    let (code, old) = tokio::task::spawn_blocking(move || (old.wait_exit(Duration::from_secs(30)), old))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{}", old.log_text());
    // The successor listens on the same sockets; the old process's handle still names them.
    for path in ["/small", "/mid"] {
        assert_served(&old, path, "Hit from edgehook").await;
        assert_eq!(origin.count(path), 1, "{path}");
    }
    let _ = new.kill();
    let _ = new.wait();
}
