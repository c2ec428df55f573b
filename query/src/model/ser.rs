//! How domain times are written when a domain value is serialized (JSON answers, the CLI):
//! RFC 3339 UTC with microseconds, from the microseconds the model keeps.

use serde::Serializer;

use callstate_schemas::{Us, format_instant};

/// An instant as RFC 3339.
pub fn instant<S: Serializer>(t: &Us, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_instant(*t))
}

/// An optional instant as RFC 3339, or null.
pub fn opt_instant<S: Serializer>(t: &Option<Us>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&format_instant(*t)),
        None => s.serialize_none(),
    }
}
