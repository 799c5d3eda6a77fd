//! Profiles: `GET /v1/users/{id}` as the viewer sees it.
//!
//! A user who blocks the viewer does not exist for them (404, as for an unknown id). A private
//! profile shows its counts to everyone but its posts only to the owner and approved followers;
//! a profile the viewer blocks shows no posts either.

use std::collections::HashMap;

use redis::RedisError;
use serde::Serialize;
use utoipa::ToSchema;

use crate::posts::{Hydrated, PostView, hydrate};
use crate::store::Store;

/// How many of a profile's latest posts the profile answer carries.
pub const PROFILE_POSTS: usize = 12;

/// The viewer's relation to a profile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Relationship {
    /// The viewer actively follows the user.
    pub following: bool,
    /// The viewer asked to follow this private user and awaits approval.
    pub requested: bool,
    /// The user actively follows the viewer.
    pub followed_by: bool,
    /// The viewer blocks the user.
    pub blocking: bool,
}

/// A user's profile.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Profile {
    pub user_id: u64,
    pub username: String,
    pub display_name: Option<String>,
    pub private: bool,
    pub verified: bool,
    pub follower_count: u64,
    pub following_count: u64,
    /// Whether the viewer may see the user's posts.
    pub posts_visible: bool,
    /// The latest posts (at most 12), newest first; empty when `posts_visible` is false.
    pub recent_posts: Vec<PostView>,
    /// Absent on the viewer's own profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relationship: Option<Relationship>,
}

/// The profile of `user` for `viewer`, or `None` when it does not exist for them.
pub async fn profile(store: &Store, viewer: u64, user: u64) -> Result<Option<Profile>, RedisError> {
    let keys = store.keys();
    let mut pipe = redis::pipe();
    pipe.cmd("HGETALL").arg(keys.profile(user));
    pipe.cmd("SISMEMBER").arg(keys.blocks(user)).arg(viewer);
    pipe.cmd("SISMEMBER").arg(keys.blocks(viewer)).arg(user);
    pipe.cmd("ZSCORE").arg(keys.following(viewer)).arg(user);
    pipe.cmd("ZSCORE")
        .arg(keys.follow_requests(user))
        .arg(viewer);
    pipe.cmd("ZSCORE").arg(keys.following(user)).arg(viewer);
    pipe.cmd("ZREVRANGE")
        .arg(keys.recent_posts(user))
        .arg(0)
        .arg(PROFILE_POSTS as i64 - 1);
    let mut replies = store.run(&pipe).await?;
    let fields: HashMap<String, String> = replies.take()?;
    let blocked_by_user: bool = replies.take()?;
    let relationship = Relationship {
        blocking: replies.take()?,
        following: replies.take::<Option<String>>()?.is_some(),
        requested: replies.take::<Option<String>>()?.is_some(),
        followed_by: replies.take::<Option<String>>()?.is_some(),
    };
    let recent: Vec<u64> = replies.take()?;

    let Some(username) = fields.get("username").filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    if blocked_by_user && viewer != user {
        return Ok(None);
    }
    let flag = |name: &str| fields.get(name).is_some_and(|v| v == "1");
    let count = |name: &str| {
        fields
            .get(name)
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(0, |v| v.max(0) as u64)
    };
    let own = viewer == user;
    let private = flag("private");
    let posts_visible = own || (!relationship.blocking && (!private || relationship.following));

    let mut recent_posts = Vec::new();
    if posts_visible && !recent.is_empty() {
        let pairs: Vec<(u64, u64)> = recent.iter().map(|&p| (p, user)).collect();
        let mut hydrated = hydrate(store, &pairs).await?;
        for post in recent {
            if let Some(Hydrated::Visible(view)) = hydrated.remove(&post) {
                recent_posts.push(view);
            }
        }
    }
    Ok(Some(Profile {
        user_id: user,
        username: username.clone(),
        display_name: fields
            .get("display_name")
            .filter(|d| !d.is_empty())
            .cloned(),
        private,
        verified: flag("verified"),
        follower_count: count("followers"),
        following_count: count("following"),
        posts_visible,
        recent_posts,
        relationship: (!own).then_some(relationship),
    }))
}
