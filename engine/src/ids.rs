//! Typed identifiers. Each kind of id is its own type so that a pack id can never be passed where a chunk
//! id is expected.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Length in bytes of a content id (keyed BLAKE3-256).
pub const CONTENT_ID_LEN: usize = 32;

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The id's raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lower-case hex form, as used in blob names and on the command line.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses the full hex form.
            pub fn from_hex(text: &str) -> Result<Self> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(text, &mut out).map_err(|_| {
                    Error::InvalidArgument(format!(
                        "{:?} is not a valid {} ({} hex digits)",
                        text,
                        stringify!($name),
                        $len * 2
                    ))
                })?;
                Ok(Self(out))
            }

            /// Copies the id from a slice of exactly the right length.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                Some(Self(bytes.try_into().ok()?))
            }

            /// A fresh random id.
            pub fn random() -> Self {
                Self(crate::crypto::random_bytes())
            }
        }

        /// Hex in human-readable formats (JSON), raw bytes in binary ones (postcard).
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_hex())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                if d.is_human_readable() {
                    // Stored records hold the canonical lower-case form only: upper case would decode to
                    // the same id, so a flipped case bit would go unnoticed by a checksum over the decoded
                    // record.
                    let text = String::deserialize(d)?;
                    if text.bytes().any(|b| b.is_ascii_uppercase()) {
                        return Err(serde::de::Error::custom(format!(
                            "{text:?} is not a lower-case {}",
                            stringify!($name)
                        )));
                    }
                    Self::from_hex(&text).map_err(serde::de::Error::custom)
                } else {
                    <[u8; $len]>::deserialize(d).map(Self)
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

hex_id!(
    /// Names a chunk or a metadata blob (tree, chunk list) by the keyed BLAKE3-256 hash of its plaintext.
    ContentId,
    CONTENT_ID_LEN
);
hex_id!(
    /// Names a pack blob; random.
    PackId,
    16
);
hex_id!(
    /// Names a snapshot record; random.
    SnapshotId,
    16
);
hex_id!(
    /// Names an index blob; random.
    IndexId,
    16
);
hex_id!(
    /// The repository's unique id, fixed at creation.
    RepositoryId,
    16
);

/// A tree (directory record) is stored as content, so its id is a content id.
pub type TreeId = ContentId;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_in_json_bytes_in_postcard() {
        let id = ContentId([0xab; 32]);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(serde_json::from_str::<ContentId>(&serde_json::to_string(&id).unwrap()).unwrap(), id);
        let bin = postcard::to_allocvec(&id).unwrap();
        assert_eq!(bin.len(), 32);
        assert_eq!(postcard::from_bytes::<ContentId>(&bin).unwrap(), id);
        assert!(serde_json::from_str::<ContentId>("\"zz\"").is_err());
    }
}
