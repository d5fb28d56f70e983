//! A TCP gate in front of a server: forwards connections while open; closing it ends the
//! connections it carries and drops new ones at once, as a network partition would.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub struct TcpGate {
    pub address: SocketAddr,
    open: Arc<AtomicBool>,
    /// Bumped on every close; connections end when it moves.
    closings: tokio::sync::watch::Sender<u64>,
    _accepting: tokio::task::JoinHandle<()>,
}

impl TcpGate {
    pub async fn start(to: SocketAddr) -> TcpGate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the gate");
        let address = listener.local_addr().expect("gate address");
        let open = Arc::new(AtomicBool::new(true));
        let closings = tokio::sync::watch::channel(0u64).0;
        let accepting = {
            let (open, closings) = (open.clone(), closings.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !open.load(Ordering::SeqCst) {
                        continue;
                    }
                    let mut closed = closings.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = closed.changed() => {}
                        }
                    });
                }
            })
        };
        TcpGate {
            address,
            open,
            closings,
            _accepting: accepting,
        }
    }

    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.closings.send_modify(|n| *n += 1);
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}
