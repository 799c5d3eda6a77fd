//! The rules of `EVENTS.md`, and the error that names the field and the rule an event broke.
//!
//! Structural rules (JSON types, required and unknown fields) are enforced while decoding, in
//! [`crate::decode`]; the rules here run on a decoded [`Envelope`]. The one rule that needs a
//! clock, "`ts` not more than 5 minutes in the future", is separate ([`check_clock`]) because it
//! applies when an app sends an event, not when a job replays the topic years later.

use serde::Serialize;

use crate::event::{Envelope, Event, Location, MediaType, PostCreated};
use crate::extract::{MAX_HASHTAGS, MAX_MENTIONS};
use crate::{MAX_ID, WIRE_VERSION};

/// Longest caption or comment, in characters (Unicode scalar values).
pub const MAX_TEXT_CHARS: usize = 2_200;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Longest media reference, in characters.
pub const MAX_MEDIA_REF_CHARS: usize = 256;
/// Most media references on one post.
pub const MAX_MEDIA: usize = 10;
/// Longest location name, in characters.
pub const MAX_LOCATION_NAME_CHARS: usize = 128;
/// Longest `event_id`.
pub const MAX_EVENT_ID_CHARS: usize = 64;
/// Longest dwell or watch time a single view may report: one day, in milliseconds. Anything
/// longer is a broken client timer, not attention.
pub const MAX_VIEW_MS: u64 = 86_400_000;

/// Which rule an event broke. The names are stable: clients and metrics labels use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The body is not valid JSON.
    Json,
    /// A value has the wrong JSON type (or an event is not an object).
    Type,
    /// A required field is missing.
    Required,
    /// A field this event type does not have.
    UnknownField,
    /// A field that ingest derives (`hashtags`, `mentions`) and apps must not send.
    Derived,
    /// `v` is not a version this build reads.
    Version,
    /// `type` names no known event type.
    UnknownType,
    /// A value outside its enumeration (media type, surface, reason, …).
    OneOf,
    /// A string with characters outside its allowed set.
    Pattern,
    /// A string too long or too short.
    Length,
    /// A list with too many or too few entries.
    Count,
    /// An id outside 1 ..= 2^53 − 1.
    IdRange,
    /// A number outside its allowed range.
    Range,
    /// `ts` too far in the future.
    FutureTs,
    /// An event that targets its own actor where that makes no sense (follow oneself, …).
    NotSelf,
    /// An update that changes nothing.
    AtLeastOne,
    /// More hashtags than allowed.
    TooManyHashtags,
    /// More mentions than allowed.
    TooManyMentions,
}

impl Rule {
    /// Every rule, for tests and for pre-registering metric labels.
    pub const ALL: [Rule; 18] = [
        Rule::Json,
        Rule::Type,
        Rule::Required,
        Rule::UnknownField,
        Rule::Derived,
        Rule::Version,
        Rule::UnknownType,
        Rule::OneOf,
        Rule::Pattern,
        Rule::Length,
        Rule::Count,
        Rule::IdRange,
        Rule::Range,
        Rule::FutureTs,
        Rule::NotSelf,
        Rule::AtLeastOne,
        Rule::TooManyHashtags,
        Rule::TooManyMentions,
    ];

    /// The stable snake_case name of the rule.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Json => "json",
            Rule::Type => "type",
            Rule::Required => "required",
            Rule::UnknownField => "unknown_field",
            Rule::Derived => "derived",
            Rule::Version => "version",
            Rule::UnknownType => "unknown_type",
            Rule::OneOf => "one_of",
            Rule::Pattern => "pattern",
            Rule::Length => "length",
            Rule::Count => "count",
            Rule::IdRange => "id_range",
            Rule::Range => "range",
            Rule::FutureTs => "future_ts",
            Rule::NotSelf => "not_self",
            Rule::AtLeastOne => "at_least_one",
            Rule::TooManyHashtags => "too_many_hashtags",
            Rule::TooManyMentions => "too_many_mentions",
        }
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an event was refused: the field (when one field is at fault), the rule, and a sentence
/// that says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// The offending field, as a path (`location.lat`, `media[2]`); `None` for the whole event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub rule: Rule,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, rule: Rule, message: impl Into<String>) -> Self {
        ValidationError {
            field: Some(field.into()),
            rule,
            message: message.into(),
        }
    }

    /// An error about the event as a whole rather than one field.
    pub fn whole(rule: Rule, message: impl Into<String>) -> Self {
        ValidationError {
            field: None,
            rule,
            message: message.into(),
        }
    }
}

type Result<T = ()> = std::result::Result<T, ValidationError>;

/// Checks `ts` against the sender's clock: at most `max_skew_ms` ahead of `now_ms`.
pub fn check_clock(envelope: &Envelope, now_ms: i64, max_skew_ms: i64) -> Result {
    let limit = now_ms.saturating_add(max_skew_ms);
    if envelope.ts > limit {
        return Err(ValidationError::new(
            "ts",
            Rule::FutureTs,
            format!(
                "ts is {} ms in the future; at most {} ms is allowed",
                envelope.ts - now_ms,
                max_skew_ms
            ),
        ));
    }
    Ok(())
}

/// Checks every rule of `EVENTS.md` that needs no clock and no state.
pub fn check(envelope: &Envelope) -> Result {
    if envelope.v != WIRE_VERSION {
        return Err(ValidationError::new(
            "v",
            Rule::Version,
            format!(
                "v is {}; this server reads version {WIRE_VERSION}",
                envelope.v
            ),
        ));
    }
    check_event_id(&envelope.event_id)?;
    id("actor_id", envelope.actor_id)?;
    if envelope.ts < 0 {
        return Err(ValidationError::new(
            "ts",
            Rule::Range,
            format!(
                "ts is {}; it must be ms since the Unix epoch, not negative",
                envelope.ts
            ),
        ));
    }
    let actor = envelope.actor_id;
    match &envelope.event {
        Event::UserCreated(e) => {
            check_username(&e.username)?;
            if let Some(name) = &e.display_name {
                max_chars("display_name", name, MAX_DISPLAY_NAME_CHARS)?;
            }
        }
        Event::UserUpdated(e) => {
            if e.display_name.is_none() && e.private.is_none() && e.verified.is_none() {
                return Err(ValidationError::whole(
                    Rule::AtLeastOne,
                    "user_updated needs at least one of display_name, private, verified",
                ));
            }
            if let Some(name) = &e.display_name {
                max_chars("display_name", name, MAX_DISPLAY_NAME_CHARS)?;
            }
        }
        Event::Follow(t)
        | Event::Unfollow(t)
        | Event::Block(t)
        | Event::Unblock(t)
        | Event::CloseFriendAdded(t)
        | Event::CloseFriendRemoved(t)
        | Event::ProfileView(t) => other_user("target_id", t.target_id, actor)?,
        Event::FollowRequestApproved(e) => other_user("requester_id", e.requester_id, actor)?,
        Event::PostCreated(e) => check_post(e)?,
        Event::PostDeleted(e) => id("post_id", e.post_id)?,
        Event::StoryCreated(e) => {
            id("story_id", e.story_id)?;
            media_list(&e.media, 1, 1, "a story has exactly one media reference")?;
        }
        Event::StoryViewed(e) => {
            id("story_id", e.story_id)?;
            id("author_id", e.author_id)?;
        }
        Event::Like(e) | Event::Unlike(e) | Event::Save(e) | Event::Unsave(e) => {
            id("post_id", e.post_id)?;
            id("author_id", e.author_id)?;
        }
        Event::CommentCreated(e) => {
            id("comment_id", e.comment_id)?;
            id("post_id", e.post_id)?;
            id("author_id", e.author_id)?;
            let n = e.text.chars().count();
            if n == 0 || n > MAX_TEXT_CHARS {
                return Err(ValidationError::new(
                    "text",
                    Rule::Length,
                    format!("text is {n} characters; it must be 1 to {MAX_TEXT_CHARS}"),
                ));
            }
            tag_counts("text", &e.hashtags, &e.mentions)?;
        }
        Event::CommentDeleted(e) => {
            id("comment_id", e.comment_id)?;
            id("post_id", e.post_id)?;
            id("author_id", e.author_id)?;
        }
        Event::Share(e) => {
            id("post_id", e.post_id)?;
            id("author_id", e.author_id)?;
            if let Some(to) = e.to_id {
                other_user("to_id", to, actor)?;
            }
        }
        Event::View(e) => {
            id("post_id", e.post_id)?;
            id("author_id", e.author_id)?;
            view_ms("dwell_ms", e.dwell_ms)?;
            if let Some(w) = e.watch_ms {
                view_ms("watch_ms", w)?;
            }
        }
        Event::Hide(e) => {
            id("post_id", e.post_id)?;
            id("author_id", e.author_id)?;
        }
        Event::Report(e) => {
            id("post_id", e.post_id)?;
            id("author_id", e.author_id)?;
        }
    }
    Ok(())
}

fn check_post(e: &PostCreated) -> Result {
    id("post_id", e.post_id)?;
    match e.media_type {
        MediaType::Carousel => media_list(&e.media, 2, MAX_MEDIA, "a carousel has 2 to 10")?,
        _ => media_list(&e.media, 1, 1, "a photo, video or reel has exactly one")?,
    }
    max_chars("caption", &e.caption, MAX_TEXT_CHARS)?;
    if let Some(loc) = &e.location {
        check_location(loc)?;
    }
    tag_counts("caption", &e.hashtags, &e.mentions)
}

fn check_location(loc: &Location) -> Result {
    max_chars("location.name", &loc.name, MAX_LOCATION_NAME_CHARS)?;
    if !(-90.0..=90.0).contains(&loc.lat) {
        return Err(ValidationError::new(
            "location.lat",
            Rule::Range,
            format!("location.lat is {}; it must be within -90 to 90", loc.lat),
        ));
    }
    if !(-180.0..=180.0).contains(&loc.lng) {
        return Err(ValidationError::new(
            "location.lng",
            Rule::Range,
            format!("location.lng is {}; it must be within -180 to 180", loc.lng),
        ));
    }
    Ok(())
}

fn check_event_id(event_id: &str) -> Result {
    let n = event_id.len();
    if n == 0 || n > MAX_EVENT_ID_CHARS {
        return Err(ValidationError::new(
            "event_id",
            Rule::Length,
            format!("event_id is {n} characters; it must be 1 to {MAX_EVENT_ID_CHARS}"),
        ));
    }
    if let Some(bad) = event_id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(ValidationError::new(
            "event_id",
            Rule::Pattern,
            format!("event_id contains {bad:?}; only A-Z, a-z, 0-9, '_' and '-' are allowed"),
        ));
    }
    Ok(())
}

fn check_username(username: &str) -> Result {
    let n = username.chars().count();
    if !(3..=30).contains(&n) {
        return Err(ValidationError::new(
            "username",
            Rule::Length,
            format!("username is {n} characters; it must be 3 to 30"),
        ));
    }
    if let Some(bad) = username
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '_'))
    {
        return Err(ValidationError::new(
            "username",
            Rule::Pattern,
            format!("username contains {bad:?}; only a-z, 0-9, '.' and '_' are allowed"),
        ));
    }
    Ok(())
}

/// An id in 1 ..= 2^53 − 1.
pub fn id(field: &str, value: u64) -> Result {
    if value == 0 || value > MAX_ID {
        return Err(ValidationError::new(
            field,
            Rule::IdRange,
            format!("{field} is {value}; ids must be 1 to {MAX_ID} (2^53-1)"),
        ));
    }
    Ok(())
}

fn other_user(field: &str, value: u64, actor: u64) -> Result {
    id(field, value)?;
    if value == actor {
        return Err(ValidationError::new(
            field,
            Rule::NotSelf,
            format!("{field} equals actor_id; a user cannot do this to themselves"),
        ));
    }
    Ok(())
}

fn max_chars(field: &str, value: &str, limit: usize) -> Result {
    // Counting chars is O(n); the byte length is an upper bound, so skip the count when it fits.
    if value.len() > limit {
        let n = value.chars().count();
        if n > limit {
            return Err(ValidationError::new(
                field,
                Rule::Length,
                format!("{field} is {n} characters; the limit is {limit}"),
            ));
        }
    }
    Ok(())
}

fn media_list(media: &[String], min: usize, max: usize, rule_text: &str) -> Result {
    if media.len() < min || media.len() > max {
        return Err(ValidationError::new(
            "media",
            Rule::Count,
            format!("media has {} references; {rule_text}", media.len()),
        ));
    }
    for (i, m) in media.iter().enumerate() {
        let field = format!("media[{i}]");
        if m.is_empty() {
            return Err(ValidationError::new(
                field.clone(),
                Rule::Length,
                format!(
                    "{field} is empty; a media reference has 1 to {MAX_MEDIA_REF_CHARS} characters"
                ),
            ));
        }
        max_chars(&field, m, MAX_MEDIA_REF_CHARS)?;
    }
    Ok(())
}

fn view_ms(field: &str, value: u64) -> Result {
    if value > MAX_VIEW_MS {
        return Err(ValidationError::new(
            field,
            Rule::Range,
            format!("{field} is {value}; at most {MAX_VIEW_MS} ms (one day) is allowed"),
        ));
    }
    Ok(())
}

fn tag_counts(field: &str, hashtags: &[String], mentions: &[String]) -> Result {
    if hashtags.len() > MAX_HASHTAGS {
        return Err(ValidationError::new(
            field,
            Rule::TooManyHashtags,
            format!(
                "{field} has {} distinct hashtags; the limit is {MAX_HASHTAGS}",
                hashtags.len()
            ),
        ));
    }
    if mentions.len() > MAX_MENTIONS {
        return Err(ValidationError::new(
            field,
            Rule::TooManyMentions,
            format!(
                "{field} has {} distinct mentions; the limit is {MAX_MENTIONS}",
                mentions.len()
            ),
        ));
    }
    Ok(())
}
