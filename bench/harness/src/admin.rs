//! A minimal HTTP/1.1 GET for Envoy's admin endpoint (ready checks, `/stats`, `/listeners`).
//! Kept tiny on purpose: it is not on the measured path, and the benchmark needs no HTTP stack.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// `GET path` on 127.0.0.1:port; returns (status, body). One request per connection.
pub fn get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("connecting to 127.0.0.1:{port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("no header end in the answer to {path}");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line for {path}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(after.get(..size).unwrap_or_default());
        rest = after
            .get(size..)
            .unwrap_or_default()
            .trim_start_matches("\r\n");
    }
    out
}

/// Every counter and gauge of `/stats?format=json`, by full (untagged) name.
pub fn stats(port: u16) -> Result<Vec<(String, u64)>> {
    meshtally_deployer::envoy::Admin(port).counters("")
}

/// One stat by exact name, 0 when absent.
pub fn value(stats: &[(String, u64)], name: &str) -> u64 {
    stats.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
}

/// The sum of every counter whose name ends with `suffix`: meshtally encodes its labels in the
/// name, so `meshtally_requests_total` is spread over one counter per tag set.
pub fn sum_ending_with(stats: &[(String, u64)], suffix: &str) -> u64 {
    stats
        .iter()
        .filter(|(name, _)| name.ends_with(suffix))
        .map(|(_, v)| v)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }

    #[test]
    fn sums_by_suffix() {
        let stats = vec![
            ("source=.=a;.;meshtally_requests_total".to_owned(), 3),
            ("source=.=b;.;meshtally_requests_total".to_owned(), 4),
            ("http.proxy.rq_total".to_owned(), 100),
        ];
        assert_eq!(sum_ending_with(&stats, "meshtally_requests_total"), 7);
    }
}
