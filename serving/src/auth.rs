//! Bearer tokens: the viewer of every per-user read is the `sub` of an HS256 JWT signed with the
//! configured secret — never a query parameter.
//!
//! [`Tokens::mint`] is what `aperture token <user_id>` uses to hand developers a token; a real
//! deployment's identity service signs the same claims with the same secret.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use quick_cache::sync::Cache;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// The claims Aperture reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a decimal string (JWT subjects are strings).
    pub sub: String,
    /// Issued at, seconds since the epoch.
    pub iat: u64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
}

/// Signs and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Tokens verified already, with their user and expiry: an app sends the same token with
    /// every request, and verifying it again (base64, HMAC, JSON) was a tenth of a feed
    /// request's CPU.
    verified: Arc<Cache<String, (u64, u64)>>,
}

/// Verified tokens kept.
const VERIFIED_CAP: usize = 100_000;

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").finish_non_exhaustive()
    }
}

impl Tokens {
    pub fn new(secret: &str) -> Tokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 30;
        Tokens {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            verified: Arc::new(Cache::new(VERIFIED_CAP)),
        }
    }

    /// A token naming `user_id`, valid for `ttl` from now.
    pub fn mint(&self, user_id: u64, ttl: Duration) -> String {
        let now = now_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + ttl.as_secs().max(1),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing of plain claims cannot fail")
    }

    /// The user a token names, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<u64, ApiError> {
        if let Some((user, exp)) = self.verified.get(token)
            && now_secs() < exp + self.validation.leeway
        {
            return Ok(user);
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| ApiError::Unauthorized(format!("the bearer token is not valid: {e}")))?;
        let sub = data.claims.sub;
        match sub.parse::<u64>() {
            Ok(id) if (1..=aperture_schema::MAX_ID).contains(&id) => {
                self.verified
                    .insert(token.to_owned(), (id, data.claims.exp));
                Ok(id)
            }
            _ => Err(ApiError::Unauthorized(format!(
                "the token's sub {sub:?} is not a user id (an integer from 1 to 2^53-1)"
            ))),
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The authenticated viewer of a request: the `sub` of its bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer(pub u64);

impl<S> FromRequestParts<S> for Viewer
where
    Tokens: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Some(header) = parts.headers.get(AUTHORIZATION) else {
            // A browser signed in on the dashboard carries the token in its session cookie.
            let token = session_token(&parts.headers).ok_or_else(|| {
                ApiError::Unauthorized(
                    "this endpoint needs an Authorization: Bearer <token> header or a \
                     signed-in session"
                        .into(),
                )
            })?;
            // A cookie goes with every request the browser makes, whichever site asked for it
            // (SameSite=Strict aside): a state-changing one must come from a page of ours.
            if !parts.method.is_safe() && !same_origin(&parts.headers) {
                return Err(ApiError::Forbidden(
                    "a request signed in by the session cookie that changes state must come \
                     from a page of this site (its Origin header names another)"
                        .into(),
                ));
            }
            return Tokens::from_ref(state).verify(&token).map(Viewer);
        };
        let value = header
            .to_str()
            .map_err(|_| ApiError::Unauthorized("the Authorization header is not ASCII".into()))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?;
        Tokens::from_ref(state).verify(token.trim()).map(Viewer)
    }
}

/// The cookie a signed-in browser holds: the token itself, HttpOnly, so no script can read it.
pub const SESSION_COOKIE: &str = "aperture_session";

/// Whether a request comes from a page of this site: its `Origin` (or, without one, its
/// `Referer`) names the host it was sent to. Browsers send `Origin` on every POST.
pub fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    use axum::http::header;
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let from = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok());
    from.is_some_and(|o| {
        let rest = o
            .strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            .unwrap_or("");
        rest.split('/').next() == Some(host)
    })
}

/// The token of the session cookie, if the request carries one.
pub fn session_token(headers: &axum::http::HeaderMap) -> Option<String> {
    axum_extra::extract::CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_verifies_to_its_user() {
        let tokens = Tokens::new("a-secret-of-sufficient-length");
        let token = tokens.mint(42, Duration::from_secs(60));
        assert_eq!(tokens.verify(&token).unwrap(), 42);
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token =
            Tokens::new("one-secret-of-sufficient-length").mint(42, Duration::from_secs(60));
        let err = Tokens::new("another-secret-of-sufficient-len")
            .verify(&token)
            .unwrap_err();
        assert!(matches!(err, ApiError::Unauthorized(_)), "{err:?}");
    }

    #[test]
    fn an_expired_token_is_refused() {
        let tokens = Tokens::new("a-secret-of-sufficient-length");
        let claims = Claims {
            sub: "42".into(),
            iat: 1_000,
            exp: 2_000,
        };
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(b"a-secret-of-sufficient-length"),
        )
        .unwrap();
        let err = tokens.verify(&token).unwrap_err().to_string();
        assert!(err.contains("ExpiredSignature"), "{err}");
    }

    #[test]
    fn a_sub_that_is_not_a_user_id_is_refused() {
        let tokens = Tokens::new("a-secret-of-sufficient-length");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        for sub in ["alice", "0", "9007199254740992", "-1"] {
            let claims = Claims {
                sub: sub.into(),
                iat: now,
                exp: now + 60,
            };
            let token = jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"a-secret-of-sufficient-length"),
            )
            .unwrap();
            let err = tokens.verify(&token).unwrap_err().to_string();
            assert!(err.contains("not a user id"), "{sub}: {err}");
        }
    }
}
