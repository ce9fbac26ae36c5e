//! The storage contract (see the module documentation of `storage`) as one test suite, generic over the
//! backend. Every backend runs all of it through [`conformance_tests!`], with a [`Harness`] that makes empty
//! stores and knows how to leave a blob half-written the way a crash inside `put` would.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{Storage, StorageError};

/// How the suite gets stores of one backend.
pub(crate) trait Harness {
    type S: Storage + 'static;

    /// An empty store, or `None` when the backend is not available here (the test then passes after saying
    /// why on stderr; a harness that must not skip panics instead).
    fn fresh(&self) -> Option<Self::S>;

    /// Leaves what a `put` of `name` interrupted half-way leaves behind (a temporary file, an unfinished
    /// multipart upload), if the backend can have such a state at all.
    fn leave_half_written(&self, store: &Self::S, name: &str, data: &[u8]);

    /// The size of the largest blob written: large enough to take the backend's multipart path, if any.
    fn large_blob_size(&self) -> usize {
        3 << 20
    }
}

/// Runs one check on a fresh store.
pub(crate) fn run<H: Harness>(harness: H, check: fn(&H, &H::S)) {
    if let Some(store) = harness.fresh() {
        check(&harness, &store);
    }
}

/// Declares one `#[test]` per check for a harness expression.
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::storage::conformance::conformance_tests!(@each $harness;
            round_trip, ranges, not_found_is_distinct, invalid_names_are_refused, list_by_prefix, list_many,
            delete_is_idempotent, half_written_is_never_visible, readers_never_see_partial_blobs,
            concurrent_writers);
    };
    (@each $harness:expr; $($check:ident),*) => {
        $(
            #[test]
            fn $check() {
                $crate::storage::conformance::run($harness, $crate::storage::conformance::$check);
            }
        )*
    };
}
pub(crate) use conformance_tests;

/// Deterministic bytes for a blob, different for every name.
pub(crate) fn content(name: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new().update(name.as_bytes()).finalize_xof().fill(&mut out);
    out
}

fn pack_name(kind: char, i: usize) -> String {
    format!("{kind}{i:032x}")
}

fn names(store: &dyn Storage, prefix: &str) -> BTreeSet<String> {
    let listed = store.list(prefix).unwrap_or_else(|e| panic!("list {prefix:?}: {e}"));
    let count = listed.len();
    let set: BTreeSet<String> = listed.into_iter().map(|b| b.name).collect();
    assert_eq!(set.len(), count, "list {prefix:?} returned a name twice");
    set
}

fn put_all(store: &dyn Storage, names: &[String], len: usize) {
    std::thread::scope(|scope| {
        for part in names.chunks(names.len().div_ceil(8).max(1)) {
            scope.spawn(move || {
                for name in part {
                    store.put(name, &content(name, len)).unwrap_or_else(|e| panic!("put {name}: {e}"));
                }
            });
        }
    });
}

pub(crate) fn round_trip<H: Harness>(h: &H, s: &H::S) {
    for (i, len) in [0, 1, 1000, 256 << 10, h.large_blob_size()].into_iter().enumerate() {
        let name = pack_name('p', i);
        let data = content(&name, len);
        s.put(&name, &data).unwrap();
        assert_eq!(s.get(&name).unwrap(), data, "{name} ({len} bytes)");
        assert_eq!(s.stat(&name).unwrap().size, len as u64);
        // Writing the same bytes again is harmless.
        s.put(&name, &data).unwrap();
        assert_eq!(s.get(&name).unwrap(), data);
    }
    s.put("cairn.repository", b"first").unwrap();
    s.put("cairn.repository", b"second, longer").unwrap();
    assert_eq!(s.get("cairn.repository").unwrap(), b"second, longer", "a put replaces the blob");
    let listed = s.list("").unwrap();
    let format = listed.iter().find(|b| b.name == "cairn.repository").expect("format blob listed");
    assert_eq!(format.size, 14);
}

pub(crate) fn ranges<H: Harness>(h: &H, s: &H::S) {
    let name = pack_name('p', 7);
    let len = h.large_blob_size();
    let data = content(&name, len);
    s.put(&name, &data).unwrap();
    let last = len as u64;
    for (offset, length) in [(0, 1), (0, last), (1, 100), (last - 1, 1), (last / 2, 4096), (0, 0), (last, 0)] {
        let got = s.get_range(&name, offset, length).unwrap_or_else(|e| panic!("range {offset}+{length}: {e}"));
        assert_eq!(got, &data[offset as usize..(offset + length) as usize], "range {offset}+{length}");
    }
    for (offset, length) in [(last, 1), (last - 1, 2), (last + 10, 0), (u64::MAX, 1), (1, u64::MAX)] {
        let err = s.get_range(&name, offset, length).expect_err("a range outside the blob is refused");
        assert!(matches!(err, StorageError::OutOfRange { .. }), "range {offset}+{length}: {err}");
    }
    let missing = s.get_range(&pack_name('p', 8), 0, 1).expect_err("missing blob");
    assert!(missing.is_not_found(), "{missing}");
}

pub(crate) fn not_found_is_distinct<H: Harness>(_: &H, s: &H::S) {
    let name = pack_name('q', 1);
    for err in [s.get(&name).unwrap_err(), s.stat(&name).unwrap_err(), s.get_range(&name, 0, 0).unwrap_err()] {
        assert!(err.is_not_found(), "{err}");
        assert!(!err.is_transient(), "{err}");
    }
    let invalid = s.get("Not-A-Name").unwrap_err();
    assert!(!invalid.is_not_found(), "an invalid name is not a missing blob: {invalid}");
}

pub(crate) fn invalid_names_are_refused<H: Harness>(_: &H, s: &H::S) {
    let long = "a".repeat(129);
    for name in ["", ".hidden", "UPPER", "a/b", "../x", "p 1", "ü", long.as_str()] {
        let put = s.put(name, b"x").expect_err(name);
        assert!(matches!(put, StorageError::InvalidName(_)), "put {name:?}: {put}");
        assert!(matches!(s.get(name), Err(StorageError::InvalidName(_))), "get {name:?}");
        assert!(matches!(s.stat(name), Err(StorageError::InvalidName(_))), "stat {name:?}");
        assert!(matches!(s.delete(name), Err(StorageError::InvalidName(_))), "delete {name:?}");
    }
    s.put(&"a".repeat(128), b"x").unwrap();
    assert_eq!(names(s, ""), BTreeSet::from(["a".repeat(128)]), "nothing else was stored");
}

pub(crate) fn list_by_prefix<H: Harness>(_: &H, s: &H::S) {
    let all = [
        "cairn.repository",
        "pab01",
        "pab02",
        "pab10",
        "pcd00",
        "p0",
        "qab01",
        "i00ff",
        "s1234",
        "sab",
        "x-other.name",
        "a",
        "ab",
    ];
    for name in all {
        s.put(name, &content(name, name.len())).unwrap();
    }
    for prefix in ["", "p", "pa", "pab", "pab0", "pab01", "pab011", "q", "s", "s1", "c", "cairn.", "x", "a", "z", "0"] {
        let expected: BTreeSet<String> = all.iter().filter(|n| n.starts_with(prefix)).map(|n| n.to_string()).collect();
        assert_eq!(names(s, prefix), expected, "list {prefix:?}");
    }
    for blob in s.list("").unwrap() {
        assert_eq!(blob.size, blob.name.len() as u64, "size of {}", blob.name);
    }
}

pub(crate) fn list_many<H: Harness>(_: &H, s: &H::S) {
    // More than one page of an S3 listing (1000 keys), across several kinds.
    let packs: Vec<String> = (0..1100).map(|i| pack_name('p', i * 7919)).collect();
    let metadata: Vec<String> = (0..150).map(|i| pack_name('q', i)).collect();
    let indexes: Vec<String> = (0..40).map(|i| pack_name('i', i)).collect();
    let all: Vec<String> = packs.iter().chain(&metadata).chain(&indexes).cloned().collect();
    put_all(s, &all, 16);
    assert_eq!(names(s, "p"), packs.iter().cloned().collect());
    assert_eq!(names(s, "q"), metadata.iter().cloned().collect());
    assert_eq!(names(s, "i"), indexes.iter().cloned().collect());
    assert_eq!(names(s, ""), all.iter().cloned().collect());
    let sub: BTreeSet<String> =
        packs.iter().filter(|n| n.starts_with("p00000000000000000000000000000")).cloned().collect();
    assert!(!sub.is_empty());
    assert_eq!(names(s, "p00000000000000000000000000000"), sub);
}

pub(crate) fn delete_is_idempotent<H: Harness>(_: &H, s: &H::S) {
    let (a, b) = (pack_name('s', 1), pack_name('s', 2));
    s.put(&a, b"a").unwrap();
    s.put(&b, b"b").unwrap();
    s.delete(&a).unwrap();
    assert!(s.get(&a).unwrap_err().is_not_found());
    assert_eq!(names(s, "s"), BTreeSet::from([b.clone()]));
    s.delete(&a).unwrap();
    s.delete(&pack_name('s', 3)).unwrap();
    assert_eq!(s.get(&b).unwrap(), b"b", "deleting one blob leaves the others");
}

pub(crate) fn half_written_is_never_visible<H: Harness>(h: &H, s: &H::S) {
    let name = pack_name('p', 42);
    let data = content(&name, h.large_blob_size());
    h.leave_half_written(s, &name, &data[..data.len() / 2]);
    assert!(names(s, "").is_empty(), "a half-written blob is listed");
    assert!(s.get(&name).unwrap_err().is_not_found());
    assert!(s.stat(&name).unwrap_err().is_not_found());
    // A later complete put of the same name is unaffected.
    s.put(&name, &data).unwrap();
    assert_eq!(s.get(&name).unwrap(), data);
    assert_eq!(names(s, ""), BTreeSet::from([name]));
}

pub(crate) fn readers_never_see_partial_blobs<H: Harness>(h: &H, s: &H::S) {
    let len = h.large_blob_size();
    let blobs: Vec<String> = (0..6).map(|i| pack_name('p', i)).collect();
    let done = AtomicBool::new(false);
    let checked = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut checked = 0usize;
            loop {
                let finished = done.load(Ordering::Acquire);
                for blob in s.list("p").unwrap() {
                    assert_eq!(blob.size, len as u64, "{} listed with a partial size", blob.name);
                    let data = s.get(&blob.name).unwrap();
                    assert!(data == content(&blob.name, len), "{} read back partial or wrong", blob.name);
                    checked += 1;
                }
                if finished {
                    return checked;
                }
            }
        });
        for name in &blobs {
            s.put(name, &content(name, len)).unwrap();
        }
        done.store(true, Ordering::Release);
        reader.join().expect("reader panicked")
    });
    assert!(checked >= blobs.len(), "the last listing saw every blob");
}

pub(crate) fn concurrent_writers<H: Harness>(_: &H, s: &H::S) {
    let shared = pack_name('q', 0xabc);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let shared = &shared;
            scope.spawn(move || {
                for i in 0..20 {
                    let name = pack_name('p', t * 1000 + i);
                    s.put(&name, &content(&name, 1000 + i)).unwrap();
                    // Every writer also stores the same blob, as two backups of the same data would.
                    s.put(shared, &content(shared, 5000)).unwrap();
                }
            });
        }
    });
    let listed = names(s, "p");
    assert_eq!(listed.len(), 160);
    for t in 0..8 {
        for i in 0..20 {
            let name = pack_name('p', t * 1000 + i);
            assert_eq!(s.get(&name).unwrap(), content(&name, 1000 + i), "{name}");
        }
    }
    assert_eq!(s.get(&shared).unwrap(), content(&shared, 5000));
}
