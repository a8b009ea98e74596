//! Who is calling: end users with a JWT from the operator's identity
//! provider, operators with the admin token, or anyone while user
//! authentication is off (`dev` without keys).
//!
//! The server never issues passwords or sessions. It verifies a token's
//! signature ([`keys`]), `exp` (required), `nbf`, and `iss`/`aud` when
//! configured, with 30 s of leeway; `sub` is the user's id and the `admin`
//! role reaches everything. A verified token is kept until its `exp` in a
//! bounded cache, so a client's repeated calls verify once.
//!
//! What a caller may do is decided here and only here: a use case that acts
//! for a user takes an [`Acting`], which only [`Caller::act_for`] makes, and
//! order reads take the [`OrderScope`] of the caller.

mod keys;

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::{
    config::Settings,
    error::{Error, Result},
};
pub use keys::Keys;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY: Duration = Duration::from_secs(30);
/// Most verified tokens kept at once.
const CACHE_CAPACITY: u64 = 100_000;
/// The role that reaches everything.
pub const ADMIN_ROLE: &str = "admin";

/// A verified caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// User authentication is off: the seed's open API.
    Open,
    /// The admin token.
    Operator,
    /// A user's token.
    User { id: i64, admin: bool },
}

/// A user the caller may act for. Only [`Caller::act_for`] makes one, so a
/// use case that takes it cannot run for a user the caller is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acting(i64);

impl Acting {
    pub fn user_id(self) -> i64 {
        self.0
    }

    /// For jobs and tools that act on the server's own behalf.
    pub(crate) fn system(user_id: i64) -> Self {
        Self(user_id)
    }
}

/// Which orders a caller may see or cancel: another user's answer as if
/// they did not exist, so reading or cancelling by id tells nothing. (Paying
/// another user's order is `403 FORBIDDEN`, as the contract's payment row
/// says: that tells the id is an order's, and no more; see
/// docs/security.md, "What an order id tells".)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderScope {
    Any,
    Owner(i64),
}

impl OrderScope {
    pub fn allows(self, owner: i64) -> bool {
        match self {
            OrderScope::Any => true,
            OrderScope::Owner(id) => id == owner,
        }
    }
}

impl Caller {
    /// Whether the caller reaches everything: the admin token or the role.
    pub fn is_admin(self) -> bool {
        matches!(self, Caller::Operator | Caller::User { admin: true, .. })
    }

    /// Acts for `user_id`: the user themself, an admin, or anyone while
    /// authentication is off; anyone else is `FORBIDDEN`.
    pub fn act_for(self, user_id: i64) -> Result<Acting> {
        match self {
            Caller::Open | Caller::Operator | Caller::User { admin: true, .. } => {
                Ok(Acting(user_id))
            }
            Caller::User { id, .. } if id == user_id => Ok(Acting(user_id)),
            Caller::User { id, .. } => Err(Error::Forbidden(format!(
                "user {id} may not act for user {user_id}"
            ))),
        }
    }

    pub fn order_scope(self) -> OrderScope {
        match self {
            Caller::User { id, admin: false } => OrderScope::Owner(id),
            _ => OrderScope::Any,
        }
    }

    /// The back office: creating users, reading metrics. Open while
    /// authentication is off, admins only otherwise.
    pub fn back_office(self) -> Result<()> {
        match self {
            Caller::Open => Ok(()),
            caller if caller.is_admin() => Ok(()),
            _ => Err(Error::Forbidden(
                "this endpoint is for the back office".into(),
            )),
        }
    }

    /// The admin API: the admin token or the admin role, whether user
    /// authentication is on or off. A user without the role is `FORBIDDEN`;
    /// no credentials at all is `UNAUTHORIZED`.
    pub fn admin(self) -> Result<()> {
        match self {
            caller if caller.is_admin() => Ok(()),
            Caller::User { id, .. } => Err(Error::Forbidden(format!(
                "user {id} does not have the admin role"
            ))),
            _ => Err(Error::Unauthorized(
                "the admin token or an admin user's token is required".into(),
            )),
        }
    }
}

/// The claims this server reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// One audience or several (RFC 7519 allows both).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
}

/// A token's `aud`: one string or an array of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// Verifies the bearer of each request.
pub struct Identity {
    admin_token: Option<Arc<str>>,
    keys: Option<Keys>,
    /// Verified tokens until their `exp`: token -> (caller, exp, the keys'
    /// generation it was verified with).
    verified: moka::sync::Cache<Arc<str>, (Caller, u64, u64)>,
    jwks_refresh: Duration,
}

impl Identity {
    /// The identity settings; refuses what API.md forbids: no user keys
    /// outside `dev`, a short HS256 secret, an unreadable JWKS.
    pub async fn start(settings: &Settings, admin_token: Option<Arc<str>>) -> anyhow::Result<Self> {
        let keys = Keys::load(settings).await?;
        let jwks_refresh = Duration::from_secs(settings.jwt_jwks_refresh_secs);
        if keys.is_none() {
            if settings.environment != "dev" {
                anyhow::bail!(
                    "user authentication needs JWT_SECRET or JWT_JWKS outside the dev environment \
                     (COMMERCE_ENV={})",
                    settings.environment
                );
            }
            tracing::warn!(
                "JWT_SECRET and JWT_JWKS are not set: user authentication is off and every \
                 endpoint outside /api/v1/admin is open (dev only)"
            );
        }
        Ok(Self {
            admin_token,
            keys,
            verified: moka::sync::Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                // Never longer than a JWKS refresh, so a removed key stops
                // verifying its tokens within one even if a fetch fails.
                .time_to_live(jwks_refresh)
                .build(),
            jwks_refresh,
        })
    }

    /// Whether user tokens are required.
    pub fn is_on(&self) -> bool {
        self.keys.is_some()
    }

    pub fn keys(&self) -> Option<&Keys> {
        self.keys.as_ref()
    }

    /// The caller presenting `bearer` (the `Authorization` header without
    /// `Bearer `), or none.
    pub async fn caller(&self, bearer: Option<&str>) -> Result<Caller> {
        let Some(token) = bearer else {
            return match self.keys {
                Some(_) => Err(Error::Unauthorized("a bearer token is required".into())),
                None => Ok(Caller::Open),
            };
        };
        if let Some(admin) = &self.admin_token
            && bool::from(token.as_bytes().ct_eq(admin.as_bytes()))
        {
            return Ok(Caller::Operator);
        }
        let Some(keys) = &self.keys else {
            // Authentication is off: a bearer that is not the admin token
            // changes nothing on the open endpoints.
            return Ok(Caller::Open);
        };
        let now = unix_now();
        let generation = keys.generation();
        if let Some((caller, exp, verified_with)) = self.verified.get(token)
            && exp + LEEWAY.as_secs() > now
            && verified_with == generation
        {
            return Ok(caller);
        }
        let claims = keys.verify(token).await?;
        let caller = caller_of(&claims)?;
        self.verified
            .insert(token.into(), (caller, claims.exp, generation));
        Ok(caller)
    }

    /// Fetches the JWKS every `JWT_JWKS_REFRESH_SECS` until `stop`; a
    /// change of keys starts a new generation, so tokens verified with the
    /// old keys are verified again.
    pub(crate) async fn follow_jwks(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let Some(keys) = &self.keys else { return };
        let mut every = tokio::time::interval(self.jwks_refresh);
        every.tick().await;
        while stop.run_until_cancelled(every.tick()).await.is_some() {
            if keys.refresh().await {
                // Their generation is old: free the memory at once.
                self.verified.invalidate_all();
            }
        }
    }
}

fn caller_of(claims: &Claims) -> Result<Caller> {
    let id = claims
        .sub
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Error::Unauthorized("the token's sub is not a user id".into()))?;
    Ok(Caller::User {
        id,
        admin: claims.roles.iter().any(|role| role == ADMIN_ROLE),
    })
}

/// Signs HS256 user tokens with `JWT_SECRET`, as `commerce token` and
/// `commerce serve --demo` print them: for development and tests; in
/// production the identity provider issues tokens.
#[derive(Debug, Clone, clap::Args)]
pub struct Signer {
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    secret: String,
    #[arg(long, env = "JWT_ISSUER")]
    issuer: Option<String>,
    #[arg(long, env = "JWT_AUDIENCE")]
    audience: Option<String>,
}

impl Signer {
    /// A signer with `secret` and no issuer or audience.
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.to_owned(),
            issuer: None,
            audience: None,
        }
    }

    /// The signer of the server's settings, when it has an HS256 secret.
    pub fn from_settings(settings: &Settings) -> Option<Self> {
        Some(Self {
            secret: settings.jwt_secret.clone()?,
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
        })
    }

    /// A token for `user_id`, valid for `ttl`.
    pub fn issue(&self, user_id: i64, admin: bool, ttl: Duration) -> anyhow::Result<String> {
        if self.secret.len() < keys::MIN_SECRET_BYTES {
            anyhow::bail!(
                "JWT_SECRET must be at least {} bytes",
                keys::MIN_SECRET_BYTES
            );
        }
        let claims = Claims {
            sub: user_id.to_string(),
            exp: unix_now() + ttl.as_secs(),
            roles: if admin {
                vec![ADMIN_ROLE.into()]
            } else {
                Vec::new()
            },
            iss: self.issuer.clone(),
            aud: self.audience.clone().map(Audience::One),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.secret.as_bytes())?,
        )?)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// The validation every token passes, for the algorithm its key has.
fn validation(settings: &keys::Expect, alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.leeway = LEEWAY.as_secs();
    validation.validate_nbf = true;
    // A configured issuer or audience is required, not only compared when
    // a token happens to carry it.
    let mut required = vec!["exp", "sub"];
    required.extend(settings.issuer.as_ref().map(|_| "iss"));
    required.extend(settings.audience.as_ref().map(|_| "aud"));
    validation.set_required_spec_claims(&required);
    match &settings.issuer {
        Some(issuer) => validation.set_issuer(&[issuer]),
        None => validation.iss = None,
    }
    match &settings.audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    validation
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_act_for_themselves_admins_for_anyone() {
        let user = Caller::User {
            id: 7,
            admin: false,
        };
        assert_eq!(user.act_for(7).ok(), Some(Acting(7)));
        assert!(matches!(user.act_for(8), Err(Error::Forbidden(_))));
        let admin = Caller::User { id: 1, admin: true };
        assert_eq!(admin.act_for(8).ok(), Some(Acting(8)));
        assert_eq!(Caller::Open.act_for(8).ok(), Some(Acting(8)));
        assert_eq!(user.order_scope(), OrderScope::Owner(7));
        assert_eq!(admin.order_scope(), OrderScope::Any);
        assert!(user.back_office().is_err());
        assert!(Caller::Open.back_office().is_ok());
        assert!(Caller::Open.admin().is_err());
        assert!(Caller::Operator.admin().is_ok());
    }
}
