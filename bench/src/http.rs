//! A minimal HTTP/1.1 client: blocking one-shot requests for control and
//! polling, and an async keep-alive connection for load. Enough for
//! port25d's JSON API (content-length bodies), nothing more.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn request_bytes(method: &str, path: &str, body: &str, close: bool) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: bench\r\nconnection: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        if close { "close" } else { "keep-alive" },
        body.len()
    )
    .into_bytes()
}

/// Status and body length of a complete response at the start of `buf`,
/// or `None` if more bytes are needed.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<(u16, usize, usize)>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&buf[..end]).context("response head")?;
    let status: u16 = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| anyhow!("status line"))?;
    let mut len = 0;
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().context("content-length")?;
            }
            if k.eq_ignore_ascii_case("transfer-encoding") {
                bail!("chunked responses are not supported");
            }
        }
    }
    Ok(Some((status, end + 4, len)))
}

/// One blocking request on a fresh connection; JSON body or Null.
pub fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> anyhow::Result<(u16, Value)> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_nodelay(true)?;
    s.write_all(&request_bytes(method, path, body.unwrap_or(""), true))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let (status, start, len) = parse_head(&buf)?.ok_or_else(|| anyhow!("incomplete response"))?;
    let body = buf.get(start..start + len).ok_or_else(|| anyhow!("short body"))?;
    let v = if body.is_empty() { Value::Null } else { serde_json::from_slice(body)? };
    Ok((status, v))
}

/// A keep-alive connection for load generation.
pub struct Conn {
    stream: tokio::net::TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::with_capacity(4096) })
    }

    /// Send one request, return status and raw body.
    pub async fn request(&mut self, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        self.stream.write_all(&request_bytes(method, path, body, false)).await?;
        loop {
            if let Some((status, start, len)) = parse_head(&self.buf)? {
                if self.buf.len() >= start + len {
                    let body = self.buf[start..start + len].to_vec();
                    self.buf.drain(..start + len);
                    return Ok((status, body));
                }
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("server closed the connection");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
