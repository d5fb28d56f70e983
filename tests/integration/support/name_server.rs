//! A name server on loopback for the tests of origin name resolution.

use hickory_resolver::proto::op::{Message, OpCode};
use hickory_resolver::proto::rr::rdata::A;
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use tokio::net::UdpSocket;

/// Per name: its IPv4 addresses and their TTL in seconds.
type Zone = HashMap<String, (Vec<Ipv4Addr>, u32)>;

/// An authoritative name server on loopback answering A queries from a table it can be
/// told to change, and counting the queries it got per name.
pub struct NameServer {
    pub address: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    queries: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl NameServer {
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let address = socket.local_addr().expect("address");
        let zone: Arc<Mutex<Zone>> = Arc::default();
        let queries: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (table, counts) = (zone.clone(), queries.clone());
        let task = tokio::spawn(async move {
            let mut buffer = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buffer).await {
                let Ok(query) = Message::from_vec(&buffer[..n]) else {
                    continue;
                };
                let mut answer = Message::response(query.metadata.id, OpCode::Query);
                answer.metadata.authoritative = true;
                answer.metadata.recursion_desired = query.metadata.recursion_desired;
                for question in &query.queries {
                    let name = question.name().to_string();
                    let name = name.trim_end_matches('.').to_string();
                    if question.query_type() == RecordType::A {
                        *counts.lock().entry(name.clone()).or_default() += 1;
                        if let Some((ips, ttl)) = table.lock().get(&name) {
                            for ip in ips {
                                answer.add_answer(Record::from_rdata(question.name().clone(), *ttl, RData::A(A(*ip))));
                            }
                        }
                    }
                    answer.add_query(question.clone());
                }
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        NameServer {
            address,
            zone,
            queries,
            task,
        }
    }

    pub fn set(&self, name: &str, ips: &[[u8; 4]], ttl: u32) {
        let ips = ips.iter().map(|ip| Ipv4Addr::from(*ip)).collect();
        self.zone.lock().insert(name.to_string(), (ips, ttl));
    }

    pub fn queries_for(&self, name: &str) -> usize {
        self.queries.lock().get(name).copied().unwrap_or(0)
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
