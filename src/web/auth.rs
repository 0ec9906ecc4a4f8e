//! Bearer tokens for workers and the API, compared in constant time.

use actix_web::http::header;
use actix_web::HttpRequest;
use subtle::ConstantTimeEq;

/// The token workers show to open `/ws/worker`.
pub struct WorkerToken(pub String);

/// The token scripts show to the JSON API, `/metrics` and other nodes.
pub struct ApiToken(pub String);

/// The token in `Authorization: Bearer ...`, if any.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Whether the request carries `expected`, compared without leaking timing.
pub fn has_token(req: &HttpRequest, expected: &str) -> bool {
    bearer(req).is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
}

/// Compares every byte whatever the first difference, so the time taken says
/// nothing about how much of a guess was right. Only the lengths may differ
/// in time, and they are no secret. `subtle` keeps the compiler from
/// turning the comparison back into an early exit.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_only_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
