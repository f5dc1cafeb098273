//! [`RowBlocks`]: fixed-width rows (vectors, codes) in append-only chunks that never move,
//! backed by transparent huge pages where the kernel offers them.
//!
//! Written by hand because it is the hot path of every search: a graph walk reads about a
//! thousand scattered 2 KB vectors per query, and with 4 KB pages nearly every one is a TLB
//! miss. Chunks are whole multiples of 2 MiB, mapped 2 MiB-aligned straight from the kernel
//! (`mmap`, Unix) and marked `MADV_HUGEPAGE` (Linux; the default `madvise` mode of transparent
//! huge pages honours it), so a 100k x 512 index is mapped by about 100 huge pages instead of
//! 50,000 small ones, untouched capacity is never resident, and a dropped chunk goes back to
//! the kernel at once (heap allocations of this size may stay resident after they are freed).
//! Small chunks (narrow rows) come from the global allocator.

use std::alloc::Layout;
use std::ptr::NonNull;

/// Cache lines of a row [`RowBlocks::prefetch`] asks for (512 bytes). A 512-dimensional f32
/// row is 32 lines; asking for all of them, four rows ahead, keeps more loads in flight than
/// the core has fill buffers, and each prefetch then waits for one (perf puts half of a
/// search's time on those instructions at 100k x 512). The first 8 lines start the row and
/// the hardware's stream prefetcher fetches the rest as the kernel reads on. Measured with
/// `benches/ann_compare` (ef 32, 1 thread, same session): 100k x 512, 4,200-4,300 -> 5,200-5,300
/// queries/s; 29k x 384 (fits in the cache), 2-3% fewer.
pub(crate) const PREFETCH_LINES: usize = 8;

/// Element types a [`RowBlocks`] can hold: plain numbers (every bit pattern valid, no drop).
pub(crate) trait Element: Copy + Default + Send + Sync + 'static {}
impl Element for f32 {}
impl Element for i8 {}
impl Element for u8 {}

const HUGE_PAGE: usize = 2 << 20;
/// Chunks above this size give up on whole huge pages (odd row widths).
const MAX_CHUNK: usize = 32 << 20;

struct Chunk<T> {
    ptr: NonNull<T>,
    layout: Layout,
    /// Mapped with `mmap` (unmapped on drop) rather than from the global allocator.
    mapped: bool,
}

// SAFETY: a chunk owns its allocation of plain `Element` values; sharing `&[T]` across threads
// is as safe as for a `Vec<T>`.
unsafe impl<T: Element> Send for Chunk<T> {}
// SAFETY: as above; mutation goes through `&mut RowBlocks`.
unsafe impl<T: Element> Sync for Chunk<T> {}

impl<T> Drop for Chunk<T> {
    fn drop(&mut self) {
        #[cfg(unix)]
        if self.mapped {
            // SAFETY: mapped in `map_huge` with exactly this length, unmapped only here.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.layout.size()) };
            return;
        }
        // SAFETY: allocated in `RowBlocks::grow` with exactly this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr().cast(), self.layout) };
    }
}

/// `bytes` (a multiple of 2 MiB) of fresh anonymous memory, 2 MiB-aligned, huge pages advised.
#[cfg(unix)]
fn map_huge(bytes: usize) -> Option<NonNull<u8>> {
    let len = bytes.checked_add(HUGE_PAGE)?;
    // SAFETY: an anonymous private mapping of `len` bytes; no existing memory is touched.
    let raw = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if raw == libc::MAP_FAILED {
        return None;
    }
    let addr = raw as usize;
    let aligned = addr.next_multiple_of(HUGE_PAGE);
    let head = aligned - addr;
    let tail = len - head - bytes;
    // SAFETY: both ranges lie inside the mapping just made and outside the part kept.
    unsafe {
        if head > 0 {
            libc::munmap(raw, head);
        }
        if tail > 0 {
            libc::munmap((aligned + bytes) as *mut libc::c_void, tail);
        }
        #[cfg(target_os = "linux")]
        libc::madvise(aligned as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE);
    }
    NonNull::new(aligned as *mut u8)
}

/// Append-only rows of `width` elements.
pub(crate) struct RowBlocks<T: Element> {
    width: usize,
    /// Rows per chunk, a power of two.
    rows_per_chunk: usize,
    shift: u32,
    chunks: Vec<Chunk<T>>,
    len: usize,
}

impl<T: Element> std::fmt::Debug for RowBlocks<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowBlocks")
            .field("width", &self.width)
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

impl<T: Element> RowBlocks<T> {
    /// Empty rows of `width` elements (at least 1).
    pub(crate) fn new(width: usize) -> Self {
        let width = width.max(1);
        let row_bytes = width * std::mem::size_of::<T>();
        // The fewest rows (a power of two) whose bytes fill whole huge pages.
        let mut rows = (HUGE_PAGE >> row_bytes.trailing_zeros().min(21)).max(1);
        if rows * row_bytes > MAX_CHUNK {
            rows = (HUGE_PAGE / row_bytes).max(1).next_power_of_two();
        }
        RowBlocks {
            width,
            rows_per_chunk: rows,
            shift: rows.trailing_zeros(),
            chunks: Vec::new(),
            len: 0,
        }
    }

    pub(crate) fn width(&self) -> usize {
        self.width
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn grow(&mut self) {
        let bytes = (self.rows_per_chunk * self.width * std::mem::size_of::<T>()).max(1);
        let align = if bytes >= HUGE_PAGE { HUGE_PAGE } else { 64 };
        let Ok(layout) = Layout::from_size_align(bytes.next_multiple_of(align), align) else {
            // Unreachable: the size is bounded by MAX_CHUNK-ish and the alignment a power of two.
            std::alloc::handle_alloc_error(Layout::new::<u8>());
        };
        #[cfg(unix)]
        if align == HUGE_PAGE
            && let Some(ptr) = map_huge(layout.size())
        {
            self.chunks.push(Chunk {
                ptr: ptr.cast(),
                layout,
                mapped: true,
            });
            return;
        }
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { std::alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<T>()) else {
            std::alloc::handle_alloc_error(layout);
        };
        self.chunks.push(Chunk {
            ptr,
            layout,
            mapped: false,
        });
    }

    /// Appends a row (shorter input is padded with zeros, longer is cut to the width).
    pub(crate) fn push(&mut self, row: &[T]) {
        if self.len == self.chunks.len() * self.rows_per_chunk {
            self.grow();
        }
        let offset = (self.len & (self.rows_per_chunk - 1)) * self.width;
        if let Some(chunk) = self.chunks.last() {
            let n = row.len().min(self.width);
            // SAFETY: the chunk holds `rows_per_chunk * width` elements and this row's slots,
            // `offset..offset + width`, lie inside it; nothing else refers to them yet.
            unsafe {
                let dst = chunk.ptr.as_ptr().add(offset);
                std::ptr::copy_nonoverlapping(row.as_ptr(), dst, n);
                for i in n..self.width {
                    dst.add(i).write(T::default());
                }
            }
        }
        self.len += 1;
    }

    /// Appends a row written in place by `fill` (the slots start zeroed); no temporary copy.
    pub(crate) fn push_with(&mut self, fill: impl FnOnce(&mut [T])) {
        if self.len == self.chunks.len() * self.rows_per_chunk {
            self.grow();
        }
        let offset = (self.len & (self.rows_per_chunk - 1)) * self.width;
        if let Some(chunk) = self.chunks.last() {
            // SAFETY: the row's slots `offset..offset + width` lie inside the chunk and nothing
            // else refers to them yet; they are initialised before the slice is made.
            let row = unsafe {
                let dst = chunk.ptr.as_ptr().add(offset);
                for i in 0..self.width {
                    dst.add(i).write(T::default());
                }
                std::slice::from_raw_parts_mut(dst, self.width)
            };
            fill(row);
        }
        self.len += 1;
    }

    /// Row `i`; empty for `i >= len()`.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> &[T] {
        if i >= self.len {
            return &[];
        }
        match self.chunks.get(i >> self.shift) {
            // SAFETY: `i < len`, so the row was written by `push`, and it lies inside its chunk.
            Some(chunk) => unsafe {
                std::slice::from_raw_parts(
                    chunk
                        .ptr
                        .as_ptr()
                        .add((i & (self.rows_per_chunk - 1)) * self.width),
                    self.width,
                )
            },
            None => &[],
        }
    }

    /// Asks the CPU to start loading row `i` (a hint; nothing happens past the end): its first
    /// [`PREFETCH_LINES`] cache lines.
    #[inline]
    pub(crate) fn prefetch(&self, i: usize) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let row = self.get(i);
            let start = row.as_ptr().cast::<i8>();
            let lines = std::mem::size_of_val(row).div_ceil(64).min(PREFETCH_LINES);
            for line in 0..lines {
                // SAFETY: prefetching never faults, and the address lies inside the row.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(line * 64)) };
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = i;
    }

    /// The written rows chunk by chunk: `(first row, rows as one slice)`.
    pub(crate) fn chunks(&self) -> impl Iterator<Item = (usize, &[T])> + '_ {
        self.chunks.iter().enumerate().map_while(move |(c, chunk)| {
            let first = c * self.rows_per_chunk;
            let rows = self.len.checked_sub(first)?.min(self.rows_per_chunk);
            // SAFETY: rows `first..first + rows` are written and lie in this chunk.
            let slice =
                unsafe { std::slice::from_raw_parts(chunk.ptr.as_ptr(), rows * self.width) };
            (rows > 0).then_some((first, slice))
        })
    }

    /// Bytes allocated.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.layout.size()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_growth_and_chunks_cover_them() {
        for width in [1usize, 3, 32, 384, 512, 1024, 1500] {
            let mut b: RowBlocks<f32> = RowBlocks::new(width);
            let n = b.rows_per_chunk * 2 + 5;
            for i in 0..n {
                b.push(&vec![i as f32; width]);
            }
            assert_eq!(b.len(), n);
            for i in [0, 1, b.rows_per_chunk - 1, b.rows_per_chunk, n - 1] {
                assert!(
                    b.get(i).iter().all(|x| *x == i as f32),
                    "width {width} row {i}"
                );
            }
            assert!(b.get(n).is_empty());
            let covered: usize = b.chunks().map(|(_, s)| s.len() / width).sum();
            assert_eq!(covered, n);
            let row_bytes = width * 4;
            let chunk = b.rows_per_chunk * row_bytes;
            assert!(
                chunk <= MAX_CHUNK.max(HUGE_PAGE * 2),
                "width {width}: {chunk}"
            );
        }
        let mut short: RowBlocks<i8> = RowBlocks::new(4);
        short.push(&[1, 2]);
        assert_eq!(short.get(0), &[1, 2, 0, 0]);
    }
}
