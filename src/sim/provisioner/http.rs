//! The Provisioner's metrics endpoint: a minimal HTTP/1.1 server on a loopback port.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::candidate::Candidate;
use crate::sim::tasks::Spawner;
use crate::sim::SimError;

/// Serves `/metrics` (the candidate that leads now, else the first) and `/<identity>/metrics`
/// until `spawner`'s owner is dropped; returns the URL of `/metrics`.
pub(super) async fn serve_metrics(candidates: Vec<Arc<Candidate>>, spawner: &Spawner) -> Result<String, SimError> {
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| SimError(format!("metrics listener: {e}")))?;
    let addr = listener.local_addr().map_err(|e| SimError(e.to_string()))?;
    let connections = spawner.clone();
    spawner.spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else { continue };
            // Each connection is owned too: a scraper that never reads cannot keep one alive.
            connections.spawn(answer(s, candidates.clone()));
        }
    });
    Ok(format!("http://{addr}/metrics"))
}

/// Reads one request and answers it with the chosen candidate's metrics, or 404.
async fn answer(mut s: tokio::net::TcpStream, candidates: Vec<Arc<Candidate>>) {
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap_or(0);
    let req = String::from_utf8_lossy(&buf[..n]);
    let path = req.split_whitespace().nth(1).unwrap_or("/");
    let target = match path.strip_suffix("/metrics").map(|p| p.trim_start_matches('/')) {
        Some("") => candidates.iter().find(|c| c.is_leader()).or(candidates.first()),
        Some(id) => candidates.iter().find(|c| c.identity == id),
        None => None,
    };
    let resp = match target {
        Some(c) => {
            let body = c.registry.render();
            format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        }
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
    };
    let _ = s.write_all(resp.as_bytes()).await;
}
