//! `edgehook check`, `--help` and `--version`.

use std::process::Command;

fn edgehook(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(args)
        .output()
        .expect("run edgehook")
}

#[test]
fn check_accepts_every_shipped_config() {
    let out = edgehook(&["check", "--config", "config/edgehook.toml"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
}

#[test]
fn check_output_to_a_closed_pipe_is_no_panic() {
    // `edgehook check | head -0`: the reader is gone before the verdict is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_edgehook"))
        .args(["check", "--config", "config/edgehook.toml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run edgehook");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn check_reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[server]
listen = ["127.0.0.1:8080"]
colour = "blue"
[server.tls]
listen = ["127.0.0.1:8443"]
cert = "missing-cert.pem"
key = "missing-key.pem"

[origins.app]
url = "http://127.0.0.1:9000"
read_timeout = "forever"

[[behaviors]]
path = "/a/*"
origin = "ghost"
[[behaviors]]
path = "*"
origin = "app"
"#,
    )
    .unwrap();
    let out = edgehook(&["check", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for expected in [
        format!("{file}:4:1: unknown key `server.colour`"),
        format!("{file}:7:1: `server.tls.cert` cannot read"),
        format!("{file}:8:1: `server.tls.key` cannot read"),
        format!("{file}:12:1: `origins.app.read_timeout` `forever`"),
        format!("{file}:16:1: `behaviors[0].origin` names origin `ghost`"),
        "5 problem(s)".to_string(),
    ] {
        assert!(stderr.contains(&expected), "missing `{expected}` in:\n{stderr}");
    }
}

#[test]
fn check_reports_unreadable_file() {
    let out = edgehook(&["check", "--config", "/nonexistent/edgehook.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn serve_refuses_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[origins.app]\nurl = \"nope\"\n").unwrap();
    let out = edgehook(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not serving an invalid configuration"));
}

#[test]
fn help_and_version_on_every_command() {
    let version = env!("CARGO_PKG_VERSION");
    for args in [
        vec![],
        vec!["serve"],
        vec!["check"],
        vec!["invoke"],
        vec!["event"],
        vec!["deploy"],
    ] {
        let mut with_help = args.clone();
        with_help.push("--help");
        let out = edgehook(&with_help);
        assert!(out.status.success(), "{with_help:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: edgehook"),
            "{with_help:?}"
        );
        let mut with_version = args.clone();
        with_version.push("--version");
        let out = edgehook(&with_version);
        assert!(out.status.success(), "{with_version:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(version),
            "{with_version:?}"
        );
    }
}

#[test]
fn check_counts_distributions_and_warns_of_a_wildcard_over_another_sites_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sites.toml");
    std::fs::write(
        &path,
        r#"[origins.app]
url = "http://127.0.0.1:9000"
[distributions.www]
domains = ["www.example.test"]
[[distributions.www.behaviors]]
path = "*"
origin = "app"
[distributions.rest]
domains = ["*.example.test"]
[[distributions.rest.behaviors]]
path = "*"
origin = "app"
"#,
    )
    .unwrap();
    let out = edgehook(&["check", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("valid (2 distributions, 1 origins, 2 behaviors)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(
            "warning: distributions.rest.domains: `*.example.test` also covers `www.example.test`, a domain of distribution `www`, which serves it"
        ),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_warns_of_certificate_names_no_distribution_serves() {
    let dir = tempfile::tempdir().unwrap();
    let pair = rcgen::generate_simple_self_signed(vec!["www.example.test".into(), "old.example.test".into()]).unwrap();
    std::fs::write(dir.path().join("www.pem"), pair.cert.pem()).unwrap();
    std::fs::write(dir.path().join("www-key.pem"), pair.key_pair.serialize_pem()).unwrap();
    let path = dir.path().join("sites.toml");
    std::fs::write(
        &path,
        format!(
            "[server.tls]\nlisten = [\"127.0.0.1:8443\"]\n[origins.app]\nurl = \"http://127.0.0.1:9000\"\n[distributions.www]\ndomains = [\"www.example.test\"]\ntls = {{ cert = \"{dir}/www.pem\", key = \"{dir}/www-key.pem\" }}\n[[distributions.www.behaviors]]\npath = \"*\"\norigin = \"app\"\n",
            dir = dir.path().display()
        ),
    )
    .unwrap();
    let out = edgehook(&["check", "--config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: distributions.www.tls: ")
            && stderr.contains("also names `old.example.test`, which no distribution serves"),
        "{stderr}"
    );
    assert!(!stderr.contains("`www.example.test`, which"), "{stderr}");
}
