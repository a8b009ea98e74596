//! The keys user tokens are signed with: an HS256 secret and/or a JWKS
//! (RS256, ES256, EdDSA) from a file or an `http(s)://` address.
//!
//! The algorithm is chosen by the key, never by the token alone: an HS256
//! token is checked against the secret only, an asymmetric one against the
//! JWKS key its `kid` names, whose own algorithm must be the token's. So an
//! HS256 token "signed" with an RSA public key (algorithm confusion) and
//! `alg: none` (no such algorithm here) are refused.
//!
//! The JWKS is fetched at start and every `JWT_JWKS_REFRESH_SECS`; a token
//! naming an unknown `kid` fetches it again at once, but at most once per
//! `JWT_JWKS_REFETCH_COOLDOWN_MS`, so forged `kid`s cannot hammer the
//! identity provider. Each fetch that changes a key (one added, removed, or
//! the same `kid` with other material) starts a new generation: tokens
//! verified under an older one are verified again.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use arc_swap::ArcSwap;
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm},
};

use super::{Claims, validation};
use crate::{
    config::{Settings, redact_url},
    error::{Error, Result},
};

const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// An HS256 secret shorter than this is refused at start.
pub const MIN_SECRET_BYTES: usize = 32;

/// What every token's claims must match besides its signature.
#[derive(Debug, Clone, Default)]
pub(super) struct Expect {
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

pub struct Keys {
    secret: Option<DecodingKey>,
    jwks: Option<Jwks>,
    expect: Expect,
}

/// A key of the JWKS: what verifies with it, and its material as
/// published, to see a change under the same `kid`.
#[derive(Clone)]
struct Key {
    decoding: DecodingKey,
    alg: Algorithm,
    material: String,
}

/// A JWKS and where it comes from.
struct Jwks {
    source: String,
    by_kid: ArcSwap<HashMap<String, Key>>,
    /// Bumped by every fetch that changes a key.
    generation: AtomicU64,
    refetch_cooldown: Duration,
    /// When the JWKS was last fetched; held while fetching, so concurrent
    /// tokens with an unknown `kid` wait for one fetch.
    fetched: tokio::sync::Mutex<Instant>,
    http: reqwest::Client,
}

fn invalid(detail: &str) -> Error {
    Error::Unauthorized(format!("invalid token: {detail}"))
}

impl Keys {
    /// The configured keys, or none when user authentication is off.
    pub(super) async fn load(settings: &Settings) -> anyhow::Result<Option<Keys>> {
        let secret = match settings.jwt_secret.as_deref() {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                anyhow::bail!("JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes")
            }
            Some(secret) => Some(DecodingKey::from_secret(secret.as_bytes())?),
            None => None,
        };
        let cooldown = Duration::from_millis(settings.jwt_jwks_refetch_cooldown_ms);
        let jwks = match settings.jwt_jwks.as_deref() {
            Some(source) => Some(Jwks::load(source, cooldown).await?),
            None => None,
        };
        if secret.is_none() && jwks.is_none() {
            return Ok(None);
        }
        Ok(Some(Keys {
            secret,
            jwks,
            expect: Expect {
                issuer: settings.jwt_issuer.clone(),
                audience: settings.jwt_audience.clone(),
            },
        }))
    }

    /// The token's claims, when it is well formed, signed by one of the
    /// keys, unexpired and meant for this server.
    pub(super) async fn verify(&self, token: &str) -> Result<Claims> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
        let (key, alg) = match header.alg {
            Algorithm::HS256 => {
                let secret = self
                    .secret
                    .as_ref()
                    .ok_or_else(|| invalid("HS256 tokens are not accepted"))?;
                (secret.clone(), Algorithm::HS256)
            }
            Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA => {
                let jwks = self
                    .jwks
                    .as_ref()
                    .ok_or_else(|| invalid("no JWKS is configured"))?;
                let kid = header.kid.as_deref().ok_or_else(|| invalid("no kid"))?;
                let key = jwks.key(kid).await?;
                if key.alg != header.alg {
                    return Err(invalid("the key's algorithm is not the token's"));
                }
                (key.decoding, key.alg)
            }
            _ => return Err(invalid("unsupported algorithm")),
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation(&self.expect, alg))
            .map_err(|err| invalid(&err.to_string()))?;
        Ok(data.claims)
    }

    /// Fetches the JWKS again; `true` when its keys changed.
    pub(crate) async fn refresh(&self) -> bool {
        match &self.jwks {
            Some(jwks) => jwks.refetch(true).await,
            None => false,
        }
    }

    /// Which keys a verification was made with: a token verified under an
    /// older generation is verified again.
    pub(crate) fn generation(&self) -> u64 {
        self.jwks
            .as_ref()
            .map_or(0, |jwks| jwks.generation.load(Ordering::Acquire))
    }
}

impl Jwks {
    async fn load(source: &str, refetch_cooldown: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .context("cannot build the JWKS client")?;
        let keys = fetch(&http, source)
            .await
            .with_context(|| format!("cannot load JWT_JWKS from {}", redact_url(source)))?;
        Ok(Self {
            source: source.to_owned(),
            by_kid: ArcSwap::from_pointee(keys),
            generation: AtomicU64::new(0),
            refetch_cooldown,
            fetched: tokio::sync::Mutex::new(Instant::now()),
            http,
        })
    }

    /// The key named `kid`; an unknown one fetches the JWKS again, at most
    /// once per refetch cooldown.
    async fn key(&self, kid: &str) -> Result<Key> {
        if let Some(found) = self.by_kid.load().get(kid) {
            return Ok(found.clone());
        }
        self.refetch(false).await;
        self.by_kid
            .load()
            .get(kid)
            .cloned()
            .ok_or_else(|| invalid("unknown kid"))
    }

    /// Fetches and installs the JWKS unless it was fetched within the
    /// refetch cooldown (or `always`); `true` when keys changed. A failed
    /// fetch keeps the keys already known.
    async fn refetch(&self, always: bool) -> bool {
        let mut fetched = self.fetched.lock().await;
        if !always && fetched.elapsed() < self.refetch_cooldown {
            return false;
        }
        *fetched = Instant::now();
        match fetch(&self.http, &self.source).await {
            Ok(keys) => {
                let changed = {
                    let current = self.by_kid.load();
                    current.len() != keys.len()
                        || keys.iter().any(|(kid, key)| {
                            current
                                .get(kid)
                                .is_none_or(|old| old.material != key.material)
                        })
                };
                self.by_kid.store(Arc::new(keys));
                if changed {
                    self.generation.fetch_add(1, Ordering::AcqRel);
                }
                changed
            }
            Err(err) => {
                tracing::warn!(error = %err, source = %redact_url(&self.source), "cannot fetch the JWKS; keeping the keys known");
                false
            }
        }
    }
}

/// Reads a JWKS from a file or an `http(s)://` address: each usable key by
/// its `kid`, with the one algorithm it verifies.
async fn fetch(http: &reqwest::Client, source: &str) -> anyhow::Result<HashMap<String, Key>> {
    let text = if source.starts_with("http://") || source.starts_with("https://") {
        http.get(source)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?
    } else {
        tokio::fs::read_to_string(source).await?
    };
    let set: JwkSet = serde_json::from_str(&text).context("not a JWKS document")?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let Some(alg) = algorithm(jwk) else {
            tracing::warn!(%kid, "skipping a JWKS key of an unsupported kind");
            continue;
        };
        match DecodingKey::from_jwk(jwk) {
            Ok(decoding) => {
                let material = serde_json::to_string(&jwk.algorithm)?;
                keys.insert(
                    kid,
                    Key {
                        decoding,
                        alg,
                        material,
                    },
                );
            }
            Err(err) => tracing::warn!(%kid, %err, "skipping an unreadable JWKS key"),
        }
    }
    Ok(keys)
}

/// The one algorithm a key verifies: its declared `alg`, or the one its
/// kind implies. Symmetric keys in a JWKS are not accepted.
fn algorithm(jwk: &Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(implied),
        Some(KeyAlgorithm::RS256) if implied == Algorithm::RS256 => Some(implied),
        Some(KeyAlgorithm::ES256) if implied == Algorithm::ES256 => Some(implied),
        Some(KeyAlgorithm::EdDSA) if implied == Algorithm::EdDSA => Some(implied),
        Some(_) => None,
    }
}
