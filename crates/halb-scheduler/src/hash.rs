//! The kernel hash functions behind sh, dh, mh and the locality schedulers,
//! reproduced bit for bit so a key lands on the same bucket as in IPVS.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};

/// `GOLDEN_RATIO_32` from `include/linux/hash.h`.
const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// The multiplier of the older IPVS bucket hashes (`2654435761UL`).
pub(crate) const KNUTH_32: u32 = 2_654_435_761;

/// `hash_32(val, bits)` from `include/linux/hash.h`.
#[inline]
pub(crate) fn hash_32(val: u32, bits: u32) -> u32 {
    debug_assert!((1..=32).contains(&bits));
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener's view of an IPv4
/// client) are treated as the IPv4 address they carry, so a client hashes
/// and groups the same whichever socket it came in on.
#[inline]
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// `ntohl(addr_fold)` as the IPVS hashing schedulers compute it: the IPv4
/// address, or the XOR of the four 32-bit words of an IPv6 address.
#[inline]
pub(crate) fn addr_fold(ip: IpAddr) -> u32 {
    match canonical(ip) {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            w(0) ^ w(4) ^ w(8) ^ w(12)
        }
    }
}

const SIP_C0: u64 = 0x736f_6d65_7073_6575;
const SIP_C1: u64 = 0x646f_7261_6e64_6f6d;
const SIP_C2: u64 = 0x6c79_6765_6e65_7261;
const SIP_C3: u64 = 0x7465_6462_7974_6573;

#[inline(always)]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// SipHash-c-d over `data` with the 128-bit key `(k0, k1)`.
fn siphash<const C: usize, const D: usize>(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [SIP_C0 ^ k0, SIP_C1 ^ k1, SIP_C2 ^ k0, SIP_C3 ^ k1];
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut m = [0u8; 8];
        m.copy_from_slice(c);
        let m = u64::from_le_bytes(m);
        v[3] ^= m;
        for _ in 0..C {
            sipround(&mut v);
        }
        v[0] ^= m;
    }
    let mut b = (data.len() as u64 & 0xff) << 56;
    for (i, &byte) in chunks.remainder().iter().enumerate() {
        b |= u64::from(byte) << (8 * i);
    }
    v[3] ^= b;
    for _ in 0..C {
        sipround(&mut v);
    }
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..D {
        sipround(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The kernel's `hsiphash(&v, sizeof(u32), key)` on a 64-bit little-endian
/// machine, where HalfSipHash-1-3 is implemented as SipHash-1-3 truncated to
/// 32 bits (`lib/siphash.c`). `key` is `hsiphash_key_t.key[0..2]`.
#[inline]
pub(crate) fn hsiphash_u32(key: (u64, u64), v: u32) -> u32 {
    siphash::<1, 3>(key.0, key.1, &v.to_le_bytes()) as u32
}

/// A fast, non-cryptographic hasher (the rustc "Fx" mix) for maps keyed by
/// real server addresses. Those keys come from the configuration, never
/// from clients, so hash flooding is not a concern there; client-keyed maps
/// keep the standard randomly keyed SipHash.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AddrHasher {
    hash: u64,
}

impl AddrHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for AddrHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A map keyed by real server address.
pub(crate) type AddrMap<V> = HashMap<SocketAddr, V, BuildHasherDefault<AddrHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn paper_key() -> (u64, u64) {
        let k: Vec<u8> = (0u8..16).collect();
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&k[..8]);
        b.copy_from_slice(&k[8..]);
        (u64::from_le_bytes(a), u64::from_le_bytes(b))
    }

    #[test]
    fn siphash24_reference_vectors() {
        // The SipHash paper (Aumasson, Bernstein), appendix A, and the first
        // entry of the reference implementation's vectors.h.
        let (k0, k1) = paper_key();
        let msg: Vec<u8> = (0u8..15).collect();
        assert_eq!(siphash::<2, 4>(k0, k1, &msg), 0xa129_ca61_49be_45e5);
        assert_eq!(siphash::<2, 4>(k0, k1, &[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    fn hsiphash_is_siphash13_of_le_word() {
        let key = (2_654_435_761, 2_654_435_761);
        for v in [0u32, 1, 0xdead_beef, u32::MAX] {
            assert_eq!(
                hsiphash_u32(key, v),
                siphash::<1, 3>(key.0, key.1, &v.to_le_bytes()) as u32
            );
        }
        assert_ne!(hsiphash_u32(key, 1), hsiphash_u32(key, 2));
    }

    #[test]
    fn hash_32_matches_kernel_formula() {
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(1, 32), GOLDEN_RATIO_32);
    }

    #[test]
    fn addr_map_works() {
        let mut m: AddrMap<usize> = AddrMap::default();
        for i in 0..1000u32 {
            let a = SocketAddr::from((std::net::Ipv4Addr::from(i), (i % 7) as u16));
            m.insert(a, i as usize);
        }
        let v6: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        m.insert(v6, 5000);
        assert_eq!(m.len(), 1001);
        assert_eq!(m[&SocketAddr::from((std::net::Ipv4Addr::from(77), 0))], 77);
        assert_eq!(m[&v6], 5000);
    }

    #[test]
    fn fold() {
        assert_eq!(addr_fold(Ipv4Addr::new(10, 0, 0, 1).into()), 0x0a00_0001);
        let v6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(addr_fold(v6.into()), 0x2001_0db8 ^ 0x0000_0001);
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(addr_fold(mapped.into()), 0x0a00_0001);
    }
}
