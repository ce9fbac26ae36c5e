//! Content-defined chunking with FastCDC (the 2020 variant, normalisation level 1) over a stream.
//!
//! Chunk boundaries depend only on the bytes and on the repository's gear seed, so an insertion shifts at
//! most the chunks around it and the rest resynchronise.

use std::borrow::Cow;

use fastcdc::v2020::{self, Normalization};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Minimum, average and maximum chunk sizes, recorded in the format blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl ChunkerParams {
    /// The default: 128 KiB / 512 KiB / 2 MiB (see docs/FORMAT.md §12 for the measurement behind it).
    pub const DEFAULT: ChunkerParams = ChunkerParams { min: 128 << 10, avg: 512 << 10, max: 2 << 20 };

    /// Checks the sizes are within FastCDC's limits and ordered.
    pub fn validate(&self) -> Result<()> {
        let (min, avg, max) = (self.min as usize, self.avg as usize, self.max as usize);
        let ok = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&min)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&avg)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&max)
            && min < avg
            && avg < max
            && avg.is_power_of_two()
            && min % 2 == 0
            && max % 2 == 0;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!("invalid chunker sizes {}/{}/{}", min, avg, max)))
        }
    }
}

/// A configured chunker. Cheap to share between threads.
#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkerParams,
    masks: (u64, u64),
    gear: (Cow<'static, [u64]>, Cow<'static, [u64]>),
}

impl Chunker {
    /// A chunker with validated parameters and the repository's gear seed.
    pub fn new(params: ChunkerParams, seed: u64) -> Result<Self> {
        params.validate()?;
        Ok(Self {
            params,
            masks: v2020::select_masks(params.avg as usize, Normalization::Level1),
            gear: v2020::get_gear_with_seed(seed),
        })
    }

    /// The parameters.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// The largest chunk this chunker cuts.
    pub fn max_size(&self) -> usize {
        self.params.max as usize
    }

    /// Length of the next chunk at the start of `data`. The caller passes at least `max_size()` bytes unless
    /// `data` is the end of the stream, in which case the rest is cut whatever its length.
    pub fn next_cut(&self, data: &[u8]) -> usize {
        let (mask_s, mask_l) = self.masks;
        let (_, len) = v2020::cut_gear(
            data,
            self.params.min as usize,
            self.params.avg as usize,
            self.params.max as usize,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
            &self.gear.0,
            &self.gear.1,
        );
        len.max(data.len().min(1))
    }

    /// Splits a whole in-memory buffer; returns chunk lengths. For tests and benchmarks.
    pub fn split_all(&self, mut data: &[u8]) -> Vec<usize> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let n = self.next_cut(data);
            out.push(n);
            data = &data[n..];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn small() -> Chunker {
        Chunker::new(ChunkerParams { min: 1024, avg: 4096, max: 16384 }, 42).unwrap()
    }

    fn data(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn default_params_are_valid() {
        ChunkerParams::DEFAULT.validate().unwrap();
        assert!(ChunkerParams { min: 3, avg: 4, max: 5 }.validate().is_err());
    }

    /// Frozen boundaries for a fixed input: if this changes, every existing repository loses dedup against
    /// new backups, so it must never change within format v1.
    #[test]
    fn boundaries_are_frozen() {
        let c = small();
        let lens = c.split_all(&data(7, 100_000));
        assert_eq!(lens.iter().sum::<usize>(), 100_000);
        let expected: &[usize] = &include!("../testdata/chunker_vector.txt");
        assert_eq!(lens, expected);
    }

    proptest! {
        #[test]
        fn deterministic_and_bounded(seed in any::<u64>(), len in 0usize..200_000) {
            let c = small();
            let input = data(seed, len);
            let a = c.split_all(&input);
            prop_assert_eq!(&a, &c.split_all(&input));
            prop_assert_eq!(a.iter().sum::<usize>(), len);
            for (i, n) in a.iter().enumerate() {
                prop_assert!(*n <= 16384);
                if i + 1 < a.len() { prop_assert!(*n >= 1024); }
            }
        }

        #[test]
        fn resynchronises_after_insertion(seed in any::<u64>(), at in 0usize..50_000, byte in any::<u8>()) {
            let c = small();
            let input = data(seed, 200_000);
            let mut shifted = input.clone();
            shifted.insert(at, byte);
            let cuts = |v: &[usize]| v.iter().scan(0usize, |s, n| { *s += n; Some(*s) }).collect::<Vec<_>>();
            let a = cuts(&c.split_all(&input));
            let b: std::collections::HashSet<usize> = cuts(&c.split_all(&shifted)).into_iter().map(|x| x - 1).collect();
            // Every boundary well past the insertion point reappears, shifted by one.
            let late: Vec<_> = a.iter().filter(|&&x| x > at + 3 * 16384).collect();
            let matched = late.iter().filter(|x| b.contains(x)).count();
            prop_assert_eq!(matched, late.len());
        }
    }
}
