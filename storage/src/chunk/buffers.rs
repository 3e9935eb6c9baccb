//! A small process-wide pool of the byte buffers [`super::ChunkBuilder`]
//! encodes its columns into.
//!
//! A flush's builders fill tens of megabytes of column buffers and free
//! them as soon as the chunks are written. Memory fresh from the
//! allocator (which hands freed pages back to the system after a second)
//! costs a page fault on the first write of every 4 KiB; on the reference
//! VM those faults were about a sixth of what a builder spent encoding.
//! Buffers given back here keep their pages, so the next flush writes
//! into memory already mapped. The pool keeps at most [`POOL_BUFFERS`]
//! buffers and [`POOL_BYTES`] of written bytes; a buffer beyond that is
//! freed as usual.

use std::sync::Mutex;

/// Most buffers kept.
const POOL_BUFFERS: usize = 128;

/// Most bytes kept, counted as the bytes the buffers held when given
/// back (what their owners wrote, so what is mapped).
const POOL_BYTES: usize = 64 << 20;

/// Emptied buffers and the bytes each held when given back.
struct Pool {
    buffers: Vec<(Vec<u8>, usize)>,
    bytes: usize,
}

impl Pool {
    const fn new() -> Pool {
        Pool {
            buffers: Vec::new(),
            bytes: 0,
        }
    }

    fn take(&mut self) -> Vec<u8> {
        match self.buffers.pop() {
            Some((b, written)) => {
                self.bytes = self.bytes.saturating_sub(written);
                b
            }
            None => Vec::new(),
        }
    }

    fn give_back(&mut self, mut buffer: Vec<u8>) {
        let written = buffer.len();
        // An unwritten buffer holds no mapped pages worth keeping.
        if written == 0
            || self.buffers.len() >= POOL_BUFFERS
            || self.bytes.saturating_add(written) > POOL_BYTES
        {
            return;
        }
        buffer.clear();
        self.bytes += written;
        self.buffers.push((buffer, written));
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

/// The pool, even if a thread panicked holding it (it holds only empty
/// buffers and their counts).
fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// An empty buffer, one given back earlier when there is one.
pub(super) fn take() -> Vec<u8> {
    pool().take()
}

/// Column buffers that go back to the pool when dropped.
#[derive(Debug, Default)]
pub(super) struct Pooled(pub(super) Vec<Vec<u8>>);

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut p = pool();
        for b in self.0.drain(..) {
            p.give_back(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_empty_and_keep_their_room() {
        let mut p = Pool::new();
        let mut b = p.take();
        b.extend_from_slice(&[7u8; 10_000]);
        let cap = b.capacity();
        p.give_back(b);
        assert_eq!(p.bytes, 10_000);
        let b = p.take();
        assert!(b.is_empty());
        assert_eq!(b.capacity(), cap);
        assert_eq!(p.bytes, 0);
        assert_eq!(
            p.take().capacity(),
            0,
            "a new buffer once the pool is empty"
        );
    }

    #[test]
    fn the_pool_keeps_written_buffers_up_to_its_bounds() {
        let mut p = Pool::new();
        p.give_back(Vec::with_capacity(1 << 20));
        assert!(p.buffers.is_empty(), "an unwritten buffer is not kept");
        p.give_back(vec![0u8; POOL_BYTES]);
        p.give_back(vec![0u8; 1]);
        assert_eq!((p.buffers.len(), p.bytes), (1, POOL_BYTES));
        let mut p = Pool::new();
        for _ in 0..POOL_BUFFERS + 5 {
            p.give_back(vec![1u8; 8]);
        }
        assert_eq!(p.buffers.len(), POOL_BUFFERS);
    }
}
