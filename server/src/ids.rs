//! Server-generated identifiers and bearer secrets (secret keys, session tokens), and how they are checked.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Lower-case Crockford base32 of `bytes`.
fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// `len_bytes` random bytes, as lower-case base32.
pub fn random_base32(len_bytes: usize) -> String {
    let mut bytes = vec![0u8; len_bytes];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base32(&bytes)
}

/// A new id with 128 random bits behind a kind prefix, e.g. `conn_…`.
pub fn new_id(kind: &str) -> String {
    format!("{kind}_{}", random_base32(16))
}

/// The kinds of bearer secret the server hands out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// A project's secret key, for the customer's backend.
    SecretKey,
    /// A connect session token, for one end user's page.
    SessionToken,
}

impl SecretKind {
    fn tag(self) -> &'static str {
        match self {
            SecretKind::SecretKey => "pb_sk_",
            SecretKind::SessionToken => "pb_cs_",
        }
    }
}

/// Characters of random public prefix after the tag.
const PREFIX_RANDOM_LEN: usize = 12;

/// A freshly minted bearer secret: the whole token (shown once), its public
/// prefix (stored, used for lookup) and the hash of the whole token (stored).
pub struct MintedSecret {
    pub token: String,
    pub prefix: String,
    pub hash: Vec<u8>,
}

impl std::fmt::Debug for MintedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintedSecret")
            .field("prefix", &self.prefix)
            .field("token", &"[redacted]")
            .finish()
    }
}

pub fn mint_secret(kind: SecretKind) -> MintedSecret {
    let public = random_base32(PREFIX_RANDOM_LEN * 5 / 8 + 1);
    let prefix = format!("{}{}", kind.tag(), &public[..PREFIX_RANDOM_LEN]);
    // 256 random bits: a plain SHA-256 of the token is then a safe verifier.
    let token = format!("{prefix}_{}", random_base32(32));
    let hash = hash_secret(&token);
    MintedSecret {
        token,
        prefix,
        hash,
    }
}

pub fn hash_secret(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The prefix to look a presented token up by. A token of the wrong shape or
/// length still gets a prefix (one that matches no row), so that every
/// presented token takes the same path: one lookup, one constant-time compare.
pub fn lookup_prefix(kind: SecretKind, presented: &str) -> std::borrow::Cow<'_, str> {
    let len = kind.tag().len() + PREFIX_RANDOM_LEN;
    match presented.get(..len) {
        Some(p) if p.starts_with(kind.tag()) => std::borrow::Cow::Borrowed(p),
        _ => format!("{}{}", kind.tag(), "!".repeat(PREFIX_RANDOM_LEN)).into(),
    }
}

/// The public part of a presented bearer secret (its tag and lookup prefix,
/// whatever its kind), by which failed attempts against one key are counted.
pub fn public_part(presented: &str) -> &str {
    let len = SecretKind::SessionToken.tag().len() + PREFIX_RANDOM_LEN;
    match presented.char_indices().nth(len) {
        Some((end, _)) => &presented[..end],
        None => presented,
    }
}

/// Compares a presented token with a stored hash in constant time. With no
/// stored hash (unknown prefix) the comparison still runs, against a hash no
/// token has.
pub fn verify_secret(presented: &str, stored_hash: Option<&[u8]>) -> bool {
    let presented_hash = Sha256::digest(presented.as_bytes());
    let dummy = [0u8; 32];
    let (stored, found) = match stored_hash {
        Some(h) if h.len() == 32 => (h, true),
        _ => (&dummy[..], false),
    };
    let equal: bool = presented_hash.as_slice().ct_eq(stored).into();
    equal && found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_secret_verifies_and_others_do_not() {
        let m = mint_secret(SecretKind::SecretKey);
        assert!(m.token.starts_with("pb_sk_"));
        assert_eq!(lookup_prefix(SecretKind::SecretKey, &m.token), m.prefix);
        assert!(verify_secret(&m.token, Some(&m.hash)));
        let mut wrong = m.token.clone();
        wrong.pop();
        wrong.push('!');
        assert!(!verify_secret(&wrong, Some(&m.hash)));
        assert!(!verify_secret(&m.token, None));
        assert!(!format!("{m:?}").contains(&m.token));
    }

    #[test]
    fn ids_carry_128_random_bits() {
        // Decode 2,000 ids back to their bits: each of the 128 bit positions
        // must be set in about half of them (a counter, a timestamp or a
        // short random part would leave some positions fixed).
        let samples = 2000;
        let mut set = [0u32; 128];
        let mut seen = std::collections::HashSet::new();
        for _ in 0..samples {
            let id = new_id("conn");
            let body = id.strip_prefix("conn_").unwrap();
            assert_eq!(body.len(), 26);
            assert!(seen.insert(id.clone()), "an id repeated");
            let mut bits = Vec::with_capacity(130);
            for c in body.bytes() {
                let v = ALPHABET.iter().position(|&a| a == c).unwrap();
                for shift in (0..5).rev() {
                    bits.push((v >> shift) & 1 == 1);
                }
            }
            for (i, bit) in bits.iter().take(128).enumerate() {
                set[i] += u32::from(*bit);
            }
            assert!(!bits[128] && !bits[129], "the padding bits are zero");
        }
        for (i, n) in set.iter().enumerate() {
            assert!(
                (700..=1300).contains(n),
                "bit {i} was set in {n} of {samples} ids"
            );
        }
    }

    #[test]
    fn wrong_shapes_get_a_prefix_that_matches_nothing() {
        for t in ["", "x", "pb_sk_", "pb_cs_abcdefghijkl_x", "Bearer"] {
            let p = lookup_prefix(SecretKind::SecretKey, t);
            assert!(p.starts_with("pb_sk_"));
            assert_eq!(p.len(), 18);
        }
    }
}
