//! LEB128 varints and zigzag signs: what the compact encodings of service events and of
//! intervals are written with.

/// Appends `v` as a LEB128 varint.
pub(crate) fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `v` with its sign in the lowest bit, so that small magnitudes of either sign are small.
pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// The inverse of [`zigzag`].
pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads bytes and varints from `bytes`, from `at` on.
pub(crate) struct Reader<'a> {
    pub bytes: &'a [u8],
    pub at: usize,
}

impl Reader<'_> {
    pub fn byte(&mut self) -> u8 {
        let b = self.bytes[self.at];
        self.at += 1;
        b
    }

    pub fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn what_is_put_reads_back(values in proptest::collection::vec(any::<i64>(), 0..20)) {
            let mut out = Vec::new();
            for &v in &values {
                put(&mut out, zigzag(v));
            }
            let mut r = Reader { bytes: &out, at: 0 };
            for &v in &values {
                prop_assert_eq!(unzigzag(r.varint()), v);
            }
            prop_assert_eq!(r.at, out.len());
        }
    }
}
