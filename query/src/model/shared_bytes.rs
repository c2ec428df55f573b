//! [`SharedBytes`]: encoded bytes held on the heap or read in place from a part of a buffer
//! shared by many (a mapped file of derived state): what an encoded pack holds, so that a
//! pack whose bytes are in such a file costs the heap nothing.

use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

/// A buffer many [`SharedBytes`] read parts of.
pub type Buffer = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Bytes on the heap, or a part of a shared [`Buffer`].
#[derive(Clone)]
pub enum SharedBytes {
    /// Owned.
    Heap(Box<[u8]>),
    /// `range` of `buffer`.
    Shared {
        /// The buffer.
        buffer: Buffer,
        /// The part.
        range: Range<usize>,
    },
}

impl Default for SharedBytes {
    fn default() -> Self {
        SharedBytes::Heap(Box::default())
    }
}

impl fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SharedBytes::Heap(b) => write!(f, "Heap({} bytes)", b.len()),
            SharedBytes::Shared { range, .. } => write!(f, "Shared({range:?})"),
        }
    }
}

impl From<Vec<u8>> for SharedBytes {
    fn from(v: Vec<u8>) -> Self {
        SharedBytes::Heap(v.into_boxed_slice())
    }
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            SharedBytes::Heap(b) => b,
            SharedBytes::Shared { buffer, range } => {
                (**buffer).as_ref().get(range.clone()).unwrap_or_default()
            }
        }
    }
}

impl SharedBytes {
    /// `range` of `buffer` (empty where it is out of the buffer's bounds).
    pub fn shared(buffer: Buffer, range: Range<usize>) -> SharedBytes {
        SharedBytes::Shared { buffer, range }
    }

    /// Bytes it holds on the heap (none when shared).
    pub fn heap_bytes(&self) -> usize {
        match self {
            SharedBytes::Heap(b) => b.len(),
            SharedBytes::Shared { .. } => 0,
        }
    }

    /// Whether it reads a shared buffer.
    pub fn is_shared(&self) -> bool {
        matches!(self, SharedBytes::Shared { .. })
    }

    /// Its bytes, owned (copied when shared), to be grown.
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            SharedBytes::Heap(b) => b.into_vec(),
            SharedBytes::Shared { .. } => self.to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_and_shared_read_the_same_and_only_the_heap_counts() {
        let buffer: Buffer = Arc::new(b"..abcdef..".to_vec());
        let shared = SharedBytes::shared(buffer.clone(), 2..8);
        let heap = SharedBytes::from(b"abcdef".to_vec());
        assert_eq!(&*shared, &*heap);
        assert_eq!((shared.heap_bytes(), heap.heap_bytes()), (0, 6));
        assert!(shared.is_shared() && !heap.is_shared());
        let mut grown = shared.into_vec();
        grown.push(b'g');
        assert_eq!(grown, b"abcdefg");
        // a range past the buffer reads as nothing rather than panicking
        assert!(SharedBytes::shared(buffer, 5..100).is_empty());
    }
}
