//! A small blocking HTTP/1.1 client for port25d's API, over `std::net`.
//!
//! The API is plain HTTP on a management address (loopback by default), so
//! there is no TLS here, and every request is one connection with
//! `Connection: close`: the CLI makes one or two requests per run, and
//! reading to end of stream is the simplest correct way to find the end of
//! a reply. Hand-written rather than a client crate because it is small and
//! because the CLI's exit codes need to tell "could not reach port25d"
//! apart from "port25d answered badly", which this keeps explicit.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Largest reply read, headers and body together. A full audit log or
/// exemption list of many thousands of records fits well inside.
const MAX_REPLY_BYTES: u64 = 256 * 1024 * 1024;

/// Why a request got no usable reply.
#[derive(Debug)]
pub enum HttpError {
    /// The URL cannot be used (not http://, no host, bad port).
    BadUrl(String),
    /// Nothing answered: name not resolved, connection refused, timed out.
    Unreachable(String),
    /// Something answered, but not with a well-formed HTTP reply.
    Protocol(String),
}

/// Where the API is: host, port and an optional path prefix (for a reverse
/// proxy that mounts port25d under a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host as written in the URL (brackets included for IPv6), for `Host:`.
    host: String,
    port: u16,
    /// Path prefix without a trailing slash; empty for none.
    base: String,
}

impl Endpoint {
    /// Parse `http://HOST[:PORT][/PREFIX]`.
    ///
    /// # Errors
    /// [`HttpError::BadUrl`] for another scheme (https is not supported: the
    /// API has no TLS of its own), a missing host or a bad port.
    pub fn parse(url: &str) -> Result<Endpoint, HttpError> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(HttpError::BadUrl(format!(
                    "{url}: scheme {scheme}:// is not supported; port25ctl speaks plain http:// to port25d's API"
                )))
            }
            // A bare HOST:PORT is taken as http.
            None => url,
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(HttpError::BadUrl(format!("{url}: user info in the URL is not supported; use --token")));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| {
            HttpError::BadUrl(format!("{url}: expected http://HOST[:PORT], such as http://127.0.0.1:8080"))
        })?;
        if path.contains(['?', '#']) {
            return Err(HttpError::BadUrl(format!("{url}: the URL must not carry a query or fragment")));
        }
        Ok(Endpoint { host: host.to_owned(), port, base: path.trim_end_matches('/').to_owned() })
    }

    fn addrs(&self) -> Result<Vec<SocketAddr>, HttpError> {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = (bare, self.port)
            .to_socket_addrs()
            .map_err(|e| HttpError::Unreachable(format!("cannot resolve {}: {e}", self.host)))?
            .collect();
        if addrs.is_empty() {
            return Err(HttpError::Unreachable(format!("{} has no address", self.host)));
        }
        Ok(addrs)
    }

    fn display(&self) -> String {
        format!("http://{}:{}{}", self.host, self.port, self.base)
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`. Port defaults to 80.
fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, after) = authority.split_at(close + 1);
        return match after {
            "" => Some((host, 80)),
            p => Some((host, p.strip_prefix(':')?.parse().ok()?)),
        };
    }
    match authority.split_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host, port.parse().ok()?)),
        Some(_) => None,
        None if authority.is_empty() => None,
        None => Some((authority, 80)),
    }
}

/// A reply: status, headers (names lower-cased) and the decoded body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// First header with this (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One API server and the credentials to use with it.
pub struct Client {
    endpoint: Endpoint,
    token: Option<String>,
    request_id: Option<String>,
    timeout: Duration,
}

impl Client {
    pub fn new(endpoint: Endpoint, token: Option<String>, request_id: Option<String>, timeout: Duration) -> Client {
        Client { endpoint, token, request_id, timeout }
    }

    /// Send one request; `path_and_query` starts with `/`. A JSON body is
    /// sent with `Content-Type: application/json`.
    ///
    /// # Errors
    /// [`HttpError::Unreachable`] when no connection could be made or no
    /// reply came within the timeout, [`HttpError::Protocol`] when the reply
    /// is not HTTP. Any HTTP status, 4xx and 5xx included, is a [`Reply`].
    pub fn request(&self, method: &str, path_and_query: &str, body: Option<&[u8]>) -> Result<Reply, HttpError> {
        let mut stream = self.connect()?;
        let mut head = format!(
            "{method} {}{path_and_query} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: port25ctl/{}\r\n\
             Accept: application/json\r\nConnection: close\r\n",
            self.endpoint.base,
            self.endpoint.host,
            self.endpoint.port,
            env!("CARGO_PKG_VERSION")
        );
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(id) = &self.request_id {
            head.push_str(&format!("X-Request-Id: {id}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || matches!(method, "POST" | "PUT") {
            head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut raw = Vec::with_capacity(head.len() + body.len());
        raw.extend_from_slice(head.as_bytes());
        raw.extend_from_slice(body);
        stream.write_all(&raw).map_err(|e| self.io_failure("sending the request", e))?;
        let mut reply = Vec::new();
        stream
            .take(MAX_REPLY_BYTES + 1)
            .read_to_end(&mut reply)
            .map_err(|e| self.io_failure("waiting for the reply", e))?;
        if reply.len() as u64 > MAX_REPLY_BYTES {
            return Err(HttpError::Protocol(format!("reply is larger than {MAX_REPLY_BYTES} bytes")));
        }
        if reply.is_empty() {
            return Err(HttpError::Protocol(format!(
                "{} closed the connection without a reply",
                self.endpoint.display()
            )));
        }
        parse_reply(&reply)
    }

    fn connect(&self) -> Result<TcpStream, HttpError> {
        let mut last = None;
        for addr in self.endpoint.addrs()? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(s) => {
                    let set = s.set_read_timeout(Some(self.timeout)).and(s.set_write_timeout(Some(self.timeout)));
                    set.map_err(|e| HttpError::Unreachable(format!("{addr}: {e}")))?;
                    return Ok(s);
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        let (addr, e) = last.expect("addrs() returns at least one address");
        Err(HttpError::Unreachable(format!("cannot connect to port25d at {} ({addr}): {e}", self.endpoint.display())))
    }

    fn io_failure(&self, doing: &str, e: io::Error) -> HttpError {
        let timed_out = matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut);
        let what = if timed_out { format!("no answer within {} s", self.timeout.as_secs()) } else { e.to_string() };
        HttpError::Unreachable(format!("{} while {doing}: {what}", self.endpoint.display()))
    }
}

/// Split a complete reply (read to end of stream) into status, headers and
/// body, undoing chunked transfer encoding.
///
/// # Errors
/// [`HttpError::Protocol`] for anything that is not an HTTP/1.x reply, or a
/// body shorter than its declared length.
pub fn parse_reply(raw: &[u8]) -> Result<Reply, HttpError> {
    let bad = |what: &str| HttpError::Protocol(format!("not an HTTP reply: {what}"));
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err(bad(&format!("status line {status_line:?}")));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| bad(&format!("status line {status_line:?}")))?;
    let reason = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| bad(&format!("header line {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut reply = Reply { status, reason, headers, body: Vec::new() };
    let chunked = reply.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    reply.body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = reply.header("content-length") {
        let len: usize = len.parse().map_err(|_| bad(&format!("content-length {len:?}")))?;
        if rest.len() < len {
            return Err(HttpError::Protocol(format!("reply cut short: {} of {len} body bytes", rest.len())));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(reply)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, HttpError> {
    let bad = |what: &str| HttpError::Protocol(format!("bad chunked body: {what}"));
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| bad("no chunk size line"))?;
        let line = std::str::from_utf8(&data[..line_end]).map_err(|_| bad("size line is not text"))?;
        let size_hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad(&format!("chunk size {size_hex:?}")))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or_else(|| bad("reply cut short inside a chunk"))?;
        out.extend_from_slice(chunk);
        data = data.get(size..).and_then(|d| d.strip_prefix(b"\r\n")).ok_or_else(|| bad("no CRLF after a chunk"))?;
    }
}

/// Percent-encode everything but RFC 3986 unreserved characters, for a
/// query value or a path segment.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?a=1&b=2` from the pairs whose value is present; empty if none is.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> =
        pairs.iter().filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v)))).collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

#[cfg(test)]
mod tests;
