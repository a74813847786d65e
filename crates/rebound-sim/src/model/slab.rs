//! Slots reused through a free list, so a long run does not grow.

pub(super) struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    pub(super) fn new() -> Self {
        Slab {
            items: Vec::new(),
            free: Vec::new(),
        }
    }

    #[inline(always)]
    pub(super) fn insert(&mut self, v: T) -> u32 {
        if let Some(i) = self.free.pop() {
            self.items[i as usize] = Some(v);
            i
        } else {
            self.items.push(Some(v));
            (self.items.len() - 1) as u32
        }
    }

    #[inline]
    pub(super) fn get(&self, i: u32) -> Option<&T> {
        self.items.get(i as usize).and_then(Option::as_ref)
    }

    #[inline]
    pub(super) fn get_mut(&mut self, i: u32) -> Option<&mut T> {
        self.items.get_mut(i as usize).and_then(Option::as_mut)
    }

    /// Drops item `i` where it lies (no move out of the slab).
    #[inline]
    pub(super) fn free(&mut self, i: u32) {
        if let Some(slot) = self.items.get_mut(i as usize) {
            if slot.is_some() {
                // Assigning drops the old value in place.
                *slot = None;
                self.free.push(i);
            }
        }
    }

    #[inline]
    pub(super) fn remove(&mut self, i: u32) -> Option<T> {
        let v = self.items.get_mut(i as usize)?.take();
        if v.is_some() {
            self.free.push(i);
        }
        v
    }

    /// The live items.
    pub(super) fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter().flatten()
    }
}
