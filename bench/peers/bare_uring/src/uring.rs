//! The one place with `unsafe`: what the io-uring crate cannot check for us.
//!
//! Two things are unsafe in the crate's API, and both are about memory the kernel uses
//! after the call that gave it:
//!
//! - pushing a submission entry (`SubmissionQueue::push`): any buffer the entry names must
//!   stay valid until the entry's last completion. Of the operations pushed here only the
//!   send names memory of ours ([`Queue::send`], itself `unsafe` for that reason); accept,
//!   receive (its memory is the buffer ring's), cancel and close name none.
//! - registering a provided-buffer ring (`register_buf_ring_with_flags`): the ring and its
//!   buffers must stay valid while the ring is registered. [`BufRing`] leaks both, so they
//!   live as long as the process.
//!
//! Everything else (the ring's set-up, submitting, reading completions) is the crate's safe
//! API.

use std::alloc::{alloc_zeroed, handle_alloc_error, Layout};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::squeue::{Entry, Flags};
use io_uring::{opcode, types, IoUring, SubmissionQueue, Submitter};

/// A connection's socket: a slot of the ring's registered-file table (what multishot
/// accept gives with `allocate_file_index`) or a plain descriptor.
#[derive(Clone, Copy, Debug)]
pub enum Fd {
    Fixed(u32),
    Plain(RawFd),
}

/// The ring: `entries` submission entries, a completion queue four times that, one
/// submitting thread, the kernel's completion work run only when we enter it
/// (`DEFER_TASKRUN`: completions come in batches, at `submit_and_wait`).
pub fn setup(entries: u32) -> io::Result<IoUring> {
    IoUring::builder()
        .setup_cqsize(entries * 4)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(entries)
}

/// The submission side of the ring: pushes entries, submitting when the queue is full.
pub struct Queue<'a> {
    submitter: Submitter<'a>,
    sq: SubmissionQueue<'a>,
}

impl<'a> Queue<'a> {
    pub fn new(submitter: Submitter<'a>, sq: SubmissionQueue<'a>) -> Self {
        Queue { submitter, sq }
    }

    pub fn submitter(&mut self) -> &mut Submitter<'a> {
        &mut self.submitter
    }

    /// Submits what was pushed and waits for at least `want` completions.
    pub fn submit_and_wait(&mut self, want: usize) -> io::Result<usize> {
        self.sq.sync();
        self.submitter.submit_and_wait(want)
    }

    /// Makes room for `n` entries in a row (a linked chain must not be split between two
    /// submissions).
    fn reserve(&mut self, n: usize) -> io::Result<()> {
        while self.sq.capacity() - self.sq.len() < n {
            self.sq.sync();
            self.submitter.submit()?;
            self.sq.sync();
        }
        Ok(())
    }

    /// # Safety
    ///
    /// Every buffer `entry` names must stay valid, and not be written by us, until the
    /// operation's last completion has been read.
    unsafe fn push(&mut self, entry: &Entry) -> io::Result<()> {
        self.reserve(1)?;
        // SAFETY: the caller keeps the entry's buffers valid until it completes; `reserve`
        // made room, so the push cannot fail.
        unsafe { self.sq.push(entry) }.expect("a free submission entry");
        Ok(())
    }

    /// Multishot accept on `listener`, the accepted sockets put in the registered-file
    /// table when `fixed`.
    pub fn accept_multi(&mut self, listener: RawFd, fixed: bool, user_data: u64) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(types::Fd(listener))
            .allocate_file_index(fixed)
            .build()
            .user_data(user_data);
        // SAFETY: a multishot accept names no memory (no address is asked for).
        unsafe { self.push(&entry) }
    }

    /// Multishot receive into buffers of the provided-buffer group `group`.
    pub fn recv_multi(&mut self, fd: Fd, group: u16, user_data: u64) -> io::Result<()> {
        let entry = match fd {
            Fd::Fixed(slot) => opcode::RecvMulti::new(types::Fixed(slot), group).build(),
            Fd::Plain(fd) => opcode::RecvMulti::new(types::Fd(fd), group).build(),
        };
        // SAFETY: the receive names no memory of its own; the kernel picks its buffers
        // from the group's ring, which a `BufRing` keeps alive for the process's life.
        unsafe { self.push(&entry.user_data(user_data)) }
    }

    /// Sends all of `buf` (`MSG_WAITALL`: the kernel goes on after a partial send itself,
    /// and a send that stays short fails the link), linked to the next entry when `link`
    /// (that one runs only if this one sent everything).
    ///
    /// # Safety
    ///
    /// `buf` must stay valid and unchanged until this send's completion has been read.
    pub unsafe fn send(
        &mut self,
        fd: Fd,
        buf: &[u8],
        link: bool,
        user_data: u64,
    ) -> io::Result<()> {
        let len = u32::try_from(buf.len()).expect("a send under 4 GiB");
        let entry = match fd {
            Fd::Fixed(slot) => opcode::Send::new(types::Fixed(slot), buf.as_ptr(), len),
            Fd::Plain(fd) => opcode::Send::new(types::Fd(fd), buf.as_ptr(), len),
        }
        .flags(libc::MSG_WAITALL)
        .build()
        .user_data(user_data);
        let entry = if link {
            entry.flags(Flags::IO_LINK)
        } else {
            entry
        };
        self.reserve(if link { 2 } else { 1 })?;
        // SAFETY: the caller keeps `buf` valid and unchanged until the completion.
        unsafe { self.push(&entry) }
    }

    /// Cancels the operation whose entries carry `target`.
    pub fn cancel(&mut self, target: u64, user_data: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data);
        // SAFETY: a cancel names no memory.
        unsafe { self.push(&entry) }
    }

    /// Closes the socket (frees its registered-file slot when `Fixed`).
    pub fn close(&mut self, fd: Fd, user_data: u64) -> io::Result<()> {
        let entry = match fd {
            Fd::Fixed(slot) => opcode::Close::new(types::Fixed(slot)).build(),
            Fd::Plain(fd) => opcode::Close::new(types::Fd(fd)).build(),
        };
        // SAFETY: a close names no memory.
        unsafe { self.push(&entry.user_data(user_data)) }
    }
}

/// An entry of a provided-buffer ring, laid out as the kernel's `struct io_uring_buf`; the
/// first entry's last field is the ring's tail, which we publish and the kernel reads.
#[repr(C)]
struct RingEntry {
    addr: u64,
    len: u32,
    bid: u16,
    tail: AtomicU16,
}

const _: () = assert!(std::mem::size_of::<RingEntry>() == 16);
const _: () = assert!(std::mem::offset_of!(RingEntry, tail) == 14);

/// A provided-buffer ring: `count` buffers of `len` bytes the kernel receives into, each
/// given back to it once its bytes are dealt with.
pub struct BufRing {
    entries: *mut RingEntry,
    data: *mut u8,
    count: u16,
    len: usize,
    /// Our tail, published to the kernel by [`publish`](Self::publish).
    tail: u16,
    /// Which buffers are ours (taken from a completion, not yet given back).
    ours: Vec<bool>,
}

impl BufRing {
    /// Registers a ring of `count` (a power of two) buffers of `len` bytes as group `group`,
    /// every buffer given to the kernel.
    pub fn register(
        submitter: &Submitter<'_>,
        count: u16,
        len: usize,
        group: u16,
    ) -> io::Result<BufRing> {
        assert!(count.is_power_of_two());
        assert!(u32::try_from(len).is_ok());
        // The kernel wants the ring page-aligned.
        let layout = Layout::from_size_align(usize::from(count) * 16, 4096).expect("a layout");
        // SAFETY: the layout's size is not zero. The memory is never freed (the ring stays
        // registered for the process's life).
        let entries = unsafe { alloc_zeroed(layout) }.cast::<RingEntry>();
        if entries.is_null() {
            handle_alloc_error(layout);
        }
        let data = Box::leak(vec![0u8; usize::from(count) * len].into_boxed_slice()).as_mut_ptr();
        // SAFETY: `entries` is valid for `count` zeroed entries and, leaked, stays valid
        // while the ring is registered; so do the buffers, leaked too.
        unsafe { submitter.register_buf_ring_with_flags(entries as u64, count, group, 0)? };
        let mut ring = BufRing {
            entries,
            data,
            count,
            len,
            tail: 0,
            ours: vec![true; usize::from(count)],
        };
        for bid in 0..count {
            ring.give_back(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// The buffer a completion with `flags` was received into, now ours.
    pub fn take(&mut self, flags: u32) -> Option<u16> {
        let bid = io_uring::cqueue::buffer_select(flags)?;
        let ours = &mut self.ours[usize::from(bid)];
        assert!(!*ours, "the kernel gave buffer {bid} twice");
        *ours = true;
        Some(bid)
    }

    /// The first `len` bytes of buffer `bid`, which must be ours.
    pub fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        assert!(self.ours[usize::from(bid)] && len <= self.len);
        // SAFETY: the buffer is inside the leaked allocation, and it is ours: the kernel
        // wrote it before posting the completion that gave it to us and will not touch it
        // until `give_back`, which takes `&mut self` and so ends this borrow first.
        unsafe { std::slice::from_raw_parts(self.data.add(usize::from(bid) * self.len), len) }
    }

    /// Gives buffer `bid` back to the kernel (seen by it at the next `publish`).
    pub fn give_back(&mut self, bid: u16) {
        let ours = &mut self.ours[usize::from(bid)];
        assert!(*ours, "buffer {bid} is the kernel's");
        *ours = false;
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot` is inside the ring. At most `count` buffers exist and one of them
        // (`bid`) is ours, so the entry at our tail is not between the kernel's head and
        // the published tail: the kernel does not read it until we publish. Only its
        // `addr`, `len` and `bid` are written, never the first entry's tail field.
        unsafe {
            let entry = self.entries.add(slot);
            std::ptr::addr_of_mut!((*entry).addr)
                .write(self.data.add(usize::from(bid) * self.len) as u64);
            std::ptr::addr_of_mut!((*entry).len).write(self.len as u32);
            std::ptr::addr_of_mut!((*entry).bid).write(bid);
        }
        self.tail = self.tail.wrapping_add(1);
    }

    /// Lets the kernel see the buffers given back since the last call.
    pub fn publish(&self) {
        // SAFETY: the first entry is valid for the process's life; its tail is only ever
        // accessed atomically (by us here, by the kernel with an acquire load).
        let tail = unsafe { &(*self.entries).tail };
        tail.store(self.tail, Ordering::Release);
    }
}
