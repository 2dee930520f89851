//! The handle table: what makes a handle checkable, so that a handle used after it was freed
//! (a transaction after its commit, a stream after `pgsess_stream_free`, a session after
//! `pgsess_close`...), freed twice, or passed where another type is expected, is a clean
//! `PGSESS_INTERFACE_ERROR` instead of undefined behaviour.
//!
//! A handle given to C is not the address of its Rust value but a *name* for it: an address in
//! a range of address space the library reserves once and never maps (`PROT_NONE`, no memory,
//! `MAP_NORESERVE`), encoding a slot index and that slot's generation. The slot holds the
//! value's address, the handle's type and the generation; freeing a handle bumps nothing but
//! marks the slot free, and the next value put in that slot gets the next generation, so the
//! old name no longer matches. Handles stay genuine pointers (inside the reserved range, never
//! NULL, never below 4096, never in a Go heap: the Go binding keeps them in Go memory, whose
//! collector rejects small integers and addresses in its own arenas), and dereferencing one
//! faults at once instead of reading another object.
//!
//! - **Lock-free.** Lookups are a few loads (the per-cell results accessors pay them); giving
//!   and freeing are compare-and-swaps. No lock means nothing for `fork()` to leave locked in a
//!   child (see `crate::atfork`): a child inherits the table and goes on using its parent's
//!   handles.
//! - **Slow reuse.** A free slot is found by a cursor going round the table, and the table
//!   grows to keep at least half of it free, so a freed slot is reused only after at least
//!   2,048 other handles were made; with 17 generation bits (9 when only 4 GiB of address space
//!   could be reserved, as under valgrind), a freed handle is recognised as freed until its slot
//!   was reused 131,072 (512) times, and after that wrongly matches only if it names the exact
//!   generation its slot has then.
//! - **Borrowed handles.** A handle can name a value something else owns (a transaction's
//!   session, a batch's results, the transaction a `pgsess_run_in_tx` function is given):
//!   freeing it through the handle is refused, and the owner removes it before the value goes.
//!   A slot has room for one dependent handle, removed with it (`lend_child`).
//! - **Memory.** 24 bytes per slot, in one array reserved for 2^20 slots (24 MiB of address
//!   space) and made accessible as the table doubles from 4,096 slots (96 KiB); never
//!   shrunk: it stays as large as the most handles ever live at once needed.
//! - **Limits.** At most 1,048,576 handles live at once; past that, or if no address range
//!   could be reserved (a virtual memory limit, RLIMIT_AS, below 4 GiB; a 32-bit target),
//!   `give` hands out the value's address as before, which `arg` and `take` still accept:
//!   such handles work, unchecked. What stays undefined in every case: a pointer this library
//!   never returned, and freeing a handle while another thread is inside a call on it.

use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// A handle type's identity in the table: a small number of its own.
pub(crate) trait Kind {
    const KIND: u8;
}

macro_rules! kinds {
    ($($t:path => $k:expr;)*) => {
        $(impl Kind for $t {
            const KIND: u8 = $k;
        })*
        /// The C name of a handle kind, for messages.
        fn kind_name(kind: u8) -> &'static str {
            $(if kind == $k {
                let path = stringify!($t);
                return path.rsplit("::").next().unwrap_or(path).trim();
            })*
            "handle"
        }
    };
}

// Every type that implements `Handle` is listed here (`Handle: Kind`), with a kind of its own.
kinds! {
    crate::ffi::session::pgsess_session => 1;
    crate::ffi::options::pgsess_options => 2;
    crate::ffi::results::pgsess_results => 3;
    crate::ffi::tx::pgsess_tx => 4;
    crate::ffi::stream::pgsess_stream => 5;
    crate::ffi::batch::pgsess_batch => 6;
    crate::ffi::batch::pgsess_batch_results => 7;
    crate::ffi::copy::pgsess_copy => 8;
    crate::ffi::notify::pgsess_notification => 9;
    crate::ffi::requests::pgsess_request => 10;
    crate::ffi::error::pgsess_error => 11;
    crate::ffi::pending::pgsess_pending => 12;
}

/// The C name of `H` (the last segment of its Rust path).
pub(crate) fn name_of<H: Kind>() -> &'static str {
    kind_name(H::KIND)
}

/// Bits of a handle that name its slot: at most this many handles live at once.
const IDX_BITS: u32 = 20;
const MAX_SLOTS: usize = 1 << IDX_BITS;
/// Handles are 8-byte aligned addresses.
const SHIFT: u32 = 3;
/// The table's first size, in slots; it doubles as it grows.
const FIRST: usize = 4096;

/// A slot's state word: the kind (0: free) in the low byte, flags, and the generation in the
/// high 32 bits.
const KIND_MASK: u64 = 0xff;
/// Being filled by `insert`: matches no handle.
const BUSY: u64 = 1 << 8;
/// The value is owned by something else: `remove_owned` refuses it.
const BORROWED: u64 = 1 << 9;

struct Slot {
    state: AtomicU64,
    /// The value's address (a `Box` given to C, or a borrowed value).
    ptr: AtomicPtr<()>,
    /// One dependent (borrowed) handle, removed with this one; 0 for none.
    child: AtomicUsize,
}

/// The reserved range handles are addresses in: 0 not yet tried, 1 none could be reserved,
/// else its (page-aligned) base with log2 of its size in the low byte.
static REGION: AtomicUsize = AtomicUsize::new(0);
/// The slots: one array of `MAX_SLOTS`, reserved with the range (address space only) and
/// made readable and writable (zeroed: all free) up to `CAP` as the table grows. Never freed,
/// never moved: a forked child keeps them.
static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(null_mut());
/// Slots usable (accessible memory) from `SLOTS`.
static CAP: AtomicUsize = AtomicUsize::new(0);
static LIVE: AtomicUsize = AtomicUsize::new(0);
static CURSOR: AtomicUsize = AtomicUsize::new(0);

/// (base, log2 size) of the reserved range, if there is one (never reserving).
#[inline(always)]
pub(crate) fn region_now() -> Option<(usize, u32)> {
    let r = REGION.load(Ordering::Acquire);
    (r > 1).then_some((r & !0xff, (r & 0xff) as u32))
}

/// The reserved range, reserving it on first use: the largest of 1 TiB down to 4 GiB of
/// address space the system gives (it costs no memory), and the slots' array.
fn region() -> Option<(usize, u32)> {
    if REGION.load(Ordering::Acquire) == 0 {
        let reserved = reserve();
        if REGION.compare_exchange(0, reserved, Ordering::AcqRel, Ordering::Acquire).is_err() && reserved > 1 {
            // Another thread reserved first: give this range back (its slots stay reserved,
            // unused: `reserve` sets SLOTS only once).
            // SAFETY: the range was mapped by `reserve` just now and nothing refers to it.
            unsafe { libc::munmap((reserved & !0xff) as *mut libc::c_void, 1usize << (reserved & 0xff)) };
        }
    }
    region_now()
}

/// Address space with no access, or NULL.
fn map_none(len: usize) -> *mut libc::c_void {
    // SAFETY: a new anonymous mapping with no access; it replaces nothing (no MAP_FIXED).
    let p = unsafe {
        libc::mmap(
            null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        null_mut()
    } else {
        p
    }
}

#[cfg(target_pointer_width = "64")]
fn reserve() -> usize {
    if SLOTS.load(Ordering::Acquire).is_null() {
        let slots = map_none(MAX_SLOTS * std::mem::size_of::<Slot>());
        if slots.is_null() {
            return 1;
        }
        if SLOTS.compare_exchange(null_mut(), slots.cast(), Ordering::AcqRel, Ordering::Acquire).is_err() {
            // SAFETY: mapped just above, never shared.
            unsafe { libc::munmap(slots, MAX_SLOTS * std::mem::size_of::<Slot>()) };
        }
    }
    for bits in [40u32, 38, 36, 34, 32] {
        let p = map_none(1usize << bits);
        if !p.is_null() {
            return p as usize | bits as usize;
        }
    }
    1
}

#[cfg(not(target_pointer_width = "64"))]
fn reserve() -> usize {
    1
}

/// The slot with index `idx`, if the table has grown that far.
#[inline(always)]
fn slot(idx: usize) -> Option<&'static Slot> {
    if idx >= CAP.load(Ordering::Acquire) {
        return None;
    }
    // SAFETY: slots below CAP are accessible (made so before CAP moved past them), zeroed or
    // written only through atomics, and never unmapped.
    Some(unsafe { &*SLOTS.load(Ordering::Relaxed).add(idx) })
}

/// The fast path of every handle argument: the address `p` names, for a handle of `kind`, or
/// `p` itself when it is not in the reserved range (a lent or unchecked handle); `None` when it
/// names no live handle of that kind (`lookup` then says why). A few loads and compares.
#[inline(always)]
pub(crate) fn resolve(p: usize, kind: u8) -> Option<*mut ()> {
    // With no range (0 or 1) this reads base 0 and size 1 or 2: every handle is outside it.
    let r = REGION.load(Ordering::Acquire);
    let off = p.wrapping_sub(r & !0xff);
    if off >> (r & 0xff) != 0 {
        return Some(p as *mut ());
    }
    if off & ((1 << SHIFT) - 1) != 0 {
        return None;
    }
    let v = off >> SHIFT;
    let slot = slot(v & (MAX_SLOTS - 1))?;
    let expected = ((v >> IDX_BITS) as u64) << 32 | u64::from(kind);
    let s = slot.state.load(Ordering::Acquire);
    if s & !BORROWED != expected {
        return None;
    }
    let ptr = slot.ptr.load(Ordering::Acquire);
    // Freed and reused between the two loads: `insert` stores the new address (Release) only
    // after changing the state, so the state read now differs.
    (slot.state.load(Ordering::Relaxed) == s).then_some(ptr)
}

/// What a pointer given to an export names.
pub(crate) enum Found {
    /// Not in the reserved range: a value's own address (lent, or given unchecked).
    Plain,
    /// A live handle of the expected kind, naming this value.
    Live(*mut ()),
    /// In the range, but no live handle: freed already (or never a handle).
    Stale,
    /// A live handle of another kind.
    OtherKind(&'static str),
    /// A borrowed handle where an owned one is needed (freeing a value something else owns).
    Borrowed,
}

/// The slot a pointer in the reserved range names, with the generation it expects; `None`
/// for a pointer outside the range.
fn decode(p: usize) -> Option<Option<(&'static Slot, u64)>> {
    let (base, bits) = region_now()?;
    let off = p.wrapping_sub(base);
    if off >> bits != 0 {
        return None;
    }
    if off & ((1 << SHIFT) - 1) != 0 {
        return Some(None);
    }
    let v = off >> SHIFT;
    Some(slot(v & (MAX_SLOTS - 1)).map(|s| (s, (v >> IDX_BITS) as u64)))
}

/// What `p` names, for a handle of `kind`, in detail (for errors and the less frequent
/// calls; `resolve` is the fast path).
pub(crate) fn lookup(p: usize, kind: u8) -> Found {
    let Some(decoded) = decode(p) else { return Found::Plain };
    let Some((slot, generation)) = decoded else { return Found::Stale };
    let s = slot.state.load(Ordering::Acquire);
    if s >> 32 != generation || s & KIND_MASK == 0 {
        return Found::Stale;
    }
    if s & KIND_MASK != u64::from(kind) {
        return Found::OtherKind(kind_name((s & KIND_MASK) as u8));
    }
    let ptr = slot.ptr.load(Ordering::Acquire);
    // Freed and reused between the two loads: `insert` stores the new address (Release) only
    // after changing the state, so the state read now differs.
    if slot.state.load(Ordering::Relaxed) != s {
        return Found::Stale;
    }
    Found::Live(ptr)
}

/// Put `ptr` in the table as a handle of `kind`; `None` when the table is full or no range
/// could be reserved (the caller then gives the address itself).
pub(crate) fn insert(kind: u8, ptr: *mut (), borrowed: bool) -> Option<usize> {
    debug_assert!(kind != 0 && u64::from(kind) <= KIND_MASK);
    let (base, bits) = region()?;
    let generation_mask = (1u64 << (bits - SHIFT - IDX_BITS)) - 1;
    let (idx, slot, old) = claim()?;
    let generation = ((old >> 32) + 1) & generation_mask;
    slot.child.store(0, Ordering::Relaxed);
    // Release: a lookup that reads this address reads the state `claim` set (or later) after it.
    slot.ptr.store(ptr, Ordering::Release);
    let flags = if borrowed { BORROWED } else { 0 };
    slot.state.store(generation << 32 | flags | u64::from(kind), Ordering::Release);
    Some(base + ((((generation as usize) << IDX_BITS) | idx) << SHIFT))
}

/// A free slot, marked busy: found by the cursor going round the table, which grows while
/// more than half of it is in use.
fn claim() -> Option<(usize, &'static Slot, u64)> {
    loop {
        let cap = CAP.load(Ordering::Acquire);
        if (LIVE.load(Ordering::Relaxed) + 1) * 2 > cap && grow(cap) {
            continue;
        }
        if cap == 0 {
            return None;
        }
        for _ in 0..cap {
            let idx = CURSOR.fetch_add(1, Ordering::Relaxed) % cap;
            let Some(slot) = slot(idx) else { continue };
            let s = slot.state.load(Ordering::Relaxed);
            if s & (KIND_MASK | BUSY) == 0
                && slot.state.compare_exchange(s, s | BUSY, Ordering::Acquire, Ordering::Relaxed).is_ok()
            {
                LIVE.fetch_add(1, Ordering::Relaxed);
                return Some((idx, slot, s));
            }
        }
        if !grow(cap) {
            return None; // full
        }
    }
}

/// Double the table (from `cap` slots): make the next slots accessible, then publish them.
/// False when it is at its largest or the memory is refused. Threads may race: making memory
/// accessible twice is harmless, and `CAP` moves once.
fn grow(cap: usize) -> bool {
    if cap >= MAX_SLOTS {
        return false;
    }
    let slots = SLOTS.load(Ordering::Acquire);
    if slots.is_null() {
        return false;
    }
    let new_cap = (cap * 2).clamp(FIRST, MAX_SLOTS);
    // SAFETY: inside the array `reserve` mapped (MAX_SLOTS slots), page-aligned start; the
    // pages past `cap` are either still inaccessible or already made accessible by a racing
    // grow, which made them zero and nothing has written them before CAP covered them.
    let ok = unsafe {
        libc::mprotect(slots.cast(), new_cap * std::mem::size_of::<Slot>(), libc::PROT_READ | libc::PROT_WRITE)
    } == 0;
    if ok {
        let _ = CAP.compare_exchange(cap, new_cap, Ordering::AcqRel, Ordering::Relaxed);
    }
    ok
}

/// Remove the handle `p` of `kind` and give back the address it named. `owned`: refuse a
/// borrowed handle (`Found::Borrowed`), for freeing; else refuse an owned one. Its dependent
/// handle goes too.
pub(crate) fn remove(p: usize, kind: u8, owned: bool) -> Found {
    let Some(decoded) = decode(p) else { return Found::Plain };
    let Some((slot, generation)) = decoded else { return Found::Stale };
    let s = slot.state.load(Ordering::Acquire);
    if s >> 32 != generation || s & KIND_MASK == 0 {
        return Found::Stale;
    }
    if s & KIND_MASK != u64::from(kind) {
        return Found::OtherKind(kind_name((s & KIND_MASK) as u8));
    }
    if (s & BORROWED != 0) == owned {
        return Found::Borrowed;
    }
    let ptr = slot.ptr.load(Ordering::Acquire);
    // Only one remover wins (a double free racing with itself frees once).
    if slot.state.compare_exchange(s, s & !0xffff_ffff, Ordering::AcqRel, Ordering::Relaxed).is_err() {
        return Found::Stale;
    }
    LIVE.fetch_sub(1, Ordering::Relaxed);
    let child = slot.child.swap(0, Ordering::AcqRel);
    if child != 0 {
        remove_child(child);
    }
    Found::Live(ptr)
}

/// Remove a dependent handle, whatever its kind.
fn remove_child(p: usize) {
    if let Some(Some((slot, _))) = decode(p) {
        let s = slot.state.load(Ordering::Acquire);
        if s & KIND_MASK != 0 {
            let _ = remove(p, (s & KIND_MASK) as u8, false);
        }
    }
}

/// The dependent handle of the live handle `owner` (0 when it has none or is not in the table).
pub(crate) fn child_of(owner: usize) -> usize {
    match decode(owner) {
        Some(Some((slot, _))) => slot.child.load(Ordering::Acquire),
        _ => 0,
    }
}

/// Make `child` the dependent of `owner` unless it has one: true when it is now.
pub(crate) fn set_child(owner: usize, child: usize) -> bool {
    match decode(owner) {
        Some(Some((slot, _))) => slot.child.compare_exchange(0, child, Ordering::AcqRel, Ordering::Acquire).is_ok(),
        _ => false,
    }
}

/// Whether `p` is in the reserved range (a table handle, live or not).
pub(crate) fn in_table(p: usize) -> bool {
    decode(p).is_some()
}

/// Handles live now (for tests).
#[cfg(test)]
pub(crate) fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}
