//! Reusable receive memory: large blocks that read buffers and reassembled messages are cut
//! from, each block used again once nothing refers to it.
//!
//! Frames and the binaries decoded from them are zero-copy slices (`Bytes`) of the memory they
//! arrived in, so that memory lives as long as the last message that came in it. Allocating it
//! afresh for every read or every reassembled message costs more than the copy it saves: a
//! stream of 64 KiB messages makes the allocator hand memory back to the kernel and fault it
//! in again page by page (about 14 page faults per message, most of the receiver's CPU time).
//! A [`BufferPool`] keeps the blocks instead: it carves regions out of the current block and,
//! when that is used up, takes back an earlier block whose regions have all been dropped
//! (`BytesMut::try_reclaim`), allocating only when every kept block is still in use.
//!
//! Memory is bounded: at most [`MAX_SPARE_BLOCKS`] blocks are kept besides the current one;
//! regions larger than a block get an allocation of their own, which is not kept.

use bytes::BytesMut;

/// Size of one block (and of a reader's buffer): 256 KiB.
pub const BLOCK_SIZE: usize = 256 * 1024;
/// Blocks a pool keeps for reuse besides the one it is carving (so at most
/// `(1 + MAX_SPARE_BLOCKS) * BLOCK_SIZE` bytes stay allocated for a pool).
pub const MAX_SPARE_BLOCKS: usize = 4;

/// Carves buffers out of reusable blocks. See the module documentation.
#[derive(Debug, Default)]
pub struct BufferPool {
    /// The rest of the block being carved.
    current: Option<BytesMut>,
    /// The rests of earlier blocks; each is reusable once every region of its block is gone.
    spare: Vec<BytesMut>,
}

impl BufferPool {
    /// A pool holding no memory yet.
    pub fn new() -> BufferPool {
        BufferPool::default()
    }

    /// An empty buffer with room for exactly `cap` bytes (at least `cap` when `cap` exceeds
    /// [`BLOCK_SIZE`]). Writing past its capacity reallocates it, out of the pool.
    pub fn region(&mut self, cap: usize) -> BytesMut {
        if cap > BLOCK_SIZE {
            return BytesMut::with_capacity(cap);
        }
        let cur = match &mut self.current {
            Some(c) if c.capacity() >= cap => c,
            slot => {
                let fresh = reclaim(&mut self.spare).unwrap_or_else(|| BytesMut::with_capacity(BLOCK_SIZE));
                if let Some(mut old) = slot.replace(fresh) {
                    if self.spare.len() < MAX_SPARE_BLOCKS {
                        old.clear();
                        self.spare.push(old);
                    }
                }
                slot.get_or_insert_with(BytesMut::new)
            }
        };
        let rest = cur.split_off(cap);
        std::mem::replace(cur, rest)
    }

    /// Blocks kept for reuse, the current one included.
    pub fn blocks(&self) -> usize {
        self.spare.len() + usize::from(self.current.is_some())
    }
}

/// A spare block that nothing refers to any more, whole again.
fn reclaim(spare: &mut Vec<BytesMut>) -> Option<BytesMut> {
    let i = spare.iter_mut().position(|b| b.try_reclaim(BLOCK_SIZE))?;
    Some(spare.swap_remove(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_reused_once_their_regions_are_dropped() {
        let mut pool = BufferPool::new();
        let mut a = pool.region(BLOCK_SIZE / 2);
        a.extend_from_slice(&[1; 100]);
        let a_ptr = a.as_ptr();
        let frozen = a.freeze();
        let b = pool.region(BLOCK_SIZE / 2);
        // the first block is used up; while `frozen` and `b` live, a new one is allocated
        let c = pool.region(BLOCK_SIZE);
        assert_ne!(c.as_ptr(), a_ptr);
        drop((frozen, b));
        drop(c);
        // both blocks are free again: the next block-sized region reuses one of them
        let d = pool.region(BLOCK_SIZE);
        let e = pool.region(BLOCK_SIZE);
        assert!(d.as_ptr() == a_ptr || e.as_ptr() == a_ptr, "a block was reused");
        assert!(pool.blocks() <= 1 + MAX_SPARE_BLOCKS);
    }

    #[test]
    fn regions_have_the_capacity_asked_and_do_not_overlap() {
        let mut pool = BufferPool::new();
        let mut regions: Vec<BytesMut> = (1..50).map(|i| pool.region(i * 1000)).collect();
        for (i, r) in regions.iter_mut().enumerate() {
            assert_eq!(r.capacity(), (i + 1) * 1000);
            r.extend_from_slice(&vec![i as u8; (i + 1) * 1000]);
        }
        for (i, r) in regions.iter().enumerate() {
            assert!(r.iter().all(|&b| b == i as u8), "region {i} intact");
        }
        // an oversized region is an allocation of its own
        assert!(pool.region(BLOCK_SIZE + 1).capacity() > BLOCK_SIZE);
    }

    #[test]
    fn blocks_in_use_are_not_kept_beyond_the_limit() {
        let mut pool = BufferPool::new();
        let held: Vec<_> = (0..3 * MAX_SPARE_BLOCKS).map(|_| pool.region(BLOCK_SIZE).freeze()).collect();
        assert!(pool.blocks() <= 1 + MAX_SPARE_BLOCKS);
        drop(held);
        let again = pool.region(BLOCK_SIZE);
        assert_eq!(again.capacity(), BLOCK_SIZE);
    }
}
