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

impl<'a> Reader<'a> {
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

    /// The next byte; `None` past the end (bytes that may be damaged: a file's).
    pub fn next_byte(&mut self) -> Option<u8> {
        let b = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    /// The next varint; `None` if it runs past the end or beyond 64 bits.
    pub fn next_varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.next_byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    /// The next `n` bytes; `None` past the end.
    pub fn next_bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
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
            // read as possibly damaged: the same, then nothing past the end
            let mut c = Reader { bytes: &out, at: 0 };
            for &v in &values {
                prop_assert_eq!(c.next_varint().map(unzigzag), Some(v));
            }
            prop_assert_eq!(c.next_varint(), None);
            prop_assert_eq!(c.next_byte(), None);
            prop_assert_eq!(c.next_bytes(1), None);
            prop_assert_eq!(c.next_bytes(0), Some(&[][..]));
        }
    }

    #[test]
    fn a_varint_cut_short_or_too_long_reads_as_none() {
        let cut = Reader {
            bytes: &[0x80, 0x80],
            at: 0,
        }
        .next_varint();
        assert_eq!(cut, None);
        let long = [0xff; 11];
        assert_eq!(
            Reader {
                bytes: &long,
                at: 0
            }
            .next_varint(),
            None
        );
        let max = {
            let mut out = Vec::new();
            put(&mut out, u64::MAX);
            out
        };
        assert_eq!(Reader { bytes: &max, at: 0 }.next_varint(), Some(u64::MAX));
    }
}
