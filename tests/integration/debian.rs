//! The Debian package (scripts/package): installed with dpkg, its unit checked by
//! systemd-analyze, and the binary run as the unit runs it (its user, its command line, its
//! readiness notification, reload and stop signals). Needs root and a package built before the
//! tests (scripts/test builds it); skipped otherwise.

use crate::support::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const UNIT: &str = "/usr/lib/systemd/system/edgehook.service";

/// The newest package scripts/package built, or None (with the reason printed).
fn built_package() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let newest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    if newest.is_none() {
        eprintln!("SKIPPED: no package in {}; scripts/package builds it", dir.display());
    }
    newest
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn succeeds(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?}:\n{text}");
    text
}

/// The package installed; purged (with everything it made) when dropped.
struct Installed;

impl Installed {
    fn install(deb: &Path) -> Installed {
        succeeds("dpkg", &["-i", &deb.to_string_lossy()]);
        Installed
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "edgehook"]);
    }
}

/// What `getent passwd edgehook` says: (uid, home, shell).
fn service_user() -> (u32, String, String) {
    let entry = succeeds("getent", &["passwd", "edgehook"]);
    let fields: Vec<&str> = entry.trim().split(':').collect();
    (fields[2].parse().unwrap(), fields[5].to_string(), fields[6].to_string())
}

/// Waits (up to 20 s) for a datagram on `socket` that contains `state`.
fn wait_for_notification(socket: &UnixDatagram, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buffer = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "no {state} from edgehook");
        if let Ok(n) = socket.recv(&mut buffer) {
            if String::from_utf8_lossy(&buffer[..n]).lines().any(|l| l == state) {
                return;
            }
        }
    }
}

#[tokio::test]
async fn the_debian_package_installs_and_serves_as_its_unit_runs_it() {
    let Some(deb) = built_package() else { return };
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: installing a package needs root");
        return;
    }
    let _ = run("dpkg", &["--purge", "edgehook"]);
    let _installed = Installed::install(&deb);

    for file in [
        "/usr/bin/edgehook",
        "/etc/edgehook/edgehook.toml",
        "/etc/default/edgehook",
        "/etc/logrotate.d/edgehook",
        "/usr/share/edgehook/grafana/edgehook.json",
        "/usr/share/edgehook/prometheus/alerts.yml",
        UNIT,
    ] {
        assert!(Path::new(file).exists(), "the package installs {file}");
    }
    let conffiles = succeeds("dpkg-query", &["--showformat=${Conffiles}", "--show", "edgehook"]);
    assert!(conffiles.contains("/etc/edgehook/edgehook.toml"), "{conffiles}");
    let (uid, home, shell) = service_user();
    assert_ne!(uid, 0);
    assert_eq!(home, "/var/lib/edgehook");
    assert!(shell.ends_with("nologin") || shell.ends_with("false"), "{shell}");
    for dir in ["/var/lib/edgehook", "/var/cache/edgehook", "/var/log/edgehook"] {
        assert_eq!(std::fs::metadata(dir).unwrap().uid(), uid, "{dir} belongs to edgehook");
    }

    // The unit: what it runs and how it is fenced in.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "Type=notify",
        "User=edgehook",
        "ExecStartPre=/usr/bin/edgehook check --config /etc/edgehook/edgehook.toml",
        "ExecStart=/usr/bin/edgehook serve --config /etc/edgehook/edgehook.toml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "StateDirectory=edgehook",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit has {line}:\n{unit}");
    }
    if Command::new("systemd-analyze").arg("--version").output().is_ok() {
        let verified = run("systemd-analyze", &["verify", UNIT]);
        let said = String::from_utf8_lossy(&verified.stderr);
        assert!(
            verified.status.success() && !said.contains("edgehook.service:"),
            "systemd-analyze verify:\n{said}"
        );
    } else {
        eprintln!("SKIPPED: systemd-analyze verify (no systemd-analyze)");
    }

    // The packaged configuration, with only its addresses changed to free loopback ports and
    // a test origin, run by the packaged binary as the unit's user, its ExecStartPre first.
    let origin = Origin::start(|_| Reply::ok("from the origin")).await;
    let (listen, admin) = (free_addr(), free_addr());
    let config = std::fs::read_to_string("/etc/edgehook/edgehook.toml")
        .unwrap()
        .replace("127.0.0.1:8080", &listen.to_string())
        .replace("127.0.0.1:9901", &admin.to_string())
        .replace("http://127.0.0.1:8000", &origin.url());
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config_path = dir.path().join("edgehook.toml");
    std::fs::write(&config_path, config).unwrap();
    std::fs::set_permissions(&config_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let as_edgehook = ["--reuid=edgehook", "--regid=edgehook", "--init-groups", "--"];
    let config_arg = config_path.to_string_lossy().to_string();
    let mut check = as_edgehook.to_vec();
    check.extend(["/usr/bin/edgehook", "check", "--config", &config_arg]);
    succeeds("setpriv", &check);

    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    std::fs::set_permissions(&notify_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    notify.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut serve = as_edgehook.to_vec();
    serve.extend(["/usr/bin/edgehook", "serve", "--config", &config_arg]);
    let mut child = Command::new("setpriv")
        .args(&serve)
        .env("NOTIFY_SOCKET", &notify_path)
        .env("EDGEHOOK_ADMIN_TOKEN", "packaged-token")
        .current_dir("/")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let notified = tokio::task::spawn_blocking(move || {
        wait_for_notification(&notify, "READY=1");
        notify
    });
    let notify = notified
        .await
        .unwrap_or_else(|_| panic!("no readiness; log:\n{}", log()));

    let response = client().get(format!("http://{listen}/page")).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", log());
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(response.text().await.unwrap(), "from the origin");
    let access_log = Path::new("/var/log/edgehook/access.log");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(access_log)
        .unwrap_or_default()
        .contains(&request_id)
    {
        assert!(
            Instant::now() < deadline,
            "no access line for {request_id}; log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::metadata(access_log).unwrap().uid(), uid, "written as edgehook");

    // ExecReload's SIGHUP reloads; the admin token comes from the unit's environment.
    let pid = child.id() as i32;
    // SAFETY: kill with a valid signal number on our own child.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log().contains("configuration reloaded") {
        assert!(Instant::now() < deadline, "no reload; log:\n{}", log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reload = client()
        .post(format!("http://{admin}/reload"))
        .bearer_auth("packaged-token")
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);

    // systemd's stop: SIGTERM, drained, exit 0, having said it was stopping.
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let stopped = tokio::task::spawn_blocking(move || {
        wait_for_notification(&notify, "STOPPING=1");
        child.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(stopped.success(), "exit status {stopped}; log:\n{}", log());
}
