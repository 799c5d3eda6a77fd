//! Opaque cursors for ordered lists.
//!
//! A feed page ends at some item `(created_at, post_id)`; the next page is everything strictly
//! older in the feed's order (newest first, ties by post id). Because the cursor names a
//! position in that order rather than an offset, new posts arriving at the top do not shift the
//! pages below: the next page neither repeats nor skips an item.
//!
//! On the wire a cursor is URL-safe base64 of `v1:<ts>:<id>` (or, for lists of string members,
//! [`KeyCursor`]): clients must treat it as opaque,
//! which keeps us free to change what is inside.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::error::ApiError;

/// A position in a list ordered by `(ts, id)` descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub ts: i64,
    pub id: u64,
}

impl Cursor {
    /// Whether the item `(ts, id)` comes after this position (is older).
    pub fn is_before(&self, ts: i64, id: u64) -> bool {
        (ts, id) < (self.ts, self.id)
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{}:{}", self.ts, self.id))
    }

    /// Reads a cursor a previous page handed out; anything else is a 400 naming `cursor`.
    pub fn decode(text: &str) -> Result<Cursor, ApiError> {
        let invalid = || {
            ApiError::bad_request(
                "cursor",
                "cursor is not one this API handed out; pass next_cursor back unchanged",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
        let mut parts = text.split(':');
        let (Some("v1"), Some(ts), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        Ok(Cursor {
            ts: ts.parse().map_err(|_| invalid())?,
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

/// A position in a list ordered by `(ts, key)` descending, for lists whose members are
/// strings (notification batches). On the wire: URL-safe base64 of `k1:<ts>:<key>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyCursor {
    pub ts: i64,
    pub key: String,
}

impl KeyCursor {
    /// Whether the item `(ts, key)` comes after this position (is older).
    pub fn is_before(&self, ts: i64, key: &str) -> bool {
        (ts, key) < (self.ts, self.key.as_str())
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("k1:{}:{}", self.ts, self.key))
    }

    /// Reads a cursor a previous page handed out; anything else is a 400 naming `cursor`.
    pub fn decode(text: &str) -> Result<KeyCursor, ApiError> {
        let invalid = || {
            ApiError::bad_request(
                "cursor",
                "cursor is not one this API handed out; pass next_cursor back unchanged",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| invalid())?;
        let mut parts = text.splitn(3, ':');
        let (Some("k1"), Some(ts), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        Ok(KeyCursor {
            ts: ts.parse().map_err(|_| invalid())?,
            key: key.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn cursors_round_trip(ts in any::<i64>(), id in any::<u64>()) {
            let c = Cursor { ts, id };
            prop_assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn key_cursors_round_trip(ts in any::<i64>(), key in "[a-z0-9:]{0,30}") {
            let c = KeyCursor { ts, key };
            prop_assert_eq!(KeyCursor::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn arbitrary_text_is_a_bad_request_not_a_panic(text in ".{0,40}") {
            if let Err(e) = Cursor::decode(&text) {
                let is_cursor_error = matches!(e, ApiError::BadRequest { field: "cursor", .. });
                prop_assert!(is_cursor_error);
            }
            if let Err(e) = KeyCursor::decode(&text) {
                let is_cursor_error = matches!(e, ApiError::BadRequest { field: "cursor", .. });
                prop_assert!(is_cursor_error);
            }
        }
    }

    #[test]
    fn tampered_cursors_are_refused() {
        for text in [
            "",
            "abc",
            &URL_SAFE_NO_PAD.encode("v2:1:2"),
            &URL_SAFE_NO_PAD.encode("v1:x:2"),
        ] {
            assert!(Cursor::decode(text).is_err(), "{text}");
        }
    }
}
