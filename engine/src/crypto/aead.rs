//! AES-256-GCM sealing in Cairn's framing: `nonce (12) || ciphertext || tag (16)`, with a fresh random
//! nonce per seal. This is standard AES-GCM (ring's implementation, which uses AES-NI/VAES and PCLMULQDQ
//! when the CPU has them); a test checks RustCrypto's `aes-gcm` reads and writes the same bytes.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::error::{Error, Result};

/// Bytes a sealed message has beyond its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
const TAG_LEN: usize = 16;

fn cipher(key: &[u8; 32]) -> LessSafeKey {
    // A 32-byte key is always valid for AES-256-GCM.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("AES-256 key is 32 bytes"))
}

/// Appends `nonce || AES-256-GCM(key, nonce, aad, plaintext) || tag` to `out`.
pub fn seal_into(key: &[u8; 32], aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
    let nonce_bytes: [u8; NONCE_LEN] = super::random_bytes();
    out.reserve(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&nonce_bytes);
    let start = out.len();
    out.extend_from_slice(plaintext);
    let tag = cipher(key)
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce_bytes), Aad::from(aad), &mut out[start..])
        .expect("plaintext is below AES-GCM's length limit");
    out.extend_from_slice(tag.as_ref());
}

/// Seals into a new vector.
pub fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    seal_into(key, aad, plaintext, &mut out);
    out
}

/// Opens a sealed message; any change to the key, the associated data or a single bit of `sealed` fails.
/// `what` names the object in the error.
pub fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
    let nonce = nonce_of(sealed, what)?;
    let mut buf = sealed[NONCE_LEN..].to_vec();
    let plain_len = open_body(key, nonce, aad, &mut buf, what)?;
    buf.truncate(plain_len);
    Ok(buf)
}

/// Opens a sealed message where it lies: the plaintext is decrypted over the ciphertext, and its range
/// within `sealed` is returned. Same checks as [`open`]; on failure `sealed` may hold garbage.
pub fn open_in_place(key: &[u8; 32], aad: &[u8], sealed: &mut [u8], what: &str) -> Result<std::ops::Range<usize>> {
    let nonce = nonce_of(sealed, what)?;
    let plain_len = open_body(key, nonce, aad, &mut sealed[NONCE_LEN..], what)?;
    Ok(NONCE_LEN..NONCE_LEN + plain_len)
}

/// The nonce in front of a sealed message, which must be long enough to hold a nonce and a tag.
fn nonce_of(sealed: &[u8], what: &str) -> Result<Nonce> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(Error::corrupt(what, "sealed data shorter than nonce and tag"));
    }
    Nonce::try_assume_unique_for_key(&sealed[..NONCE_LEN]).map_err(|_| Error::corrupt(what, "bad nonce"))
}

/// Decrypts `ciphertext || tag` in place; returns the plaintext's length.
fn open_body(key: &[u8; 32], nonce: Nonce, aad: &[u8], body: &mut [u8], what: &str) -> Result<usize> {
    cipher(key)
        .open_in_place(nonce, Aad::from(aad), body)
        .map(|plain| plain.len())
        .map_err(|_| Error::corrupt(what, "authentication failed (damaged or tampered data)"))
}

#[cfg(test)]
mod tests {
    use aes_gcm::aead::{Aead, KeyInit, Payload};
    use aes_gcm::{Aes256Gcm, Nonce as RcNonce};

    use super::*;

    #[test]
    fn opens_in_place_like_open() {
        let key = [9u8; 32];
        let mut sealed = seal(&key, b"ad", b"in place");
        let mut damaged = sealed.clone();
        damaged[14] ^= 4;
        let range = open_in_place(&key, b"ad", &mut sealed, "t").unwrap();
        assert_eq!(&sealed[range], b"in place");
        assert!(open_in_place(&key, b"ad", &mut damaged, "t").is_err());
        assert!(open_in_place(&key, b"ad", &mut [0u8; 27], "t").is_err());
    }

    #[test]
    fn round_trip_and_tamper() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"aad", b"hello world");
        assert_eq!(open(&key, b"aad", &sealed, "t").unwrap(), b"hello world");
        assert!(open(&key, b"other", &sealed, "t").is_err());
        assert!(open(&[8u8; 32], b"aad", &sealed, "t").is_err());
        for bit in 0..sealed.len() * 8 {
            let mut bad = sealed.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(open(&key, b"aad", &bad, "t").is_err(), "bit {bit} flip not detected");
        }
        assert!(open(&key, b"aad", &sealed[..10], "t").is_err());
    }

    #[test]
    fn rustcrypto_aes_gcm_reads_what_cairn_writes() {
        let key = [42u8; 32];
        let sealed = seal(&key, b"assoc", b"standard AES-GCM");
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let nonce = RcNonce::try_from(&sealed[..12]).unwrap();
        let plain = cipher.decrypt(&nonce, Payload { msg: &sealed[12..], aad: b"assoc" }).unwrap();
        assert_eq!(plain, b"standard AES-GCM");
    }

    #[test]
    fn cairn_reads_what_rustcrypto_aes_gcm_writes() {
        let key = [9u8; 32];
        let nonce_bytes = [3u8; 12];
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let nonce = RcNonce::try_from(&nonce_bytes[..]).unwrap();
        let ct = cipher.encrypt(&nonce, Payload { msg: b"interop", aad: b"x" }).unwrap();
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&ct);
        assert_eq!(open(&key, b"x", &sealed, "t").unwrap(), b"interop");
    }
}
