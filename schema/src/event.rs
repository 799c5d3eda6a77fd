//! The event envelope and one variant per event type of `EVENTS.md`.
//!
//! [`Envelope`] carries the fields every event has (`v`, `event_id`, `actor_id`, `ts`); [`Event`]
//! carries the type-specific fields. On the wire they are one flat JSON object whose `type` names
//! the variant; [`Envelope`]'s `Serialize` writes exactly that, and [`crate::decode`] reads it back
//! with errors that name the offending field.

use serde::{Deserialize, Serialize};

/// One event as it travels on the events topic: envelope plus type-specific body.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Wire version; always [`crate::WIRE_VERSION`] for events this build produces.
    pub v: u8,
    /// Unique id, the idempotency key: a second event with the same id changes nothing.
    pub event_id: String,
    /// The user who acted; also the Kafka key, so one user's actions stay in order.
    pub actor_id: u64,
    /// Event time in milliseconds since the Unix epoch.
    pub ts: i64,
    /// The type-specific part.
    pub event: Event,
}

impl Envelope {
    /// The event's type, as named on the wire.
    pub fn kind(&self) -> EventKind {
        self.event.kind()
    }

    /// Serialises the event to its wire form (one JSON object, no trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs of strings, integers and vectors into a Vec cannot fail.
        serde_json::to_vec(self).expect("an envelope always serialises to JSON")
    }

    /// Serialises the event as an app sends it: the topic form without the fields ingest
    /// derives (`hashtags` and `mentions` of posts and comments).
    pub fn to_app_json(&self) -> Vec<u8> {
        if !matches!(self.event, Event::PostCreated(_) | Event::CommentCreated(_)) {
            return self.to_json();
        }
        let mut value = serde_json::to_value(self).expect("an envelope always serialises to JSON");
        if let Some(fields) = value.as_object_mut() {
            fields.remove("hashtags");
            fields.remove("mentions");
        }
        serde_json::to_vec(&value).expect("a JSON value always serialises")
    }
}

impl Serialize for Envelope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            v: u8,
            event_id: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
            actor_id: u64,
            ts: i64,
            #[serde(flatten)]
            event: &'a Event,
        }
        Wire {
            v: self.v,
            event_id: &self.event_id,
            kind: self.kind().as_str(),
            actor_id: self.actor_id,
            ts: self.ts,
            event: &self.event,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Envelope {
    /// Reads the topic form leniently about derived fields (see [`crate::Origin::Topic`]) but
    /// strictly about everything else; use [`crate::decode`] to get a structured error.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        crate::decode::decode_value(value, crate::decode::Origin::Topic)
            .map_err(serde::de::Error::custom)
    }
}

/// The type-specific body of an event. Serialised untagged: the envelope writes `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Event {
    UserCreated(UserCreated),
    UserUpdated(UserUpdated),
    Follow(Target),
    Unfollow(Target),
    FollowRequestApproved(FollowRequestApproved),
    Block(Target),
    Unblock(Target),
    CloseFriendAdded(Target),
    CloseFriendRemoved(Target),
    PostCreated(PostCreated),
    PostDeleted(PostDeleted),
    StoryCreated(StoryCreated),
    StoryViewed(StoryViewed),
    Like(PostRef),
    Unlike(PostRef),
    CommentCreated(CommentCreated),
    CommentDeleted(CommentDeleted),
    Share(Share),
    Save(PostRef),
    Unsave(PostRef),
    View(View),
    ProfileView(Target),
    Hide(Hide),
    Report(Report),
}

macro_rules! event_kinds {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// The `type` of an event: a fieldless mirror of [`Event`]'s variants.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum EventKind { $($variant),* }

        impl EventKind {
            /// Every event type, in the order of `EVENTS.md`.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),*];

            /// The wire name of the type.
            pub fn as_str(self) -> &'static str {
                match self { $(EventKind::$variant => $name),* }
            }

            /// Parses a wire name; `None` for a type this version does not know.
            pub fn parse(name: &str) -> Option<EventKind> {
                match name { $($name => Some(EventKind::$variant),)* _ => None }
            }
        }

        impl Event {
            /// The type of this event.
            pub fn kind(&self) -> EventKind {
                match self { $(Event::$variant(_) => EventKind::$variant),* }
            }
        }
    };
}

event_kinds! {
    UserCreated => "user_created",
    UserUpdated => "user_updated",
    Follow => "follow",
    Unfollow => "unfollow",
    FollowRequestApproved => "follow_request_approved",
    Block => "block",
    Unblock => "unblock",
    CloseFriendAdded => "close_friend_added",
    CloseFriendRemoved => "close_friend_removed",
    PostCreated => "post_created",
    PostDeleted => "post_deleted",
    StoryCreated => "story_created",
    StoryViewed => "story_viewed",
    Like => "like",
    Unlike => "unlike",
    CommentCreated => "comment_created",
    CommentDeleted => "comment_deleted",
    Share => "share",
    Save => "save",
    Unsave => "unsave",
    View => "view",
    ProfileView => "profile_view",
    Hide => "hide",
    Report => "report",
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `user_created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCreated {
    /// 3–30 characters of `[a-z0-9._]`, unique.
    pub username: String,
    /// At most 64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub private: bool,
    pub verified: bool,
}

/// `user_updated`: at least one field present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

/// The body of every event about another user: follow, unfollow, block, unblock, close friends
/// and profile views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub target_id: u64,
}

/// `follow_request_approved`: the actor is the private account approving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowRequestApproved {
    pub requester_id: u64,
}

/// The kind of media a post carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaType {
    Photo,
    Video,
    Reel,
    Carousel,
}

impl MediaType {
    pub const ALL: [MediaType; 4] = [
        MediaType::Photo,
        MediaType::Video,
        MediaType::Reel,
        MediaType::Carousel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::Photo => "photo",
            MediaType::Video => "video",
            MediaType::Reel => "reel",
            MediaType::Carousel => "carousel",
        }
    }

    /// Whether views of this media carry `watch_ms`.
    pub fn is_video(self) -> bool {
        matches!(self, MediaType::Video | MediaType::Reel)
    }
}

/// A place attached to a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// At most 128 characters.
    pub name: String,
    /// Degrees, −90 to 90.
    pub lat: f64,
    /// Degrees, −180 to 180.
    pub lng: f64,
}

/// `post_created`. `hashtags` and `mentions` are derived from `caption` on ingest; apps do not
/// send them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostCreated {
    pub post_id: u64,
    pub media_type: MediaType,
    /// 1–10 media references of at most 256 characters; a carousel has at least 2, other media
    /// types exactly 1.
    pub media: Vec<String>,
    /// At most 2,200 characters; may be empty.
    pub caption: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default)]
    pub hashtags: Vec<String>,
    #[serde(default)]
    pub mentions: Vec<String>,
}

/// `post_deleted`: the actor must be the post's author.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostDeleted {
    pub post_id: u64,
}

/// The kind of media a story carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoryMediaType {
    Photo,
    Video,
}

/// Who may see a story.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    Followers,
    CloseFriends,
}

/// `story_created`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoryCreated {
    pub story_id: u64,
    pub media_type: StoryMediaType,
    /// Exactly one media reference of at most 256 characters.
    pub media: Vec<String>,
    pub audience: Audience,
}

/// `story_viewed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoryViewed {
    pub story_id: u64,
    pub author_id: u64,
}

/// The body of like, unlike, save and unsave: a post and its author.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostRef {
    pub post_id: u64,
    pub author_id: u64,
}

/// `comment_created`. `hashtags` and `mentions` are derived from `text` on ingest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentCreated {
    pub comment_id: u64,
    pub post_id: u64,
    pub author_id: u64,
    /// 1–2,200 characters.
    pub text: String,
    #[serde(default)]
    pub hashtags: Vec<String>,
    #[serde(default)]
    pub mentions: Vec<String>,
}

/// `comment_deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentDeleted {
    pub comment_id: u64,
    pub post_id: u64,
    pub author_id: u64,
}

/// `share`; `to_id` names the recipient of a direct share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub post_id: u64,
    pub author_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_id: Option<u64>,
}

/// Where in the app a post was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Surface {
    Feed,
    Explore,
    Reels,
    Profile,
    Hashtag,
}

impl Surface {
    pub const ALL: [Surface; 5] = [
        Surface::Feed,
        Surface::Explore,
        Surface::Reels,
        Surface::Profile,
        Surface::Hashtag,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Feed => "feed",
            Surface::Explore => "explore",
            Surface::Reels => "reels",
            Surface::Profile => "profile",
            Surface::Hashtag => "hashtag",
        }
    }
}

/// `view`: dwell time always; watch time for video and reels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    pub post_id: u64,
    pub author_id: u64,
    pub surface: Surface,
    pub dwell_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_ms: Option<u64>,
}

/// `hide`: negative feedback from a surface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hide {
    pub post_id: u64,
    pub author_id: u64,
    pub surface: Surface,
}

/// Why a post was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportReason {
    Spam,
    Abuse,
    Nudity,
    Violence,
    Other,
}

/// `report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub post_id: u64,
    pub author_id: u64,
    pub reason: ReportReason,
}

impl Event {
    /// The post an event concerns, for every event that concerns one.
    pub fn post_id(&self) -> Option<u64> {
        match self {
            Event::PostCreated(e) => Some(e.post_id),
            Event::PostDeleted(e) => Some(e.post_id),
            Event::Like(e) | Event::Unlike(e) | Event::Save(e) | Event::Unsave(e) => {
                Some(e.post_id)
            }
            Event::CommentCreated(e) => Some(e.post_id),
            Event::CommentDeleted(e) => Some(e.post_id),
            Event::Share(e) => Some(e.post_id),
            Event::View(e) => Some(e.post_id),
            Event::Hide(e) => Some(e.post_id),
            Event::Report(e) => Some(e.post_id),
            _ => None,
        }
    }
}
