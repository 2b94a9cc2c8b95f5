//! Authentication: HTTP Basic in the handshake, bearer tokens after it.
//!
//! ```text
//!  client ── Handshake, authorization: Basic user:password ──► verify argon2id hash
//!         ◄── authorization: Bearer <token> ───────────────── token: 32 random bytes,
//!                                                              kept in memory until it expires
//!  client ── any call, authorization: Bearer <token> ──► AuthLayer: token → Principal
//!                                                        (request extension) or Unauthenticated
//! ```
//!
//! Tokens live in this process only: a restart revokes them all.
//!
//! Password checks are bounded: at most [`VERIFY_AT_ONCE`] argon2
//! verifications run at a time (each holds about 19 MiB), at most
//! [`VERIFY_QUEUE`] handshakes wait for one (the rest are refused at once),
//! and failures lock their user name and address out for a while
//! ([`super::throttle`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures::FutureExt;
use spar_engine::{Access, ServerConfig, UserConfig};
use tokio::sync::Semaphore;
use tonic::codegen::http;
use tonic::Status;

use super::throttle::Throttle;

/// argon2 verifications that run at once.
pub(crate) const VERIFY_AT_ONCE: usize = 2;
/// Handshakes that may wait for a verification; more are refused.
pub(crate) const VERIFY_QUEUE: usize = 64;
/// Live tokens one user may hold; a new one replaces their oldest.
pub(crate) const TOKENS_PER_USER: usize = 1024;

/// The gRPC path of the handshake: the one call that needs no token.
const HANDSHAKE_PATH: &str = "/arrow.flight.protocol.FlightService/Handshake";

/// Who is calling, and what they may read. Put into every authenticated
/// request's extensions by [`AuthLayer`].
#[derive(Debug)]
pub(crate) struct Principal {
    /// The user name (`anonymous` for anonymous clients).
    pub(crate) user: String,
    /// What the user may read.
    pub(crate) access: Access,
}

struct User {
    /// The PHC string (`$argon2id$...`), checked when the server starts.
    hash: String,
    principal: Arc<Principal>,
}

struct Token {
    principal: Arc<Principal>,
    expires: Instant,
}

/// The users, the issued tokens, and the anonymous policy.
pub(crate) struct Authenticator {
    users: HashMap<String, User>,
    anonymous: Option<Arc<Principal>>,
    ttl: Duration,
    /// Issued tokens; a std mutex, held only to insert, look up or prune.
    tokens: Mutex<HashMap<String, Token>>,
    /// A hash to verify against for unknown users, so that a wrong user
    /// name takes as long as a wrong password.
    decoy: String,
    /// Slots for argon2 verifications ([`VERIFY_AT_ONCE`]).
    verify_slots: Semaphore,
    /// Handshakes holding or waiting for a slot ([`VERIFY_QUEUE`]).
    verifying: AtomicUsize,
    /// Failed logins per user name and address.
    throttle: Throttle,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("anonymous", &self.anonymous.is_some())
            .finish()
    }
}

impl Authenticator {
    /// Checks every user's hash; the error names the user whose hash is
    /// malformed (never the hash).
    pub(crate) fn new(server: &ServerConfig, users: &[UserConfig]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (i, u) in users.iter().enumerate() {
            let parsed = PasswordHash::new(&u.password_hash).map_err(|e| {
                format!(
                    "users[{i}] (`{}`): password_hash is not a valid argon2id hash ({e}); make one with `spar hash-password`",
                    u.name
                )
            })?;
            if parsed.algorithm.as_str() != "argon2id" {
                return Err(format!(
                    "users[{i}] (`{}`): password_hash uses {}, expected argon2id; make one with `spar hash-password`",
                    u.name, parsed.algorithm
                ));
            }
            map.insert(
                u.name.clone(),
                User {
                    hash: u.password_hash.clone(),
                    principal: Arc::new(Principal {
                        user: u.name.clone(),
                        access: Access::grants(&u.name, u.grants.clone()),
                    }),
                },
            );
        }
        if map.is_empty() && !server.allow_anonymous {
            return Err(
                "no [[users]] are configured and server.allow_anonymous is false, so nobody could connect; \
                 add a user (make its hash with `spar hash-password`) or set allow_anonymous = true"
                    .into(),
            );
        }
        let anonymous = server.allow_anonymous.then(|| {
            Arc::new(Principal {
                user: "anonymous".into(),
                access: Access::grants("anonymous", server.anonymous_grants.clone()),
            })
        });
        Ok(Self {
            users: map,
            anonymous,
            ttl: server.token_ttl,
            tokens: Mutex::new(HashMap::new()),
            decoy: hash_password("decoy").map_err(|e| e.to_string())?,
            verify_slots: Semaphore::new(VERIFY_AT_ONCE),
            verifying: AtomicUsize::new(0),
            throttle: Throttle::default(),
        })
    }

    /// Verifies an `authorization: Basic ...` header (or its absence, when
    /// anonymous access is allowed) from a client at `address`, and issues
    /// a token.
    pub(crate) async fn login(
        self: &Arc<Self>,
        authorization: Option<&str>,
        address: Option<IpAddr>,
    ) -> Result<(String, Arc<Principal>), Status> {
        let principal = match authorization {
            None => self.anonymous.clone().ok_or_else(|| {
                Status::unauthenticated(
                    "credentials required: send `authorization: Basic base64(user:password)` with the handshake",
                )
            })?,
            Some(header) => {
                let (user, password) = parse_basic(header)?;
                self.check_password(user, password, address).await?
            }
        };
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let now = Instant::now();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.retain(|_, t| t.expires > now);
            let theirs = tokens
                .iter()
                .filter(|(_, t)| t.principal.user == principal.user);
            if theirs.clone().count() >= TOKENS_PER_USER {
                let oldest = theirs
                    .min_by_key(|(_, t)| t.expires)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    tokens.remove(&oldest);
                }
            }
            tokens.insert(
                token.clone(),
                Token {
                    principal: Arc::clone(&principal),
                    expires: now + self.ttl,
                },
            );
        }
        tracing::info!(user = principal.user, "authenticated");
        Ok((token, principal))
    }

    /// Checks a password within the bounds of the module docs.
    async fn check_password(
        self: &Arc<Self>,
        user: String,
        password: String,
        address: Option<IpAddr>,
    ) -> Result<Arc<Principal>, Status> {
        let locked = |wait: Duration| {
            Status::unauthenticated(format!(
                "too many failed logins for this user name or from this address; try again in {} s",
                wait.as_secs().max(1)
            ))
        };
        if let Some(wait) = self.throttle.locked_for(&user, address) {
            return Err(locked(wait));
        }
        /// Counts a handshake in [`Authenticator::verifying`] while alive.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let _waiting = Waiting(&self.verifying);
        if self.verifying.fetch_add(1, Ordering::AcqRel) >= VERIFY_QUEUE + VERIFY_AT_ONCE {
            return Err(Status::resource_exhausted(
                "too many handshakes in progress; try again shortly",
            ));
        }
        let _slot = self
            .verify_slots
            .acquire()
            .await
            .map_err(|_| Status::unavailable("the server is shutting down"))?;
        // Failures may have piled up while this one waited.
        if let Some(wait) = self.throttle.locked_for(&user, address) {
            return Err(locked(wait));
        }
        let me = Arc::clone(self);
        let name = user.clone();
        // argon2 costs tens of milliseconds of CPU: off the async threads.
        let checked = tokio::task::spawn_blocking(move || me.verify(&name, &password))
            .await
            .map_err(|_| Status::internal("password check was interrupted; try again"))?;
        match &checked {
            Ok(_) => self.throttle.succeeded(&user, address),
            Err(_) => self.throttle.failed(&user, address),
        }
        checked
    }

    fn verify(&self, user: &str, password: &str) -> Result<Arc<Principal>, Status> {
        let refused = || Status::unauthenticated("invalid user name or password");
        let (hash, principal) = match self.users.get(user) {
            Some(u) => (u.hash.as_str(), Some(&u.principal)),
            None => (self.decoy.as_str(), None),
        };
        let parsed = PasswordHash::new(hash).map_err(|_| refused())?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        match principal {
            Some(p) if ok => Ok(Arc::clone(p)),
            _ => {
                tracing::warn!(user, "authentication failed");
                Err(refused())
            }
        }
    }

    /// The caller of a non-handshake request, from its bearer token (or
    /// anonymous, when allowed and no token is sent).
    pub(crate) fn check(&self, headers: &http::HeaderMap) -> Result<Arc<Principal>, Status> {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return self.anonymous.clone().ok_or_else(|| {
                Status::unauthenticated(
                    "not authenticated: call Handshake with user and password, then send `authorization: Bearer <token>`",
                )
            });
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated(
                    "expected `authorization: Bearer <token>` (the token the handshake returned)",
                )
            })?;
        let tokens = self
            .tokens
            .lock()
            .map_err(|_| Status::internal("token table unavailable; try again"))?;
        match tokens.get(token.trim()) {
            Some(t) if t.expires > Instant::now() => Ok(Arc::clone(&t.principal)),
            Some(_) => Err(Status::unauthenticated(
                "token expired: call Handshake again",
            )),
            None => Err(Status::unauthenticated(
                "unknown token (the server may have restarted): call Handshake again",
            )),
        }
    }
}

/// `Basic base64(user:password)` → (user, password).
fn parse_basic(header: &str) -> Result<(String, String), Status> {
    let bad = || {
        Status::invalid_argument(
            "expected `authorization: Basic base64(user:password)` in the handshake",
        )
    };
    let encoded = header.strip_prefix("Basic ").ok_or_else(bad)?;
    // Go's Flight client (behind the ADBC drivers) sends no padding.
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let decoded = lenient.decode(encoded.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok((user.to_string(), password.to_string()))
}

/// An argon2id hash of `password` in PHC form, with a random salt.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

/// A tower layer that authenticates every call but the handshake.
#[derive(Clone, Debug)]
pub(crate) struct AuthLayer {
    pub(crate) auth: Arc<Authenticator>,
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

/// See [`AuthLayer`].
#[derive(Clone, Debug)]
pub(crate) struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, B, R> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if request.uri().path() != HANDSHAKE_PATH {
            match self.auth.check(request.headers()) {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                }
                Err(status) => return Box::pin(async move { Ok(status.into_http()) }),
            }
        }
        let path = request.uri().path().to_string();
        let call = self.inner.call(request);
        Box::pin(async move {
            // A panic anywhere in a request (a bug) fails that request,
            // not the connection or the server.
            let mut response = match std::panic::AssertUnwindSafe(call).catch_unwind().await {
                Ok(response) => response?,
                Err(panic) => {
                    tracing::error!(path, panic = panic_message(&panic), "request panicked");
                    return Ok(Status::internal(
                        "internal error while serving this request (logged on the server); the server keeps serving",
                    )
                    .into_http());
                }
            };
            super::status::malformed_is_invalid_argument(response.headers_mut());
            Ok(response)
        })
    }
}

/// The message of a caught panic, for the log.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn basic_headers_parse() {
        let header = format!("Basic {}", STANDARD.encode("ann:pa:ss"));
        assert_eq!(
            parse_basic(&header).ok(),
            Some(("ann".to_string(), "pa:ss".to_string()))
        );
        let unpadded = format!("Basic {}", STANDARD.encode("ann:pw").trim_end_matches('='));
        assert_eq!(
            parse_basic(&unpadded).ok(),
            Some(("ann".to_string(), "pw".to_string()))
        );
        assert!(parse_basic("Bearer x").is_err());
        assert!(parse_basic("Basic !!!").is_err());
    }

    #[test]
    fn hashes_are_argon2id_and_verify() -> Result<(), String> {
        let hash = hash_password("s3cret").map_err(|e| e.to_string())?;
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let users = [UserConfig {
            name: "ann".into(),
            password_hash: hash,
            grants: vec![],
        }];
        let auth = Authenticator::new(&ServerConfig::default(), &users)?;
        assert!(auth.verify("ann", "s3cret").is_ok());
        assert!(auth.verify("ann", "wrong").is_err());
        assert!(auth.verify("bob", "s3cret").is_err());
        Ok(())
    }

    #[test]
    fn nobody_could_connect_without_users_or_anonymous() {
        let e = Authenticator::new(&ServerConfig::default(), &[]).err();
        assert!(e.is_some_and(|e| e.contains("nobody could connect")));
    }
}
