//! Real etcd servers (Debian's `etcd-server`) on loopback ports, one member or a cluster, each
//! with its data in a temporary directory; members can be killed and started again.

use super::free_addr;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Member {
    name: String,
    client: SocketAddr,
    peer: SocketAddr,
    data: tempfile::TempDir,
    child: Option<Child>,
}

pub struct EtcdCluster {
    members: Vec<Member>,
    initial_cluster: String,
    token: String,
    /// The certificate and key clients are served with (TLS), as PEM files.
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// The etcd binary, or None (with the reason printed) when it is not installed.
fn etcd_binary() -> Option<String> {
    let binary = std::env::var("EDGEHOOK_TEST_ETCD").unwrap_or_else(|_| "etcd".into());
    match Command::new(&binary).arg("--version").output() {
        Ok(out) if out.status.success() => Some(binary),
        _ => {
            eprintln!("SKIPPED: no etcd server (`{binary}`); install Debian's etcd-server (scripts/setup does)");
            None
        }
    }
}

impl EtcdCluster {
    /// Starts `size` members and waits until the cluster answers; None when etcd is not
    /// installed.
    pub async fn start(size: usize) -> Option<EtcdCluster> {
        Self::start_with(size, None).await
    }

    /// One member serving clients over TLS with the PEM `cert` and `key` files.
    pub async fn start_tls(cert: std::path::PathBuf, key: std::path::PathBuf) -> Option<EtcdCluster> {
        Self::start_with(1, Some((cert, key))).await
    }

    async fn start_with(size: usize, tls: Option<(std::path::PathBuf, std::path::PathBuf)>) -> Option<EtcdCluster> {
        etcd_binary()?;
        let members: Vec<Member> = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client: free_addr(),
                peer: free_addr(),
                data: tempfile::tempdir().expect("etcd data directory"),
                child: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://{}", m.name, m.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members,
            initial_cluster,
            token: format!("edgehook-test-{}", std::process::id()),
            tls,
        };
        for index in 0..size {
            cluster.spawn(index);
        }
        cluster.wait_ready(&(0..size).collect::<Vec<_>>()).await;
        Some(cluster)
    }

    fn spawn(&mut self, index: usize) {
        let binary = etcd_binary().expect("etcd");
        let member = &mut self.members[index];
        let log = std::fs::File::create(member.data.path().join("etcd.log")).expect("etcd log");
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://{}", member.client);
        let peer = format!("http://{}", member.peer);
        let mut command = Command::new(binary);
        if let Some((cert, key)) = &self.tls {
            command.arg("--cert-file").arg(cert).arg("--key-file").arg(key);
        }
        let child = command
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(member.data.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            // Quick elections, so a killed leader is replaced within the tests' patience.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        member.child = Some(child);
    }

    /// Waits until the members `indexes` answer a read through the cluster (20 s at most).
    async fn wait_ready(&self, indexes: &[usize]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for &index in indexes {
            let endpoint = self.endpoint(index);
            loop {
                let ready = async {
                    if self.tls.is_some() {
                        // Reachable is enough here; the test speaks TLS itself.
                        return tokio::net::TcpStream::connect(self.members[index].client)
                            .await
                            .ok()
                            .map(|_| ());
                    }
                    let mut client = etcd_client::Client::connect([endpoint.as_str()], None).await.ok()?;
                    client.get("ready-check", None).await.ok().map(|_| ())
                };
                if tokio::time::timeout(Duration::from_secs(2), ready)
                    .await
                    .ok()
                    .flatten()
                    .is_some()
                {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "etcd member {index} did not start:\n{}",
                    self.log(index)
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    pub fn endpoint(&self, index: usize) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.members[index].client)
    }

    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.members[index].data.path().join("etcd.log")).unwrap_or_default()
    }

    /// Kills member `index` at once (SIGKILL).
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `index` again on its data and ports, and waits until it answers.
    pub async fn restart(&mut self, index: usize) {
        self.spawn(index);
        self.wait_ready(&[index]).await;
    }

    /// Starts member `index` again without waiting (a cluster of which no member runs needs
    /// several back before any answers: see `wait_all`).
    pub fn spawn_again(&mut self, index: usize) {
        self.spawn(index);
    }

    /// Waits until every member answers.
    pub async fn wait_all(&self) {
        self.wait_ready(&(0..self.members.len()).collect::<Vec<_>>()).await;
    }

    /// A client of member `index`, for what a test does to etcd itself (compaction).
    pub async fn client(&self, index: usize) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint(index)], None)
            .await
            .expect("connect to etcd")
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}
