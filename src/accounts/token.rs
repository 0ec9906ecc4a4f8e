//! Random tokens, and the keyed hash a session is stored under: the cookie
//! holds a random token, the database its HMAC-SHA256 under the server's
//! session key, so neither a copy of the table nor a guessed id opens an
//! account.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;
use rand::Rng;

/// 32 random bytes, hex.
pub fn random() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex(&bytes)
}

/// HMAC-SHA256 of `token` under `key`, hex.
pub fn keyed_hash(key: &[u8], token: &str) -> String {
    let digest = PKey::hmac(key)
        .and_then(|pkey| {
            let mut signer = Signer::new(MessageDigest::sha256(), &pkey)?;
            signer.update(token.as_bytes())?;
            signer.sign_to_vec()
        })
        .expect("HMAC-SHA256 with an in-memory key does not fail");
    hex(&digest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashes_depend_on_the_key() {
        let (a, b) = (random(), random());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(keyed_hash(b"k1", &a), keyed_hash(b"k1", &a));
        assert_ne!(keyed_hash(b"k1", &a), keyed_hash(b"k2", &a));
        assert_ne!(keyed_hash(b"k1", &a), a);
    }
}
