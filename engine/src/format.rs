//! The format blob `cairn.repository`: the repository's root. It is JSON with a checksum, so damage is told
//! apart from a wrong password: `{"format": {...}, "checksum": "<BLAKE3 of the format object's JSON>"}`.
//! The format object records the version, the repository id, the algorithms and their parameters, the
//! argon2id parameters with their salt, and the master key sealed with AES-256-GCM under the key the
//! password derives (associated data: `"cairn-format-v1\0"` + repository id).

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::compress;
use crate::crypto::aead;
use crate::crypto::kdf::KdfParams;
use crate::crypto::keys::MasterKey;
use crate::error::{Error, Result};
use crate::ids::RepositoryId;

/// The storage name of the format blob.
pub const FORMAT_BLOB_NAME: &str = "cairn.repository";
/// The only format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// A format blob is never larger than this.
pub const MAX_FORMAT_BLOB: usize = 64 << 10;
/// Default target pack size.
pub const DEFAULT_PACK_SIZE: u32 = 16 << 20;
/// Default zstd level (see docs/FORMAT.md for the measurement).
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;

/// Names of the algorithms in use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Algorithms {
    pub hash: String,
    pub encryption: String,
    pub compression: String,
    pub chunker: String,
}

impl Algorithms {
    fn v1() -> Self {
        Self {
            hash: "BLAKE3-256-KEYED".into(),
            encryption: "AES-256-GCM-PER-CONTENT-KEY".into(),
            compression: "ZSTD".into(),
            chunker: "FASTCDC-2020-SEEDED".into(),
        }
    }
}

/// The repository's fixed parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Format {
    pub magic: String,
    pub version: u32,
    pub repository_id: RepositoryId,
    pub algorithms: Algorithms,
    pub chunker: ChunkerParams,
    pub compression_level: i32,
    pub pack_size: u32,
    pub kdf: KdfParams,
    /// Hex of `nonce || AES-256-GCM(master key) || tag`.
    pub sealed_master_key: String,
}

#[derive(Serialize, Deserialize)]
struct FormatFile {
    format: Format,
    checksum: String,
}

/// Settings a user may choose at creation.
#[derive(Clone, Debug)]
pub struct CreateOptions {
    pub chunker: ChunkerParams,
    pub compression_level: i32,
    pub pack_size: u32,
}

impl Default for CreateOptions {
    fn default() -> Self {
        Self {
            chunker: ChunkerParams::DEFAULT,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            pack_size: DEFAULT_PACK_SIZE,
        }
    }
}

fn aad(id: &RepositoryId) -> Vec<u8> {
    let mut aad = b"cairn-format-v1\0".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad
}

fn checksum(format: &Format) -> String {
    blake3::hash(&serde_json::to_vec(format).expect("format serialises")).to_hex().to_string()
}

impl Format {
    /// A new format with a fresh id and master key sealed under `password`.
    pub fn create(password: &[u8], options: &CreateOptions) -> Result<(Format, MasterKey)> {
        options.chunker.validate()?;
        if options.compression_level != 0 && !compress::LEVELS.contains(&options.compression_level) {
            return Err(Error::InvalidArgument(format!(
                "compression level {} is not 0 (off) or {}..={}",
                options.compression_level,
                compress::LEVELS.start(),
                compress::LEVELS.end()
            )));
        }
        if !(1 << 20..=1 << 30).contains(&options.pack_size) {
            return Err(Error::InvalidArgument("pack size must be between 1 MiB and 1 GiB".into()));
        }
        let master = MasterKey::generate();
        let repository_id = RepositoryId::random();
        let kdf = KdfParams::new_default();
        let wrapping = kdf.derive(password)?;
        let sealed = aead::seal(&wrapping, &aad(&repository_id), &master.0);
        let format = Format {
            magic: "cairn-repository".into(),
            version: FORMAT_VERSION,
            repository_id,
            algorithms: Algorithms::v1(),
            chunker: options.chunker,
            compression_level: options.compression_level,
            pack_size: options.pack_size,
            kdf,
            sealed_master_key: hex::encode(sealed),
        };
        Ok((format, master))
    }

    /// The stored bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = FormatFile { format: self.clone(), checksum: checksum(self) };
        let mut out = serde_json::to_vec_pretty(&file).expect("format serialises");
        out.push(b'\n');
        out
    }

    /// Parses and checks stored bytes (no password needed).
    pub fn from_bytes(bytes: &[u8]) -> Result<Format> {
        let corrupt = |detail: String| Error::corrupt("format blob", detail);
        if bytes.len() > MAX_FORMAT_BLOB {
            return Err(corrupt(format!("{} bytes, above the limit", bytes.len())));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not valid JSON ({e})")))?;
        let version = value.pointer("/format/version").and_then(|v| v.as_u64());
        match version {
            Some(v) if v == FORMAT_VERSION as u64 => {}
            Some(v) => {
                return Err(Error::Unsupported(format!("format version {v} (this build reads {FORMAT_VERSION})")))
            }
            None => return Err(corrupt("no format version".into())),
        }
        let file: FormatFile = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
        if checksum(&file.format) != file.checksum {
            return Err(corrupt("checksum mismatch (the file was modified or damaged)".into()));
        }
        let f = file.format;
        if f.magic != "cairn-repository" || f.algorithms != Algorithms::v1() {
            return Err(Error::Unsupported(format!("algorithms {:?}", f.algorithms)));
        }
        f.chunker.validate().map_err(|e| corrupt(e.to_string()))?;
        if !(1 << 20..=1 << 30).contains(&f.pack_size) || !(0..=*compress::LEVELS.end()).contains(&f.compression_level)
        {
            return Err(corrupt("pack size or compression level out of range".into()));
        }
        Ok(f)
    }

    /// The same format with `master` sealed under `new_password` and a fresh salt (the key derivation's
    /// cost is this build's default): what a password change writes. Nothing else changes, so every key
    /// derived from the master key, and all content, stays as it is.
    pub fn resealed(&self, master: &MasterKey, new_password: &[u8]) -> Result<Format> {
        if new_password.is_empty() {
            return Err(Error::InvalidArgument("the new password must not be empty".into()));
        }
        let kdf = KdfParams::new_default();
        let wrapping = kdf.derive(new_password)?;
        let sealed = aead::seal(&wrapping, &aad(&self.repository_id), &master.0);
        Ok(Format { kdf, sealed_master_key: hex::encode(sealed), ..self.clone() })
    }

    /// Unseals the master key; a wrong password is [`Error::WrongPassword`].
    pub fn unlock(&self, password: &[u8]) -> Result<MasterKey> {
        let wrapping = self.kdf.derive(password)?;
        let sealed = hex::decode(&self.sealed_master_key)
            .map_err(|_| Error::corrupt("format blob", "sealed master key is not hex"))?;
        let key = aead::open(&wrapping, &aad(&self.repository_id), &sealed, "master key")
            .map_err(|_| Error::WrongPassword)?;
        let key: [u8; 32] =
            key.try_into().map_err(|_| Error::corrupt("format blob", "master key has the wrong length"))?;
        Ok(MasterKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_unlock_and_detect_damage() {
        let (format, master) = Format::create(b"pw", &CreateOptions::default()).unwrap();
        let bytes = format.to_bytes();
        let back = Format::from_bytes(&bytes).unwrap();
        assert_eq!(back, format);
        assert_eq!(back.unlock(b"pw").unwrap().0, master.0);
        assert!(matches!(back.unlock(b"wrong"), Err(Error::WrongPassword)));
        // Change a digit of the pack size: checksum catches it.
        let text =
            String::from_utf8(bytes.clone()).unwrap().replace("\"pack_size\": 16777216", "\"pack_size\": 16777217");
        assert!(matches!(Format::from_bytes(text.as_bytes()), Err(Error::Corrupt { .. })));
        assert!(matches!(Format::from_bytes(&bytes[..bytes.len() / 2]), Err(Error::Corrupt { .. })));
        // Upper case decodes to the same repository id, so it is refused outright (found by the tamper
        // proptest: a flipped case bit in the id went unnoticed).
        let id = format.repository_id.to_hex();
        let upper = String::from_utf8(bytes.clone()).unwrap().replace(&id, &id.to_uppercase());
        assert_ne!(upper.as_bytes(), &bytes[..]);
        assert!(matches!(Format::from_bytes(upper.as_bytes()), Err(Error::Corrupt { .. })));
        assert!(matches!(Format::from_bytes(b"garbage"), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn resealing_changes_the_password_and_nothing_else() {
        let (format, master) = Format::create(b"old", &CreateOptions::default()).unwrap();
        let changed = Format::from_bytes(&format.resealed(&master, b"new").unwrap().to_bytes()).unwrap();
        assert_eq!(changed.unlock(b"new").unwrap().0, master.0);
        assert!(matches!(changed.unlock(b"old"), Err(Error::WrongPassword)));
        assert_ne!(changed.kdf.salt, format.kdf.salt, "a fresh salt");
        let same_but_key =
            Format { kdf: format.kdf.clone(), sealed_master_key: format.sealed_master_key.clone(), ..changed };
        assert_eq!(same_but_key, format);
        assert!(matches!(format.resealed(&master, b""), Err(Error::InvalidArgument(_))));
    }
}
