//! A small HTTP/1.1 GET for `/metrics` endpoints (plain http, Content-Length or chunked), so
//! scraping needs no HTTP client stack.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("bad metrics URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("cannot reach {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url} did not answer within {secs:.1}s")]
    Timeout { url: String, secs: f64 },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent a malformed HTTP response: {reason}")]
    Http { url: String, reason: String },
    #[error("{url}: {source}")]
    Parse { url: String, source: super::ParseError },
}

struct Target {
    host: String,
    port: u16,
    path: String,
}

fn target(url: &str) -> Result<Target, ScrapeError> {
    let bad = |reason: &str| ScrapeError::Url { url: url.to_string(), reason: reason.to_string() };
    let rest = url.strip_prefix("http://").ok_or_else(|| bad("only http:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| bad("invalid port"))?)
        }
        _ => (authority, 80),
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(Target { host: host.trim_matches(|c| c == '[' || c == ']').to_string(), port, path: path.to_string() })
}

/// GETs `url` and returns the body as text.
pub async fn get(url: &str, timeout: Duration) -> Result<String, ScrapeError> {
    let t = target(url)?;
    let work = async {
        let mut stream = tokio::net::TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| ScrapeError::Connect { url: url.to_string(), reason: e.to_string() })?;
        let req = format!(
            "GET {} HTTP/1.1\r\nHost: {}:{}\r\nAccept: text/plain;version=0.0.4\r\nUser-Agent: fleetbook\r\nConnection: close\r\n\r\n",
            t.path, t.host, t.port
        );
        let io = |e: std::io::Error| ScrapeError::Http { url: url.to_string(), reason: e.to_string() };
        stream.write_all(req.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.map_err(io)?;
        Ok::<_, ScrapeError>(raw)
    };
    let raw = tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ScrapeError::Timeout { url: url.to_string(), secs: timeout.as_secs_f64() })??;
    body(url, &raw)
}

fn body(url: &str, raw: &[u8]) -> Result<String, ScrapeError> {
    let bad = |reason: &str| ScrapeError::Http { url: url.to_string(), reason: reason.to_string() };
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 =
        status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status code"))?;
    if status != 200 {
        return Err(ScrapeError::Status { url: url.to_string(), status });
    }
    let header = |name: &str| {
        lines.clone().find_map(|l| {
            l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string())
        })
    };
    let payload = &raw[split + 4..];
    let bytes = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(payload).ok_or_else(|| bad("broken chunked encoding"))?
    } else if let Some(len) = header("content-length") {
        let n: usize = len.parse().map_err(|_| bad("bad Content-Length"))?;
        payload.get(..n).ok_or_else(|| bad("body shorter than Content-Length"))?.to_vec()
    } else {
        payload.to_vec()
    };
    String::from_utf8(bytes).map_err(|_| bad("body is not UTF-8"))
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&b[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

/// Scrapes and parses `url`.
pub async fn scrape(url: &str, timeout: Duration) -> Result<super::Scrape, ScrapeError> {
    let text = get(url, timeout).await?;
    super::parse(&text).map_err(|source| ScrapeError::Parse { url: url.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_bodies() {
        let t = target("http://127.0.0.1:8080/metrics").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("127.0.0.1", 8080, "/metrics"));
        assert_eq!(target("http://prov").unwrap().path, "/metrics");
        assert!(target("https://x").is_err());
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nm 1\n\r\n0\r\n\r\n";
        assert_eq!(body("u", chunked).unwrap(), "m 1\n");
        let sized = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nm 1\nXX";
        assert_eq!(body("u", sized).unwrap(), "m 1\n");
        assert!(matches!(body("u", b"HTTP/1.1 404 Not Found\r\n\r\n"), Err(ScrapeError::Status { status: 404, .. })));
    }
}
