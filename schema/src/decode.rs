//! Strict decoding of the wire format into an [`Envelope`].
//!
//! Decoding checks, in order: the body is JSON and an object; the envelope fields; the type; no
//! field this type does not have; each field's JSON type (through `serde_path_to_error`, so the
//! error names the field); then derives hashtags and mentions and runs [`validate::check`]. The
//! first broken rule is reported.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde_json::{Map, Value};

use crate::WIRE_VERSION;
use crate::event::{Envelope, Event, EventKind};
use crate::extract::extract;
use crate::validate::{self, Rule, ValidationError};

/// Where an event comes from, which decides how derived fields are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Sent by an app to the ingest API: `hashtags` and `mentions` are derived by ingest, so an
    /// app that sends them gets a [`Rule::Derived`] error.
    App,
    /// Read from the events topic: `hashtags` and `mentions` may be present (ingest wrote them);
    /// they are derived again from the text either way, so a producer that bypassed ingest
    /// cannot make a job see tags the caption does not have.
    Topic,
}

type Result<T> = std::result::Result<T, ValidationError>;

/// Decodes and validates one event from JSON bytes (without the clock rule,
/// [`validate::check_clock`], which only the ingest API applies).
pub fn decode(bytes: &[u8], origin: Origin) -> Result<Envelope> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ValidationError::whole(Rule::Json, format!("the event is not valid JSON: {e}"))
    })?;
    decode_value(value, origin)
}

/// Decodes and validates one event from an already parsed JSON value.
pub fn decode_value(value: Value, origin: Origin) -> Result<Envelope> {
    let Value::Object(mut map) = value else {
        return Err(ValidationError::whole(
            Rule::Type,
            format!("an event is a JSON object, not {}", json_type(&value)),
        ));
    };
    let v = take_u64(&mut map, "v")?;
    if v != u64::from(WIRE_VERSION) {
        return Err(ValidationError::new(
            "v",
            Rule::Version,
            format!("v is {v}; this server reads version {WIRE_VERSION}"),
        ));
    }
    let event_id = match take(&mut map, "event_id")? {
        Value::String(s) => s,
        other => return Err(wrong_type("event_id", "a string", &other)),
    };
    let kind_name = match take(&mut map, "type")? {
        Value::String(s) => s,
        other => return Err(wrong_type("type", "a string", &other)),
    };
    let Some(kind) = EventKind::parse(&kind_name) else {
        return Err(ValidationError::new(
            "type",
            Rule::UnknownType,
            format!("type {kind_name:?} is not an event type of wire version 1"),
        ));
    };
    let actor_id = take_u64(&mut map, "actor_id")?;
    let ts = match take(&mut map, "ts")? {
        Value::Number(n) => n.as_i64().ok_or_else(|| {
            ValidationError::new(
                "ts",
                Rule::Type,
                format!("ts is {n}; it must be an integer of ms"),
            )
        })?,
        other => return Err(wrong_type("ts", "an integer", &other)),
    };
    if origin == Origin::App && matches!(kind, EventKind::PostCreated | EventKind::CommentCreated) {
        for derived in ["hashtags", "mentions"] {
            if map.contains_key(derived) {
                return Err(ValidationError::new(
                    derived,
                    Rule::Derived,
                    format!("{derived} are derived from the text on ingest; do not send them"),
                ));
            }
        }
    }

    let mut event = body(kind, map)?;
    derive_tags(&mut event);
    let envelope = Envelope {
        v: WIRE_VERSION,
        event_id,
        actor_id,
        ts,
        event,
    };
    validate::check(&envelope)?;
    Ok(envelope)
}

/// Sets `hashtags` and `mentions` from the caption or comment text.
fn derive_tags(event: &mut Event) {
    match event {
        Event::PostCreated(p) => {
            let e = extract(&p.caption);
            p.hashtags = e.hashtags;
            p.mentions = e.mentions;
        }
        Event::CommentCreated(c) => {
            let e = extract(&c.text);
            c.hashtags = e.hashtags;
            c.mentions = e.mentions;
        }
        _ => {}
    }
}

fn body(kind: EventKind, map: Map<String, Value>) -> Result<Event> {
    use EventKind as K;
    Ok(match kind {
        K::UserCreated => Event::UserCreated(fields(map)?),
        K::UserUpdated => Event::UserUpdated(fields(map)?),
        K::Follow => Event::Follow(fields(map)?),
        K::Unfollow => Event::Unfollow(fields(map)?),
        K::FollowRequestApproved => Event::FollowRequestApproved(fields(map)?),
        K::Block => Event::Block(fields(map)?),
        K::Unblock => Event::Unblock(fields(map)?),
        K::CloseFriendAdded => Event::CloseFriendAdded(fields(map)?),
        K::CloseFriendRemoved => Event::CloseFriendRemoved(fields(map)?),
        K::PostCreated => Event::PostCreated(fields(map)?),
        K::PostDeleted => Event::PostDeleted(fields(map)?),
        K::StoryCreated => Event::StoryCreated(fields(map)?),
        K::StoryViewed => Event::StoryViewed(fields(map)?),
        K::Like => Event::Like(fields(map)?),
        K::Unlike => Event::Unlike(fields(map)?),
        K::CommentCreated => Event::CommentCreated(fields(map)?),
        K::CommentDeleted => Event::CommentDeleted(fields(map)?),
        K::Share => Event::Share(fields(map)?),
        K::Save => Event::Save(fields(map)?),
        K::Unsave => Event::Unsave(fields(map)?),
        K::View => Event::View(fields(map)?),
        K::ProfileView => Event::ProfileView(fields(map)?),
        K::Hide => Event::Hide(fields(map)?),
        K::Report => Event::Report(fields(map)?),
    })
}

/// Deserialises the type-specific fields into `T`, naming the field of any error.
fn fields<T: DeserializeOwned>(map: Map<String, Value>) -> Result<T> {
    let known = struct_fields::<T>();
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ValidationError::new(
            unknown.clone(),
            Rule::UnknownField,
            format!(
                "{unknown:?} is not a field of this event type; its fields are {}",
                known.join(", ")
            ),
        ));
    }
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde reports a missing field at the parent path with this fixed wording.
        if let Some(rest) = inner.strip_prefix("missing field `") {
            let name = rest.trim_end_matches('`');
            let field = if path == "." {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            };
            return ValidationError::new(
                field.clone(),
                Rule::Required,
                format!("{field} is required"),
            );
        }
        let rule = if inner.starts_with("unknown variant") {
            Rule::OneOf
        } else if inner.starts_with("unknown field") {
            Rule::UnknownField
        } else {
            Rule::Type
        };
        ValidationError::new(path.clone(), rule, format!("{path}: {inner}"))
    })
}

fn take(map: &mut Map<String, Value>, field: &str) -> Result<Value> {
    map.remove(field)
        .ok_or_else(|| ValidationError::new(field, Rule::Required, format!("{field} is required")))
}

fn take_u64(map: &mut Map<String, Value>, field: &str) -> Result<u64> {
    match take(map, field)? {
        Value::Number(n) => n.as_u64().ok_or_else(|| {
            ValidationError::new(
                field,
                Rule::Type,
                format!("{field} is {n}; it must be a non-negative integer"),
            )
        }),
        other => Err(wrong_type(field, "an integer", &other)),
    }
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> ValidationError {
    ValidationError::new(
        field,
        Rule::Type,
        format!("{field} must be {expected}, not {}", json_type(got)),
    )
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The field names serde's derive gives a struct, read by asking `T` to deserialise itself
/// from a deserializer that only records the names it is offered.
fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Capture<'a>(&'a mut &'static [&'static str]);

    impl<'de> Deserializer<'de> for Capture<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(
            self,
            _: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            Err(de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> std::result::Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("fields captured"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // The capture always fails after recording the names; the error carries nothing.
    let _ = T::deserialize(Capture(&mut fields));
    fields
}
