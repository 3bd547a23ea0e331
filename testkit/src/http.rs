//! The tests' raw blocking HTTP/1.1 client for loopback. Raw on purpose: tests send what real
//! clients must not (duplicate, non-UTF-8 or huge headers), which is exactly what the filter
//! has to survive. One request per connection, or several in turn on a [`Connection`]
//! (keep-alive). Production code uses reqwest (`deployer`'s `http` module).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, lossily decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("body is not JSON: {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` on 127.0.0.1:port with extra raw headers; the connection is closed after one request.
pub fn get(port: u16, path: &str, headers: &[(&str, &[u8])]) -> Result<Response> {
    get_host(port, "localhost", path, headers)
}

pub fn get_host(port: u16, host: &str, path: &str, headers: &[(&str, &[u8])]) -> Result<Response> {
    send(port, host, path, headers, Duration::from_secs(20))
}

/// `GET path` on 127.0.0.1:port, the raw bytes as given; one request per connection.
fn send(
    port: u16,
    host: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    timeout: Duration,
) -> Result<Response> {
    let mut conn = Connection::open(port, timeout)?;
    conn.write_request(host, path, headers, true)?;
    conn.read_response()
}

/// One connection to 127.0.0.1:port, for several requests in turn (keep-alive), as the load
/// generator of the reliability tests sends them.
pub struct Connection {
    reader: BufReader<TcpStream>,
}

impl Connection {
    pub fn open(port: u16, timeout: Duration) -> Result<Connection> {
        let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&target, timeout)
            .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            reader: BufReader::new(stream),
        })
    }

    /// Writes `GET path` with `headers` as given; `close` asks the server to close after it.
    pub fn write_request(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &[u8])],
        close: bool,
    ) -> Result<()> {
        let mut req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n").into_bytes();
        if close {
            req.extend_from_slice(b"connection: close\r\n");
        }
        for (name, value) in headers {
            req.extend_from_slice(name.as_bytes());
            req.extend_from_slice(b": ");
            req.extend_from_slice(value);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        self.reader.get_mut().write_all(&req)?;
        Ok(())
    }

    /// Reads one response: the body framed by content-length, chunked encoding, or (neither
    /// given) the end of the connection.
    pub fn read_response(&mut self) -> Result<Response> {
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {:?}", line.trim_end()))?;
        let mut headers = Vec::new();
        loop {
            let mut raw = Vec::new();
            if self.reader.read_until(b'\n', &mut raw)? == 0 {
                bail!("connection closed inside the response head");
            }
            let raw = raw.strip_suffix(b"\n").unwrap_or(&raw);
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                break;
            }
            if let Some(colon) = raw.iter().position(|b| *b == b':') {
                let (name, value) = raw.split_at(colon);
                let value = value.get(1..).unwrap_or_default().trim_ascii();
                headers.push((
                    String::from_utf8_lossy(name).trim().to_ascii_lowercase(),
                    value.to_vec(),
                ));
            }
        }
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        let mut body = Vec::new();
        if value("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            self.read_chunks(&mut body)?;
        } else if let Some(length) = value("content-length") {
            let length: usize = length.trim().parse().context("bad content-length")?;
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        } else {
            self.reader.read_to_end(&mut body)?;
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    fn read_chunks(&mut self, body: &mut Vec<u8>) -> Result<()> {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16).context("bad chunk size")?;
            let mut chunk = vec![0; size + 2];
            self.reader
                .read_exact(&mut chunk)
                .context("truncated chunk")?;
            if size == 0 {
                return Ok(());
            }
            body.extend_from_slice(chunk.get(..size).unwrap_or_default());
        }
    }
}
