//! [`Name`]: the interned string that names a device, cluster, node, pool, type, cause or
//! source in service events and intervals.
//!
//! A year of history holds millions of service events and intervals, each naming up to nine
//! of these; as `Arc<str>` a name costs 16 bytes (a fat pointer), as a `Name` 8, and an
//! absent one costs nothing more (`Option<Name>` is 8 bytes too). Names are never freed: their
//! number is that of distinct names the log ever held, which the live state keeps anyway.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::{Serialize, Serializer};
use ustr::Ustr;

/// An interned string: copied freely, equal when the pointer is, hashed and ordered as the
/// `str` it derefs to (so maps keyed by it are searched with a `&str`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name(Ustr);

impl Name {
    /// The name `s`, interned if it was not yet.
    pub fn new(s: &str) -> Name {
        Name(Ustr::from(s))
    }

    /// The string.
    pub fn as_str(&self) -> &'static str {
        self.0.as_str()
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        self.0.as_str()
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
    fn a_name_is_as_small_as_a_pointer_and_absent_costs_nothing() {
        assert_eq!(std::mem::size_of::<Name>(), 8);
        assert_eq!(std::mem::size_of::<Option<Name>>(), 8);
        // what a year of history holds millions of (was 144 and 184 with `Arc<str>`)
        assert_eq!(std::mem::size_of::<crate::model::rows::ServiceRow>(), 88);
        assert_eq!(
            std::mem::size_of::<crate::model::intervals::ServiceInterval>(),
            112
        );
    }

    #[test]
    fn equal_strings_are_one_name_found_by_str_and_ordered_as_str() {
        let a = Name::new("SEP0001");
        let b = Name::from(String::from("SEP0001"));
        assert_eq!(a, b);
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr());
        let mut m = HashMap::new();
        m.insert(a, 1);
        assert_eq!(m.get("SEP0001"), Some(&1));
        let mut v = vec![Name::new("b"), Name::new("a"), Name::new("ab")];
        v.sort();
        assert_eq!(v, ["a", "ab", "b"]);
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"SEP0001\"");
    }
}
