//! Hash maps keyed by an object's address (a code object, a frame, a thread id), on the hot
//! path of every event: a multiply-shift hash instead of SipHash, which is built to resist
//! chosen keys that addresses are not.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes one integer key (an address or an id) by Fibonacci multiplication.
#[derive(Clone, Copy, Debug, Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        // Addresses are 16-byte aligned: the high bits of the product mix every key bit.
        self.0 = (self.0 ^ value)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(29);
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

/// A map keyed by address or id.
pub type AddrMap<K, V> = HashMap<K, V, BuildHasherDefault<AddrHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_addresses_spread_over_buckets() {
        let mut map: AddrMap<usize, usize> = AddrMap::default();
        for i in 0..10_000 {
            map.insert(0x7f00_0000_0000 + i * 16, i);
        }
        assert_eq!(map.len(), 10_000);
        assert!((0..10_000).all(|i| map[&(0x7f00_0000_0000 + i * 16)] == i));
        let low_bits: std::collections::HashSet<u64> = (0..1024u64)
            .map(|i| {
                let mut hasher = AddrHasher::default();
                hasher.write_u64(0x7f00_0000_0000 + i * 16);
                hasher.finish() & 1023
            })
            .collect();
        assert!(low_bits.len() > 600, "{}", low_bits.len());
    }
}
