//! The deployer's HTTP client, over reqwest's blocking client: Envoy's admin endpoints on
//! loopback, and `verify`'s calls through a gateway. Proxies from the environment are ignored:
//! every target is the mesh's own, and an `HTTP_PROXY` meant for the internet must not
//! intercept a call to 127.0.0.1.

use std::time::Duration;

use anyhow::{Context as _, Result};

/// A whole answer: status, headers and body, read before the connection is let go.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, lossily decoded.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET url`, the whole exchange bounded by `timeout`.
pub fn get(url: &str, timeout: Duration) -> Result<Response> {
    send(reqwest::Method::GET, url, timeout)
}

/// `POST url` with an empty body (Envoy admin actions).
pub fn post(url: &str, timeout: Duration) -> Result<Response> {
    send(reqwest::Method::POST, url, timeout)
}

/// One client for the process: reqwest's blocking client runs a runtime thread of its own,
/// which `up`'s readiness polling would otherwise start and stop every few milliseconds.
fn client() -> Result<&'static reqwest::blocking::Client> {
    static CLIENT: std::sync::OnceLock<reqwest::blocking::Client> = std::sync::OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let built = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .context("building the HTTP client")?;
    Ok(CLIENT.get_or_init(|| built))
}

fn send(method: reqwest::Method, url: &str, timeout: Duration) -> Result<Response> {
    let resp = client()?
        .request(method, url)
        .timeout(timeout)
        .send()
        .map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))
        .with_context(|| format!("calling {url}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .with_context(|| format!("reading the answer of {url}"))?
        .to_vec();
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// reqwest's top-level message ("error sending request for url …") hides the reason
/// ("Connection refused"); the innermost cause is what a user can act on.
fn error_chain(err: &reqwest::Error) -> String {
    let mut reason = err.to_string();
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(c) = cause {
        reason = c.to_string();
        cause = c.source();
    }
    reason
}
