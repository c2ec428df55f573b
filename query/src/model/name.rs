//! [`Name`]: the interned string that names a device, cluster, node, pool, type, cause or
//! source in service events and intervals.
//!
//! A year of history holds millions of service events and intervals, each naming up to nine
//! of these; as `Arc<str>` a name costs 16 bytes (a fat pointer), as a `Name` 4 (its number
//! in the process's table of names), and an absent one costs nothing more (`Option<Name>` is
//! 4 bytes too). Names are never freed: their number is that of distinct names the log ever
//! held, which the live state keeps anyway.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU32;
use std::ops::Deref;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use serde::{Serialize, Serializer};

/// An interned string: copied freely, equal when the number is, hashed and ordered as the
/// `str` it derefs to (so maps keyed by it are searched with a `&str`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name(NonZeroU32);

/// Names in the first chunk of the table; chunk `k` holds `FIRST << k`.
const FIRST: usize = 64;
/// Chunks enough for every `u32`.
const CHUNKS: usize = 27;

/// One chunk of the table: a name is written once, before its number is handed out.
type Chunk = Box<[OnceLock<&'static str>]>;

/// The process's names: read without a lock (a chunk, once there, never moves), added under
/// one (interning is rare: callers keep their own map from the strings they meet).
struct Table {
    chunks: [OnceLock<Chunk>; CHUNKS],
    numbers: LazyLock<Mutex<HashMap<&'static str, Name>>>,
}

static TABLE: Table = Table {
    chunks: [const { OnceLock::new() }; CHUNKS],
    numbers: LazyLock::new(Default::default),
};

/// The chunk and place of the name numbered `i` (from 0).
fn place(i: usize) -> (usize, usize) {
    let k = (i / FIRST + 1).ilog2() as usize;
    (k, i - FIRST * ((1 << k) - 1))
}

/// Where `n` is in `list`, added at its end if it was not there: the list of the names a
/// device's encoded events or intervals use, which their encodings index (a device uses a
/// handful, so a linear search).
pub(crate) fn index_in(list: &mut Vec<Name>, n: Name) -> usize {
    match list.iter().position(|x| *x == n) {
        Some(at) => at,
        None => {
            list.push(n);
            list.len() - 1
        }
    }
}

impl Name {
    /// The name `s`, interned if it was not yet.
    pub fn new(s: &str) -> Name {
        let mut numbers = TABLE.numbers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = numbers.get(s) {
            return *n;
        }
        let i = numbers.len();
        let number = u32::try_from(i + 1)
            .ok()
            .and_then(NonZeroU32::new)
            .expect("fewer than 2^32 distinct names");
        let s: &'static str = Box::leak(s.into());
        let (k, at) = place(i);
        let chunk =
            TABLE.chunks[k].get_or_init(|| (0..FIRST << k).map(|_| OnceLock::new()).collect());
        chunk[at].set(s).expect("a new number");
        let n = Name(number);
        numbers.insert(s, n);
        n
    }

    /// Its number in the process's table (the same name, the same number): a key cheaper to
    /// hash than the string, for maps not searched by `str`.
    pub fn number(self) -> u32 {
        self.0.get()
    }

    /// The string.
    pub fn as_str(&self) -> &'static str {
        let (k, at) = place(self.0.get() as usize - 1);
        TABLE.chunks[k]
            .get()
            .and_then(|c| c[at].get())
            .expect("a name's string is written before its number is handed out")
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // as `str` hashes, which `Borrow<str>` requires
        self.as_str().hash(state);
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if self == other {
            return std::cmp::Ordering::Equal;
        }
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name::new(s)
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Name {
        Name::new(s)
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        Name::new(&s)
    }
}

impl From<&Arc<str>> for Name {
    fn from(s: &Arc<str>) -> Name {
        Name::new(s)
    }
}

impl From<Name> for Arc<str> {
    fn from(n: Name) -> Arc<str> {
        Arc::from(n.as_str())
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Name {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_name_is_four_bytes_and_absent_costs_nothing() {
        assert_eq!(std::mem::size_of::<Name>(), 4);
        assert_eq!(std::mem::size_of::<Option<Name>>(), 4);
        // what a year of history holds millions of (was 144 and 184 with `Arc<str>`, 88 and
        // 112 with pointers)
        assert_eq!(std::mem::size_of::<crate::model::rows::ServiceRow>(), 56);
        assert_eq!(
            std::mem::size_of::<crate::model::intervals::ServiceInterval>(),
            72
        );
    }

    #[test]
    fn the_table_places_every_number_once() {
        // chunk k holds FIRST << k numbers, back to back from 0
        let mut next = 0;
        for k in 0..CHUNKS {
            assert_eq!(place(next), (k, 0));
            let last = next + (FIRST << k) - 1;
            assert_eq!(place(last), (k, (FIRST << k) - 1));
            next = last + 1;
        }
        assert!(next > u32::MAX as usize);
    }

    #[test]
    fn names_made_on_many_threads_are_one_each_and_read_back() {
        let made: Vec<Vec<(String, Name)>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|t| {
                    s.spawn(move || {
                        (0..3000)
                            .map(|i| {
                                let s = format!("name-test-{}", (i * 7 + t) % 5000);
                                let n = Name::new(&s);
                                (s, n)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let mut seen: HashMap<String, Name> = HashMap::new();
        for (s, n) in made.into_iter().flatten() {
            assert_eq!(n.as_str(), s);
            assert_eq!(*seen.entry(s).or_insert(n), n);
        }
    }

    #[test]
    fn equal_strings_are_one_name_found_by_str_and_ordered_as_str() {
        let a = Name::new("SEP0001");
        let b = Name::from(String::from("SEP0001"));
        assert_eq!(a, b);
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr());
        assert_ne!(a, Name::new("SEP0002"));
        let mut m = HashMap::new();
        m.insert(a, 1);
        assert_eq!(m.get("SEP0001"), Some(&1));
        let mut v = vec![Name::new("b"), Name::new("a"), Name::new("ab")];
        v.sort();
        assert_eq!(v, ["a", "ab", "b"]);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"SEP0001\"");
    }
}
