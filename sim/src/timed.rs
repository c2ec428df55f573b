//! Items ordered by (time, insertion order), for the simulator's priority queues.

/// An item due at `at`; ties go to the earlier `order`.
#[derive(Debug)]
pub struct Timed<T> {
    /// Due time, microseconds.
    pub at: i64,
    /// Insertion order, the tie-breaker.
    pub order: u64,
    /// The item.
    pub item: T,
}

impl<T> PartialEq for Timed<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl<T> Eq for Timed<T> {}
impl<T> PartialOrd for Timed<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Timed<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(o.at, o.order))
    }
}
