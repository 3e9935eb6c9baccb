//! Sorted dictionaries of byte strings: the values of a dictionary-encoded
//! column, and the keys of a chunk's key directory.

/// Distinct byte strings in ascending order; a value's code is its index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dictionary {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Dictionary {
    /// Builds from concatenated bytes and end offsets (already validated:
    /// ends ascending and within `bytes`).
    pub(crate) fn from_parts(bytes: Vec<u8>, ends: Vec<u32>) -> Dictionary {
        Dictionary { bytes, ends }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The entry with `code` (empty when out of range).
    pub fn get(&self, code: u32) -> &[u8] {
        let i = code as usize;
        let start = if i == 0 {
            0
        } else {
            self.ends.get(i - 1).copied().unwrap_or(0) as usize
        };
        let end = self.ends.get(i).copied().unwrap_or(0) as usize;
        self.bytes.get(start..end).unwrap_or(&[])
    }

    /// The code of `value`, if present (binary search).
    pub fn find(&self, value: &[u8]) -> Option<u32> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid as u32).cmp(value) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid as u32),
            }
        }
        None
    }

    /// The first code whose value is ≥ `value` (for range predicates).
    pub fn lower_bound(&self, value: &[u8]) -> u32 {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.get(mid as u32) < value {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo as u32
    }

    /// Iterates over the entries in code order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len() as u32).map(move |c| self.get(c))
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len() + 4 * self.ends.len()
    }
}
