//! The credential vault: AES-256-GCM under a key ring, every ciphertext naming
//! its key and bound to the row and field it belongs to.
//!
//! Ciphertext layout (stored as bytes):
//! `b"pbv1"` ‖ key-id length (1 byte) ‖ key id (ASCII) ‖ 12-byte nonce ‖ AES-GCM ciphertext and tag.
//! The associated data is `plugboard:{table}:{row id}:{field}`, so a value
//! copied to another row or field fails to decrypt.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use rand::RngCore;

const MAGIC: &[u8; 4] = b"pbv1";
const NONCE_LEN: usize = 12;

/// Where a sealed value lives; bound into the ciphertext as associated data.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub table: &'a str,
    pub row: &'a str,
    pub field: &'a str,
}

impl Binding<'_> {
    fn aad(&self) -> Vec<u8> {
        format!("plugboard:{}:{}:{}", self.table, self.row, self.field).into_bytes()
    }
}

impl std::fmt::Display for Binding<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} field {}", self.table, self.row, self.field)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("the master key is invalid: {0}")]
    InvalidKey(String),
    #[error("the value of {0} is not a vault ciphertext (truncated or corrupted)")]
    Malformed(String),
    #[error("the value of {binding} was sealed with vault key id `{key_id}`, which the key ring does not contain")]
    UnknownKey { binding: String, key_id: String },
    #[error(
        "the value of {0} failed to decrypt: it was altered, or belongs to another row or field"
    )]
    Tampered(String),
    #[error(
        "the master key given for vault key id `{0}` does not open this database's sealed values: \
         it is another key under the same id; give the key this database was sealed with"
    )]
    WrongKey(String),
}

struct VaultKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The key ring: the first key encrypts, every key decrypts.
pub struct KeyRing {
    keys: Vec<VaultKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        f.debug_struct("KeyRing")
            .field("key_ids", &ids)
            .finish_non_exhaustive()
    }
}

/// The id a key given without one (plain base64) gets, so that a ring
/// introduced later can still name it.
pub const DEFAULT_KEY_ID: &str = "default";

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl KeyRing {
    /// Parses `base64` (id `default`) or `id1:base64,id2:base64`.
    pub fn parse(spec: &str) -> Result<Self, VaultError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(VaultError::InvalidKey("it is empty".into()));
        }
        let mut keys: Vec<VaultKey> = Vec::new();
        for (position, part) in spec.split(',').enumerate() {
            let part = part.trim();
            let (id, material) = match part.split_once(':') {
                Some((id, material)) => (id.trim(), material.trim()),
                None => (DEFAULT_KEY_ID, part),
            };
            if !valid_key_id(id) {
                return Err(VaultError::InvalidKey(format!(
                    "key {} has an invalid id (use letters, digits, '-', '_' or '.')",
                    position + 1
                )));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(material)
                .map_err(|_| VaultError::InvalidKey(format!("key `{id}` is not valid base64")))?;
            if bytes.len() != 32 {
                return Err(VaultError::InvalidKey(format!(
                    "key `{id}` is {} bytes; it must be 32 bytes (base64 of 32 random bytes)",
                    bytes.len()
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(VaultError::InvalidKey(format!(
                    "key id `{id}` appears twice"
                )));
            }
            keys.push(VaultKey {
                id: id.to_string(),
                cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            });
        }
        Ok(KeyRing { keys })
    }

    /// A new random key, as the text `parse` reads (plain base64, id `default`).
    pub fn generate_spec() -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn active_key_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.iter().any(|k| k.id == key_id)
    }

    /// The ids of the ring's keys, the active one first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Seals under the active key.
    pub fn seal(&self, binding: Binding<'_>, plaintext: &[u8]) -> Vec<u8> {
        Self::seal_under(&self.keys[0], binding, plaintext)
    }

    /// Seals under the key `key_id` of the ring, if it has one (for the
    /// check value each key gets).
    pub fn seal_with(
        &self,
        key_id: &str,
        binding: Binding<'_>,
        plaintext: &[u8],
    ) -> Option<Vec<u8>> {
        let key = self.keys.iter().find(|k| k.id == key_id)?;
        Some(Self::seal_under(key, binding, plaintext))
    }

    fn seal_under(key: &VaultKey, binding: Binding<'_>, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = binding.aad();
        // Encryption with a valid key and nonce cannot fail for inputs under 64 GiB.
        let sealed = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(MAGIC.len() + 1 + key.id.len() + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, binding: Binding<'_>, ciphertext: &[u8]) -> Result<Vec<u8>, VaultError> {
        let (key_id, nonce, sealed) =
            split(ciphertext).ok_or_else(|| VaultError::Malformed(binding.to_string()))?;
        let key =
            self.keys
                .iter()
                .find(|k| k.id == key_id)
                .ok_or_else(|| VaultError::UnknownKey {
                    binding: binding.to_string(),
                    key_id: key_id.to_string(),
                })?;
        let aad = binding.aad();
        key.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Tampered(binding.to_string()))
    }

    /// Opens a value and decodes it as UTF-8 text.
    pub fn open_string(
        &self,
        binding: Binding<'_>,
        ciphertext: &[u8],
    ) -> Result<String, VaultError> {
        let bytes = self.open(binding, ciphertext)?;
        String::from_utf8(bytes).map_err(|_| VaultError::Tampered(binding.to_string()))
    }
}

/// The key id a ciphertext names, without decrypting it.
pub fn key_id_of(ciphertext: &[u8]) -> Option<&str> {
    split(ciphertext).map(|(id, _, _)| id)
}

fn split(ciphertext: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    let rest = ciphertext.strip_prefix(MAGIC.as_slice())?;
    let (&id_len, rest) = rest.split_first()?;
    let id_len = usize::from(id_len);
    if rest.len() < id_len + NONCE_LEN + 16 {
        return None;
    }
    let (id, rest) = rest.split_at(id_len);
    let id = std::str::from_utf8(id).ok()?;
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    Some((id, nonce, sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(spec: &str) -> KeyRing {
        KeyRing::parse(spec).expect("valid ring")
    }

    const B: Binding<'static> = Binding {
        table: "integration_secrets",
        row: "int_1",
        field: "client_secret",
    };

    #[test]
    fn seals_and_opens_with_the_binding() {
        let r = ring(&KeyRing::generate_spec());
        let c = r.seal(B, b"s3cret");
        assert_eq!(key_id_of(&c), Some("default"));
        assert_eq!(r.open(B, &c).unwrap(), b"s3cret");
        assert!(!c.windows(6).any(|w| w == b"s3cret"));
    }

    #[test]
    fn refuses_bad_key_specs() {
        assert!(KeyRing::parse("").is_err());
        assert!(KeyRing::parse("not base64!").is_err());
        assert!(KeyRing::parse("c2hvcnQ=").is_err());
        let k = KeyRing::generate_spec();
        assert!(KeyRing::parse(&format!("a:{k},a:{k}")).is_err());
        assert!(KeyRing::parse(&format!("bad id:{k}")).is_err());
        let r = ring(&format!("new:{k},default:{k}"));
        assert_eq!(r.active_key_id(), "new");
        assert!(r.contains("default"));
    }
}
