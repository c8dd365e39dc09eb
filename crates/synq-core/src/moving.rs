//! Growing the request index without a pause (the connection index uses linear hashing
//! instead: `stack::index`). A full index is kept beside its successor, and each insert
//! after moves a few batches of entries over, walking their store in slot order; a flag in
//! each entry names the index that holds it, and a lookup tries the new index, then the
//! old. Rehashing 2^20 entries in one call took 44-83 ms.

/// An index being emptied into its successor. Its entries of those already moved or
/// removed may stay until it is dropped: each lookup checks the entry it finds.
#[derive(Debug)]
pub(crate) struct Moving<T> {
    pub(crate) old: T,
    /// The next slot of the store to look at.
    pub(crate) cursor: u32,
    /// Live entries still filed in `old` alone.
    pub(crate) pending: usize,
}

impl<T> Moving<T> {
    /// The move of `pending` live entries out of `old`, from slot 0.
    pub(crate) fn new(old: T, pending: usize) -> Self {
        Self {
            old,
            cursor: 0,
            pending,
        }
    }
}

/// Batches one insert moves while an index is replaced: at most 64 entries rehashed and
/// 1 024 slots looked at per insert (a few microseconds), and every slot walked long
/// before the new index fills (it has room for at least 3/4 of the live entries more).
/// Lookups search both indexes meanwhile, so the move is kept short.
pub(crate) const MOVE_BATCHES: usize = 4;

/// Entries in a batch, their index loads overlapped.
pub(crate) const MOVE_BATCH: usize = 16;

/// Most slots one batch looks at.
pub(crate) const MOVE_SLOTS: usize = 256;
