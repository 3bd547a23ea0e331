//! Uploading an image (the filter's or the demo-service's) over the OCI distribution API (`oci-client`): both blobs, then the
//! manifest as our exact bytes, so the digest the registry stores is the one computed here.
//! Registry failures become one line that says what to do (log in, or `--insecure` for a
//! plain-HTTP registry).

use std::error::Error as _;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciEnvelope, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use super::auth::Credentials;
use super::image::{ImageParts, MANIFEST_MEDIA_TYPE};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("--image {image}: {reason} (expected REGISTRY/REPO:TAG, e.g. localhost:5001/meshtally/filter:dev)")]
    BadImage { image: String, reason: String },
    #[error("--image {0}: give a tag, not a digest; the digest is what push computes")]
    DigestGiven(String),
    #[error("cannot start the push: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot reach registry {registry} over {scheme}: {reason}{hint}")]
    Unreachable {
        registry: String,
        scheme: &'static str,
        reason: String,
        hint: &'static str,
    },
    #[error(
        "registry {registry} refused the push ({reason}): log in with `docker login {registry}` \
         (push reads $DOCKER_CONFIG/config.json or ~/.docker/config.json)"
    )]
    Denied { registry: String, reason: String },
    #[error("pushing to {reference}: {reason}")]
    Registry { reference: String, reason: String },
}

/// `REGISTRY/REPO[:TAG]` as pushed to; a missing tag is `latest`, a digest is refused.
pub fn parse_reference(image: &str) -> Result<Reference, PushError> {
    let reference: Reference =
        image
            .parse()
            .map_err(|e: oci_client::ParseError| PushError::BadImage {
                image: image.to_owned(),
                reason: e.to_string(),
            })?;
    if reference.digest().is_some() {
        return Err(PushError::DigestGiven(image.to_owned()));
    }
    Ok(reference)
}

/// Pushes the layer, the config and the manifest, reporting each step to `progress`.
pub fn push(
    image: ImageParts<'_>,
    reference: &Reference,
    credentials: Credentials,
    insecure: bool,
    progress: impl Fn(String),
) -> Result<(), PushError> {
    // One TLS provider for the process: ring, which the certificate code already builds.
    // Installing twice is harmless (the first stays), so the result is ignored.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(PushError::Runtime)?;
    let scheme = if insecure { "http" } else { "https" };
    let client = Client::new(ClientConfig {
        protocol: if insecure {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..ClientConfig::default()
    });
    let auth = match credentials {
        Credentials::Anonymous => RegistryAuth::Anonymous,
        Credentials::Basic { username, password } => RegistryAuth::Basic(username, password),
    };
    let explain = |e: OciDistributionError| explain(e, reference, scheme, insecure);
    runtime.block_on(async {
        client
            .auth(reference, &auth, RegistryOperation::Push)
            .await
            .map_err(explain)?;
        progress(format!(
            "pushing layer {} ({} bytes)…",
            short(&image.layer.digest),
            image.layer.bytes.len()
        ));
        client
            .push_blob(reference, image.layer.bytes.clone(), &image.layer.digest)
            .await
            .map_err(explain)?;
        progress(format!("pushing config {}…", short(&image.config.digest)));
        client
            .push_blob(reference, image.config.bytes.clone(), &image.config.digest)
            .await
            .map_err(explain)?;
        progress(format!(
            "pushing manifest {}…",
            short(&image.manifest.digest)
        ));
        client
            .push_manifest_raw(
                reference,
                image.manifest.bytes.clone(),
                http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
            )
            .await
            .map_err(explain)?;
        Ok(())
    })
}

fn short(digest: &str) -> &str {
    digest.get(..19).unwrap_or(digest)
}

/// One line for a failed registry call, naming the likely fix.
fn explain(
    error: OciDistributionError,
    reference: &Reference,
    scheme: &'static str,
    insecure: bool,
) -> PushError {
    let registry = reference.registry().to_owned();
    match error {
        OciDistributionError::RequestError(e) => {
            let mut reason = e.to_string();
            let mut source = e.source();
            while let Some(cause) = source {
                reason = format!("{reason}: {cause}");
                source = cause.source();
            }
            let hint = hint(&reason, insecure);
            PushError::Unreachable {
                registry,
                scheme,
                reason,
                hint,
            }
        }
        OciDistributionError::UnauthorizedError { .. } => PushError::Denied {
            registry,
            reason: "401 unauthorized".to_owned(),
        },
        OciDistributionError::AuthenticationFailure(reason) => PushError::Denied {
            registry,
            reason: one_line(&reason),
        },
        OciDistributionError::ServerError { code, message, .. } if code == 401 || code == 403 => {
            PushError::Denied {
                registry,
                reason: format!("{code}: {}", registry_message(&message)),
            }
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Denied | OciErrorCode::Unauthorized)) =>
        {
            let messages: Vec<&str> = envelope.errors.iter().map(|e| e.message.as_str()).collect();
            PushError::Denied {
                registry,
                reason: one_line(&messages.join("; ")),
            }
        }
        other => PushError::Registry {
            reference: reference.whole(),
            reason: one_line(&other.to_string()),
        },
    }
}

/// What to do about a connection failure, judged by rustls' and hyper's wording: TLS spoken to
/// a plain-HTTP server, or a certificate this machine does not trust.
fn hint(reason: &str, insecure: bool) -> &'static str {
    if !insecure && (reason.contains("InvalidContentType") || reason.contains("corrupt message")) {
        " (a plain-HTTP registry, like a local one, needs --insecure)"
    } else if reason.contains("certificate") {
        " (its certificate must chain to a CA this machine trusts; SSL_CERT_FILE can name one)"
    } else {
        ""
    }
}

/// The `message`s of a registry's JSON error body (`{"errors": [{"code", "message"}]}`), or the
/// body itself when it is not one.
fn registry_message(body: &str) -> String {
    match serde_json::from_str::<OciEnvelope>(body) {
        Ok(envelope) if !envelope.errors.is_empty() => {
            let messages: Vec<&str> = envelope.errors.iter().map(|e| e.message.as_str()).collect();
            one_line(&messages.join("; "))
        }
        _ => one_line(body),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = parse_reference("localhost:5001/meshtally/filter:dev").unwrap();
        assert_eq!(
            (r.registry(), r.repository(), r.tag()),
            ("localhost:5001", "meshtally/filter", Some("dev"))
        );
        assert_eq!(
            parse_reference("ghcr.io/x/f").unwrap().tag(),
            Some("latest")
        );
        assert!(matches!(
            parse_reference("localhost:5001/Filter:dev"),
            Err(PushError::BadImage { .. })
        ));
        let pinned = format!("ghcr.io/x/f@sha256:{}", "a".repeat(64));
        assert!(matches!(
            parse_reference(&pinned),
            Err(PushError::DigestGiven(_))
        ));
    }

    #[test]
    fn registry_messages() {
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[]}]}"#;
        assert_eq!(registry_message(body), "authentication required");
        assert_eq!(registry_message("denied\n by proxy"), "denied by proxy");
    }

    #[test]
    fn hints() {
        let tls_to_http =
            "client error (Connect): received corrupt message of type InvalidContentType";
        assert!(hint(tls_to_http, false).contains("--insecure"));
        assert_eq!(hint(tls_to_http, true), "");
        assert!(hint("invalid peer certificate: UnknownIssuer", false).contains("SSL_CERT_FILE"));
        assert_eq!(hint("tcp connect error: Connection refused", false), "");
    }
}
