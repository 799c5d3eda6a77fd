//! The warehouse's tables, as Arrow schemas: which event type lands in which table, and every
//! column with its type, its meaning and how its value is read off an event.
//!
//! One table per event family of `EVENTS.md`, each holding every event type of its family, told
//! apart by `event_type` ([`Table::of`] is the mapping, total over [`EventKind::ALL`]). Every
//! table starts with the envelope columns (`event_id`, `event_type`, `actor_id`, `ts`) and ends
//! with its partition key `dt`. The warehouse crate turns events into rows with these
//! definitions, and generates the data dictionary (`docs/data-dictionary.md`) from them, so a
//! column's type, its value and its documentation cannot drift apart.
//!
//! Type choices, for the readers data scientists use (DataFusion, pandas, polars, duckdb):
//! - ids are **Int64**, not UInt64: every id is at most 2^53 − 1 ([`crate::MAX_ID`]), so nothing
//!   is lost, and signed integers compare with plain literals and join without casts (pandas
//!   turns UInt64 mixed with Int64 into float64).
//! - event time is **Timestamp(ms, UTC)**; `dt` is **Date32**, stored inside each file as well as
//!   in its `dt=YYYY-MM-DD` folder, so readers that take columns from the files get a date
//!   whatever they make of folder names (pyarrow infers strings from them, and must be told
//!   `dt` is a date: `notebooks/aperture_warehouse.py`).
//! - enumerations (`event_type`, `media_type`, `surface`, `reason`, `audience`) are
//!   **Dictionary(Int32, Utf8)**: a handful of values, read back as pandas `category` and
//!   filtered as strings in SQL.
//! - `hashtags`, `mentions` and post `media` are **List(Utf8)**, so `unnest`/`explode` work.
//! - a column that only some event types of its table carry is nullable, and says which.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::event::{Audience, Envelope, Event, ReportReason, StoryMediaType, Surface};
use crate::{EventKind, MAX_ID};

/// Milliseconds in a UTC day.
pub const DAY_MS: i64 = 86_400_000;
/// The last millisecond of 9999-12-31: the last day a four-digit `dt=YYYY-MM-DD` folder (and
/// every reader's date parser) can name. Events after it have no warehouse day.
pub const MAX_TS: i64 = 253_402_300_799_999;

/// The UTC day of an event time, in days since 1970-01-01 (Arrow's Date32), or `None` for a
/// time outside 1970-01-01 ..= 9999-12-31, which a `dt=YYYY-MM-DD` folder cannot name.
pub fn day_of(ts: i64) -> Option<i32> {
    if !(0..=MAX_TS).contains(&ts) {
        return None;
    }
    // At most 2,932,896 days: far inside an i32.
    i32::try_from(ts / DAY_MS).ok()
}

/// A warehouse table: one family of event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    Users,
    Follows,
    Posts,
    Stories,
    Likes,
    Comments,
    Shares,
    Saves,
    Views,
    NegativeFeedback,
}

impl Table {
    /// Every table, in the order of `EVENTS.md`.
    pub const ALL: [Table; 10] = [
        Table::Users,
        Table::Follows,
        Table::Posts,
        Table::Stories,
        Table::Likes,
        Table::Comments,
        Table::Shares,
        Table::Saves,
        Table::Views,
        Table::NegativeFeedback,
    ];

    /// The table's name: its folder under the warehouse root and its name in SQL.
    pub fn name(self) -> &'static str {
        match self {
            Table::Users => "users",
            Table::Follows => "follows",
            Table::Posts => "posts",
            Table::Stories => "stories",
            Table::Likes => "likes",
            Table::Comments => "comments",
            Table::Shares => "shares",
            Table::Saves => "saves",
            Table::Views => "views",
            Table::NegativeFeedback => "negative_feedback",
        }
    }

    /// The table named `name`; `None` for a name that is not a table.
    pub fn parse(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The table an event type lands in. Every type has exactly one.
    pub fn of(kind: EventKind) -> Table {
        use EventKind as K;
        match kind {
            K::UserCreated | K::UserUpdated => Table::Users,
            K::Follow
            | K::Unfollow
            | K::FollowRequestApproved
            | K::Block
            | K::Unblock
            | K::CloseFriendAdded
            | K::CloseFriendRemoved => Table::Follows,
            K::PostCreated | K::PostDeleted => Table::Posts,
            K::StoryCreated | K::StoryViewed => Table::Stories,
            K::Like | K::Unlike => Table::Likes,
            K::CommentCreated | K::CommentDeleted => Table::Comments,
            K::Share => Table::Shares,
            K::Save | K::Unsave => Table::Saves,
            K::View | K::ProfileView => Table::Views,
            K::Hide | K::Report => Table::NegativeFeedback,
        }
    }

    /// The event types this table holds, in the order of `EVENTS.md`.
    pub fn kinds(self) -> Vec<EventKind> {
        EventKind::ALL
            .iter()
            .copied()
            .filter(|k| Table::of(*k) == self)
            .collect()
    }

    /// What one row of the table is.
    pub fn doc(self) -> &'static str {
        match self {
            Table::Users => "an account created, or its profile settings changed",
            Table::Follows => {
                "a change to the social graph: a follow (a request when the target is private), \
                 an unfollow, a request approved, a block or unblock, a close friend added or \
                 removed; event_type is the action"
            }
            Table::Posts => "a post published or deleted; actor_id is the author",
            Table::Stories => "a story published, or viewed by someone",
            Table::Likes => "a like or unlike of a post",
            Table::Comments => "a comment written or deleted",
            Table::Shares => "a post shared, to the sharer's followers or to one user",
            Table::Saves => "a post saved or unsaved",
            Table::Views => "a post seen on a surface (view), or a profile visited (profile_view)",
            Table::NegativeFeedback => "a post hidden or reported",
        }
    }

    /// Every column of the table, in file order: envelope columns, the family's own, `dt`.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Table::Users => USERS,
            Table::Follows => FOLLOWS,
            Table::Posts => POSTS,
            Table::Stories => STORIES,
            Table::Likes => LIKES,
            Table::Comments => COMMENTS,
            Table::Shares => SHARES,
            Table::Saves => SAVES,
            Table::Views => VIEWS,
            Table::NegativeFeedback => NEGATIVE_FEEDBACK,
        }
    }

    /// The column named `name`.
    pub fn column(self, name: &str) -> Option<&'static Column> {
        self.columns().iter().find(|c| c.name == name)
    }

    /// The order of rows within a file, most significant first. Chosen for the queries the
    /// warehouse serves: per creator (`author_id`, or `target_id` for the graph), then per post,
    /// then time; `event_id` last makes the order total, so equal inputs give equal files.
    /// Row-group and page statistics on the leading columns then let readers skip most of a
    /// file for one creator or one post.
    pub fn sort_key(self) -> &'static [&'static str] {
        match self {
            Table::Users => &[ACTOR, TS, EVENT_ID],
            Table::Follows => &["target_id", ACTOR, TS, EVENT_ID],
            Table::Posts => &[ACTOR, "post_id", TS, EVENT_ID],
            Table::Stories => &[AUTHOR, "story_id", TS, EVENT_ID],
            Table::Likes
            | Table::Comments
            | Table::Shares
            | Table::Saves
            | Table::Views
            | Table::NegativeFeedback => &[AUTHOR, "post_id", TS, EVENT_ID],
        }
    }

    /// The table's Arrow schema, as every file of the table stores it.
    pub fn schema(self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns().iter().map(Column::field).collect::<Vec<_>>(),
        ))
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Name of the event id column, first in every table.
pub const EVENT_ID: &str = "event_id";
/// Name of the event type column.
pub const EVENT_TYPE: &str = "event_type";
/// Name of the actor column.
pub const ACTOR: &str = "actor_id";
/// Name of the event time column.
pub const TS: &str = "ts";
/// Name of the partition column, last in every table.
pub const DT: &str = "dt";
const AUTHOR: &str = "author_id";

/// A column's Arrow type, as a closed set: every table column has one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Int64.
    Int,
    /// Float64.
    Float,
    /// Boolean.
    Bool,
    /// Utf8.
    Text,
    /// Dictionary(Int32, Utf8): an enumeration.
    Enum,
    /// List(Utf8).
    TextList,
    /// Timestamp(Millisecond, "UTC").
    Timestamp,
    /// Date32 (days since 1970-01-01).
    Date,
}

impl ColumnType {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Int => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Text => DataType::Utf8,
            ColumnType::Enum => {
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
            }
            // The item field as Arrow's list builder makes it, so built arrays match exactly.
            ColumnType::TextList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            ColumnType::Date => DataType::Date32,
        }
    }

    /// The type as the data dictionary names it (Arrow's display form, shortened).
    pub fn describe(self) -> &'static str {
        match self {
            ColumnType::Int => "Int64",
            ColumnType::Float => "Float64",
            ColumnType::Bool => "Boolean",
            ColumnType::Text => "Utf8",
            ColumnType::Enum => "Dictionary(Int32, Utf8)",
            ColumnType::TextList => "List(Utf8)",
            ColumnType::Timestamp => "Timestamp(ms, UTC)",
            ColumnType::Date => "Date32",
        }
    }
}

/// How a column's value is read off an event; `None` is a null. The variant decides the
/// column's type, so a type and its values cannot disagree.
#[derive(Clone, Copy)]
pub enum Value {
    Int(fn(&Envelope) -> Option<i64>),
    Float(fn(&Envelope) -> Option<f64>),
    Bool(fn(&Envelope) -> Option<bool>),
    Text(fn(&Envelope) -> Option<&str>),
    Enum(fn(&Envelope) -> Option<&'static str>),
    TextList(fn(&Envelope) -> Option<&[String]>),
    /// Milliseconds since the Unix epoch.
    Timestamp(fn(&Envelope) -> Option<i64>),
    /// Days since 1970-01-01.
    Date(fn(&Envelope) -> Option<i32>),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.column_type())
    }
}

impl Value {
    pub fn column_type(&self) -> ColumnType {
        match self {
            Value::Int(_) => ColumnType::Int,
            Value::Float(_) => ColumnType::Float,
            Value::Bool(_) => ColumnType::Bool,
            Value::Text(_) => ColumnType::Text,
            Value::Enum(_) => ColumnType::Enum,
            Value::TextList(_) => ColumnType::TextList,
            Value::Timestamp(_) => ColumnType::Timestamp,
            Value::Date(_) => ColumnType::Date,
        }
    }
}

/// One column of a table.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    /// Whether some event types of the table leave it null.
    pub nullable: bool,
    /// What the column means, for the data dictionary.
    pub doc: &'static str,
    /// For an enumeration, every value it takes; empty otherwise (`event_type`'s values are
    /// the table's [`Table::kinds`]).
    pub values: &'static [&'static str],
    /// How the value is read off an event.
    pub value: Value,
}

impl Column {
    pub fn column_type(&self) -> ColumnType {
        self.value.column_type()
    }

    pub fn data_type(&self) -> DataType {
        self.column_type().data_type()
    }

    pub fn field(&self) -> Field {
        Field::new(self.name, self.data_type(), self.nullable)
    }
}

const fn column(name: &'static str, nullable: bool, doc: &'static str, value: Value) -> Column {
    Column {
        name,
        nullable,
        doc,
        values: &[],
        value,
    }
}

const fn enumeration(
    name: &'static str,
    nullable: bool,
    doc: &'static str,
    values: &'static [&'static str],
    value: fn(&Envelope) -> Option<&'static str>,
) -> Column {
    Column {
        name,
        nullable,
        doc,
        values,
        value: Value::Enum(value),
    }
}

/// An id as Int64. Decoding checked that every id is at most 2^53 − 1, so the cast is lossless;
/// the clamp only keeps a hand-built, never-validated envelope from wrapping negative.
fn id(v: u64) -> i64 {
    v.min(MAX_ID) as i64
}

// The envelope columns and `dt`, shared by every table.

const EVENT_ID_COLUMN: Column = column(
    EVENT_ID,
    false,
    "the event's unique id, the idempotency key (1-64 of [A-Za-z0-9_-])",
    Value::Text(|e| Some(e.event_id.as_str())),
);
const EVENT_TYPE_COLUMN: Column = column(
    EVENT_TYPE,
    false,
    "the event's wire type",
    Value::Enum(|e| Some(e.kind().as_str())),
);
const TS_COLUMN: Column = column(
    TS,
    false,
    "event time, as the app reported it (UTC)",
    Value::Timestamp(|e| Some(e.ts)),
);
const DT_COLUMN: Column = column(
    DT,
    false,
    "UTC day of ts: the partition key, also the dt=YYYY-MM-DD folder holding the file",
    Value::Date(|e| day_of(e.ts)),
);

const USERS: &[Column] = &[
    EVENT_ID_COLUMN,
    EVENT_TYPE_COLUMN,
    column(
        ACTOR,
        false,
        "the account created or updated",
        Value::Int(|e| Some(id(e.actor_id))),
    ),
    TS_COLUMN,
    column(
        "username",
        true,
        "the account's unique username (3-30 of [a-z0-9._]); set by user_created only",
        Value::Text(|e| match &e.event {
            Event::UserCreated(u) => Some(u.username.as_str()),
            _ => None,
        }),
    ),
    column(
        "display_name",
        true,
        "the display name, when the event sets it",
        Value::Text(|e| match &e.event {
            Event::UserCreated(u) => u.display_name.as_deref(),
            Event::UserUpdated(u) => u.display_name.as_deref(),
            _ => None,
        }),
    ),
    column(
        "private",
        true,
        "whether the account is private (follows need approval); null when an update leaves it",
        Value::Bool(|e| match &e.event {
            Event::UserCreated(u) => Some(u.private),
            Event::UserUpdated(u) => u.private,
            _ => None,
        }),
    ),
    column(
        "verified",
        true,
        "whether the account is verified; null when an update leaves it",
        Value::Bool(|e| match &e.event {
            Event::UserCreated(u) => Some(u.verified),
            Event::UserUpdated(u) => u.verified,
            _ => None,
        }),
    ),
    DT_COLUMN,
];

const FOLLOWS: &[Column] = &[
    EVENT_ID_COLUMN,
    EVENT_TYPE_COLUMN,
    column(
        ACTOR,
        false,
        "the user who acted: the follower, blocker or list owner; for follow_request_approved \
         the private account approving",
        Value::Int(|e| Some(id(e.actor_id))),
    ),
    TS_COLUMN,
    column(
        "target_id",
        false,
        "the other account: followed, unfollowed, blocked, unblocked, added to or removed from \
         close friends; for follow_request_approved the requester whose follow becomes active",
        Value::Int(|e| match &e.event {
            Event::Follow(t)
            | Event::Unfollow(t)
            | Event::Block(t)
            | Event::Unblock(t)
            | Event::CloseFriendAdded(t)
            | Event::CloseFriendRemoved(t) => Some(id(t.target_id)),
            Event::FollowRequestApproved(r) => Some(id(r.requester_id)),
            _ => None,
        }),
    ),
    DT_COLUMN,
];

const MEDIA_TYPES: &[&str] = &["photo", "video", "reel", "carousel"];

const POSTS: &[Column] = &[
    EVENT_ID_COLUMN,
    EVENT_TYPE_COLUMN,
    column(
        ACTOR,
        false,
        "the post's author",
        Value::Int(|e| Some(id(e.actor_id))),
    ),
    TS_COLUMN,
    column(
        "post_id",
        false,
        "the post",
        Value::Int(|e| e.event.post_id().map(id)),
    ),
    enumeration(
        "media_type",
        true,
        "the kind of media; null for post_deleted",
        MEDIA_TYPES,
        |e| match &e.event {
            Event::PostCreated(p) => Some(p.media_type.as_str()),
            _ => None,
        },
    ),
    column(
        "media",
        true,
        "media references, in order (1, or 2-10 for a carousel); null for post_deleted",
        Value::TextList(|e| match &e.event {
            Event::PostCreated(p) => Some(p.media.as_slice()),
            _ => None,
        }),
    ),
    column(
        "caption",
        true,
        "the caption (at most 2,200 characters, possibly empty); null for post_deleted",
        Value::Text(|e| match &e.event {
            Event::PostCreated(p) => Some(p.caption.as_str()),
            _ => None,
        }),
    ),
    column(
        "location_name",
        true,
        "name of the place attached to the post, when there is one",
        Value::Text(|e| match &e.event {
            Event::PostCreated(p) => p.location.as_ref().map(|l| l.name.as_str()),
            _ => None,
        }),
    ),
    column(
        "location_lat",
        true,
        "latitude of the place, degrees (-90 to 90)",
        Value::Float(|e| match &e.event {
            Event::PostCreated(p) => p.location.as_ref().map(|l| l.lat),
            _ => None,
        }),
    ),
    column(
        "location_lng",
        true,
        "longitude of the place, degrees (-180 to 180)",
        Value::Float(|e| match &e.event {
            Event::PostCreated(p) => p.location.as_ref().map(|l| l.lng),
            _ => None,
        }),
    ),
    column(
        "hashtags",
        true,
        "hashtags of the caption without '#', case-folded, distinct, in order of first use \
         (at most 30); null for post_deleted",
        Value::TextList(|e| match &e.event {
            Event::PostCreated(p) => Some(p.hashtags.as_slice()),
            _ => None,
        }),
    ),
    column(
        "mentions",
        true,
        "usernames mentioned in the caption without '@', case-folded, distinct (at most 20); \
         null for post_deleted",
        Value::TextList(|e| match &e.event {
            Event::PostCreated(p) => Some(p.mentions.as_slice()),
            _ => None,
        }),
    ),
    DT_COLUMN,
];

const STORY_MEDIA_TYPES: &[&str] = &["photo", "video"];
const AUDIENCES: &[&str] = &["followers", "close_friends"];

fn story_media_type(m: StoryMediaType) -> &'static str {
    match m {
        StoryMediaType::Photo => "photo",
        StoryMediaType::Video => "video",
    }
}

fn audience(a: Audience) -> &'static str {
    match a {
        Audience::Followers => "followers",
        Audience::CloseFriends => "close_friends",
    }
}

const STORIES: &[Column] = &[
    EVENT_ID_COLUMN,
    EVENT_TYPE_COLUMN,
    column(
        ACTOR,
        false,
        "the story's author (story_created) or its viewer (story_viewed)",
        Value::Int(|e| Some(id(e.actor_id))),
    ),
    TS_COLUMN,
    column(
        "story_id",
        false,
        "the story",
        Value::Int(|e| match &e.event {
            Event::StoryCreated(s) => Some(id(s.story_id)),
            Event::StoryViewed(s) => Some(id(s.story_id)),
            _ => None,
        }),
    ),
    column(
        AUTHOR,
        false,
        "the story's author, for both event types (equal to actor_id for story_created)",
        Value::Int(|e| match &e.event {
            Event::StoryCreated(_) => Some(id(e.actor_id)),
            Event::StoryViewed(s) => Some(id(s.author_id)),
            _ => None,
        }),
    ),
    enumeration(
        "media_type",
        true,
        "the kind of media; null for story_viewed",
        STORY_MEDIA_TYPES,
        |e| match &e.event {
            Event::StoryCreated(s) => Some(story_media_type(s.media_type)),
            _ => None,
        },
    ),
    column(
        "media",
        true,
        "the story's one media reference; null for story_viewed",
        Value::Text(|e| match &e.event {
            Event::StoryCreated(s) => s.media.first().map(String::as_str),
            _ => None,
        }),
    ),
    enumeration(
        "audience",
        true,
        "who may see the story; null for story_viewed",
        AUDIENCES,
        |e| match &e.event {
            Event::StoryCreated(s) => Some(audience(s.audience)),
            _ => None,
        },
    ),
    DT_COLUMN,
];

/// The author of the post an engagement event touches.
fn post_author(e: &Envelope) -> Option<i64> {
    match &e.event {
        Event::Like(r) | Event::Unlike(r) | Event::Save(r) | Event::Unsave(r) => Some(r.author_id),
        Event::CommentCreated(c) => Some(c.author_id),
        Event::CommentDeleted(c) => Some(c.author_id),
        Event::Share(s) => Some(s.author_id),
        Event::View(v) => Some(v.author_id),
        Event::Hide(h) => Some(h.author_id),
        Event::Report(r) => Some(r.author_id),
        _ => None,
    }
    .map(id)
}

const ENGAGER: Column = column(
    ACTOR,
    false,
    "the user who engaged with the post",
    Value::Int(|e| Some(id(e.actor_id))),
);
const POST_ID: Column = column(
    "post_id",
    false,
    "the post",
    Value::Int(|e| e.event.post_id().map(id)),
);
const POST_AUTHOR: Column = column(
    AUTHOR,
    false,
    "the post's author: the creator whose content it is",
    Value::Int(post_author),
);

const LIKES: &[Column] = &[
    EVENT_ID_COLUMN,
    EVENT_TYPE_COLUMN,
    ENGAGER,
    TS_COLUMN,
    POST_ID,
    POST_AUTHOR,
    DT_COLUMN,
];

const SAVES: &[Column] = LIKES;

const COMMENTS: &[Column] = &[
    EVENT_ID_COLUMN,
    EVENT_TYPE_COLUMN,
    column(
        ACTOR,
        false,
        "the commenter (for comment_deleted, who deleted it)",
        Value::Int(|e| Some(id(e.actor_id))),
    ),
    TS_COLUMN,
    column(
        "comment_id",
        false,
        "the comment",
        Value::Int(|e| match &e.event {
            Event::CommentCreated(c) => Some(id(c.comment_id)),
            Event::CommentDeleted(c) => Some(id(c.comment_id)),
            _ => None,
        }),
    ),
    POST_ID,
    POST_AUTHOR,
    column(
        "text",
        true,
        "the comment's text (1-2,200 characters); null for comment_deleted",
        Value::Text(|e| match &e.event {
            Event::CommentCreated(c) => Some(c.text.as_str()),
            _ => None,
        }),
    ),
    column(
        "hashtags",
        true,
        "hashtags of the text without '#', case-folded, distinct; null for comment_deleted",
        Value::TextList(|e| match &e.event {
            Event::CommentCreated(c) => Some(c.hashtags.as_slice()),
            _ => None,
        }),
    ),
    column(
        "mentions",
        true,
        "usernames mentioned in the text without '@', case-folded, distinct; null for \
         comment_deleted",
        Value::TextList(|e| match &e.event {
            Event::CommentCreated(c) => Some(c.mentions.as_slice()),
            _ => None,
        }),
    ),
    DT_COLUMN,
];

const SHARES: &[Column] = &[
    EVENT_ID_COLUMN,
    EVENT_TYPE_COLUMN,
    column(
        ACTOR,
        false,
        "the user who shared the post",
        Value::Int(|e| Some(id(e.actor_id))),
    ),
    TS_COLUMN,
    POST_ID,
    POST_AUTHOR,
    column(
        "to_id",
        true,
        "the recipient of a direct share; null for a share to the sharer's followers",
        Value::Int(|e| match &e.event {
            Event::Share(s) => s.to_id.map(id),
            _ => None,
        }),
    ),
    DT_COLUMN,
];

const SURFACES: &[&str] = &["feed", "explore", "reels", "profile", "hashtag"];
const REASONS: &[&str] = &["spam", "abuse", "nudity", "violence", "other"];

fn surface(s: Surface) -> &'static str {
    s.as_str()
}

fn report_reason(r: ReportReason) -> &'static str {
    match r {
        ReportReason::Spam => "spam",
        ReportReason::Abuse => "abuse",
        ReportReason::Nudity => "nudity",
        ReportReason::Violence => "violence",
        ReportReason::Other => "other",
    }
}

const VIEWS: &[Column] = &[
    EVENT_ID_COLUMN,
    EVENT_TYPE_COLUMN,
    column(
        ACTOR,
        false,
        "the viewer",
        Value::Int(|e| Some(id(e.actor_id))),
    ),
    TS_COLUMN,
    column(
        "post_id",
        true,
        "the post seen; null for profile_view",
        Value::Int(|e| e.event.post_id().map(id)),
    ),
    column(
        AUTHOR,
        false,
        "the creator whose post was seen, or whose profile was visited (profile_view)",
        Value::Int(|e| match &e.event {
            Event::ProfileView(t) => Some(id(t.target_id)),
            _ => post_author(e),
        }),
    ),
    enumeration(
        "surface",
        true,
        "where the post was seen; null for profile_view",
        SURFACES,
        |e| match &e.event {
            Event::View(v) => Some(surface(v.surface)),
            _ => None,
        },
    ),
    column(
        "dwell_ms",
        true,
        "how long the post was on screen, ms (0 to one day); null for profile_view",
        // At most one day (validated): far inside an i64.
        Value::Int(|e| match &e.event {
            Event::View(v) => Some(v.dwell_ms.min(MAX_ID) as i64),
            _ => None,
        }),
    ),
    column(
        "watch_ms",
        true,
        "how long a video or reel played, ms; null for photos, carousels and profile_view",
        Value::Int(|e| match &e.event {
            Event::View(v) => v.watch_ms.map(|w| w.min(MAX_ID) as i64),
            _ => None,
        }),
    ),
    DT_COLUMN,
];

const NEGATIVE_FEEDBACK: &[Column] = &[
    EVENT_ID_COLUMN,
    EVENT_TYPE_COLUMN,
    column(
        ACTOR,
        false,
        "the user who hid or reported the post",
        Value::Int(|e| Some(id(e.actor_id))),
    ),
    TS_COLUMN,
    POST_ID,
    POST_AUTHOR,
    enumeration(
        "surface",
        true,
        "where the post was hidden; null for report",
        SURFACES,
        |e| match &e.event {
            Event::Hide(h) => Some(surface(h.surface)),
            _ => None,
        },
    ),
    enumeration(
        "reason",
        true,
        "why the post was reported; null for hide",
        REASONS,
        |e| match &e.event {
            Event::Report(r) => Some(report_reason(r.reason)),
            _ => None,
        },
    ),
    DT_COLUMN,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::MediaType;

    fn wire_name<T: serde::Serialize>(v: T) -> String {
        serde_json::to_value(v)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn every_event_type_lands_in_exactly_one_table_and_every_table_is_used() {
        let mut seen = 0;
        for table in Table::ALL {
            let kinds = table.kinds();
            assert!(!kinds.is_empty(), "{table} holds no event type");
            seen += kinds.len();
            assert_eq!(Table::parse(table.name()), Some(table));
        }
        assert_eq!(seen, EventKind::ALL.len());
    }

    #[test]
    fn every_table_has_the_envelope_first_and_dt_last_and_a_sort_key_of_its_columns() {
        for table in Table::ALL {
            let names: Vec<&str> = table.columns().iter().map(|c| c.name).collect();
            assert_eq!(&names[..4], [EVENT_ID, EVENT_TYPE, ACTOR, TS], "{table}");
            assert_eq!(names.last(), Some(&DT), "{table}");
            let mut distinct = names.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), names.len(), "{table} repeats a column");
            for key in table.sort_key() {
                assert!(
                    table.column(key).is_some(),
                    "{table} sorts by unknown {key}"
                );
            }
            assert_eq!(table.schema().fields().len(), names.len());
            for c in table.columns() {
                assert!(!c.doc.is_empty(), "{table}.{} has no doc", c.name);
                assert_eq!(
                    c.values.is_empty(),
                    c.column_type() != ColumnType::Enum || c.name == EVENT_TYPE,
                    "{table}.{}: values are listed exactly for enumerations",
                    c.name
                );
            }
        }
    }

    #[test]
    fn enumeration_values_are_the_wire_names() {
        let media: Vec<String> = MediaType::ALL.into_iter().map(wire_name).collect();
        assert_eq!(media, MEDIA_TYPES);
        let surfaces: Vec<String> = Surface::ALL.into_iter().map(wire_name).collect();
        assert_eq!(surfaces, SURFACES);
        for s in Surface::ALL {
            assert_eq!(surface(s), wire_name(s));
        }
        for m in [StoryMediaType::Photo, StoryMediaType::Video] {
            assert_eq!(story_media_type(m), wire_name(m));
            assert!(STORY_MEDIA_TYPES.contains(&story_media_type(m)));
        }
        for a in [Audience::Followers, Audience::CloseFriends] {
            assert_eq!(audience(a), wire_name(a));
            assert!(AUDIENCES.contains(&audience(a)));
        }
        let reasons = [
            ReportReason::Spam,
            ReportReason::Abuse,
            ReportReason::Nudity,
            ReportReason::Violence,
            ReportReason::Other,
        ];
        assert_eq!(reasons.len(), REASONS.len());
        for r in reasons {
            assert_eq!(report_reason(r), wire_name(r));
            assert!(REASONS.contains(&report_reason(r)));
        }
    }

    #[test]
    fn days_are_utc_and_bounded_by_four_digit_years() {
        assert_eq!(day_of(0), Some(0));
        // 2025-11-23T00:00:00Z, the generator's default start, and the millisecond before it.
        assert_eq!(day_of(1_763_856_000_000), Some(20_415));
        assert_eq!(day_of(1_763_856_000_000 - 1), Some(20_414));
        assert_eq!(day_of(MAX_TS), Some(2_932_896));
        assert_eq!(day_of(MAX_TS + 1), None);
        assert_eq!(day_of(-1), None);
    }
}
