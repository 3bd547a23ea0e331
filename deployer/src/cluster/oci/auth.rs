//! Registry credentials, from where `docker login` leaves them: the docker config
//! (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), either inline under
//! `auths.<registry>` (`auth`: base64 `user:password`, or `username` and `password`) or through
//! the credential helper it names (`credHelpers.<registry>`, else `credsStore`). No entry means
//! an anonymous push, which local registries accept.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    Anonymous,
    Basic { username: String, password: String },
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read docker config {}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("docker config {} is not valid JSON", path.display())]
    Syntax {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("docker config {}: `auths.{registry}.auth` is not base64 of user:password", path.display())]
    BadAuth { path: PathBuf, registry: String },
    #[error("credential helper docker-credential-{helper} failed for {registry}: {reason}")]
    Helper {
        helper: String,
        registry: String,
        reason: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// Where docker keeps its config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")),
    }
}

/// The credentials for `registry` (`host[:port]`), or anonymous when none are configured.
pub fn credentials(registry: &str) -> Result<Credentials, AuthError> {
    let Some(path) = config_path() else {
        return Ok(Credentials::Anonymous);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Credentials::Anonymous),
        Err(source) => return Err(AuthError::Unreadable { path, source }),
    };
    lookup(&text, &path, registry, run_helper)
}

/// `credentials` over the config's text, with the helper runner passed in (tests stand one in).
pub fn lookup(
    text: &str,
    path: &Path,
    registry: &str,
    helper: impl Fn(&str, &str) -> Result<Option<Credentials>, String>,
) -> Result<Credentials, AuthError> {
    let config: DockerConfig = serde_json::from_str(text).map_err(|source| AuthError::Syntax {
        path: path.to_owned(),
        source,
    })?;
    let wanted = normalize(registry);
    let entry = config
        .auths
        .iter()
        .find(|(key, _)| normalize(key) == wanted);
    if let Some((_, entry)) = entry {
        if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
            return decode(auth).ok_or_else(|| AuthError::BadAuth {
                path: path.to_owned(),
                registry: registry.to_owned(),
            });
        }
        if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
            return Ok(Credentials::Basic {
                username: username.clone(),
                password: password.clone(),
            });
        }
    }
    let named = config
        .cred_helpers
        .iter()
        .find(|(key, _)| normalize(key) == wanted)
        .map(|(_, helper)| helper.clone())
        .or(config.creds_store);
    match named {
        Some(name) => match helper(&name, registry) {
            Ok(found) => Ok(found.unwrap_or(Credentials::Anonymous)),
            Err(reason) => Err(AuthError::Helper {
                helper: name,
                registry: registry.to_owned(),
                reason,
            }),
        },
        None => Ok(Credentials::Anonymous),
    }
}

/// A config key or registry as a bare `host[:port]`: docker writes `https://index.docker.io/v1/`
/// for Docker Hub and accepts scheme and path on any key.
fn normalize(key: &str) -> String {
    let bare = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = bare.split('/').next().unwrap_or(bare).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "registry-1.docker.io" => "index.docker.io".to_owned(),
        _ => host,
    }
}

fn decode(auth: &str) -> Option<Credentials> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (username, password) = text.split_once(':')?;
    Some(Credentials::Basic {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

/// `docker-credential-<helper> get`, the registry on stdin, `{"Username", "Secret"}` out. A
/// helper that knows nothing of the registry says "credentials not found": anonymous then.
fn run_helper(helper: &str, registry: &str) -> Result<Option<Credentials>, String> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(stderr
            .lines()
            .chain(stdout.lines())
            .last()
            .unwrap_or("failed")
            .to_owned());
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        username: String,
        secret: String,
    }
    let answer: Answer = serde_json::from_str(&stdout).map_err(|e| e.to_string())?;
    Ok(Some(Credentials::Basic {
        username: answer.username,
        password: answer.secret,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_helper(_: &str, _: &str) -> Result<Option<Credentials>, String> {
        Err("no helper expected".into())
    }

    fn basic(u: &str, p: &str) -> Credentials {
        Credentials::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn inline_auths() {
        let path = Path::new("config.json");
        // "me:pa:ss" — the password may hold colons.
        let text = r#"{"auths":{"127.0.0.1:5001":{"auth":"bWU6cGE6c3M="},
            "https://index.docker.io/v1/":{"username":"hub","password":"pw"}}}"#;
        assert_eq!(
            lookup(text, path, "127.0.0.1:5001", no_helper).unwrap(),
            basic("me", "pa:ss")
        );
        assert_eq!(
            lookup(text, path, "docker.io", no_helper).unwrap(),
            basic("hub", "pw")
        );
        assert_eq!(
            lookup(text, path, "ghcr.io", no_helper).unwrap(),
            Credentials::Anonymous
        );
        assert_eq!(
            lookup("{}", path, "ghcr.io", no_helper).unwrap(),
            Credentials::Anonymous
        );
        let bad = r#"{"auths":{"ghcr.io":{"auth":"!!"}}}"#;
        assert!(matches!(
            lookup(bad, path, "ghcr.io", no_helper),
            Err(AuthError::BadAuth { .. })
        ));
        assert!(matches!(
            lookup("{", path, "ghcr.io", no_helper),
            Err(AuthError::Syntax { .. })
        ));
    }

    #[test]
    fn helpers() {
        let path = Path::new("config.json");
        let text = r#"{"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}"#;
        let helper = |name: &str, registry: &str| Ok(Some(basic(name, registry)));
        assert_eq!(
            lookup(text, path, "gcr.io", helper).unwrap(),
            basic("gcloud", "gcr.io")
        );
        assert_eq!(
            lookup(text, path, "ghcr.io", helper).unwrap(),
            basic("desktop", "ghcr.io")
        );
        let failing = |_: &str, _: &str| Err("locked".to_owned());
        let err = lookup(text, path, "ghcr.io", failing)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "credential helper docker-credential-desktop failed for ghcr.io: locked"
        );
    }
}
