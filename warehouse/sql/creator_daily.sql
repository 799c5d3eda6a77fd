-- What the creators' dashboard shows for one day: one row per creator (author_id) and UTC day
-- (dt) with any activity on their content or profile. Actions of creators on their own posts
-- and profile are left out (nobody reaches themselves). Counts are of events, as they
-- happened that day: a like later undone still counted as an interaction that day.
--
-- Columns:
--   author_id          the creator
--   dt                 the UTC day
--   views              views of the creator's posts by other accounts
--   reach              distinct accounts that viewed at least one of the creator's posts
--   watch_ms           total watch time of the creator's videos and reels, ms
--   profile_visits     visits to the creator's profile by other accounts
--   likes              likes of the creator's posts
--   comments           comments written on the creator's posts
--   shares             shares of the creator's posts
--   saves              saves of the creator's posts
--   interactions       likes + comments + shares + saves
--   accounts_engaged   distinct accounts that liked, commented, shared or saved any of the
--                      creator's posts
--   follows            follow events received (requests to a private account included)
--   unfollows          unfollow events received
CREATE VIEW creator_daily AS
WITH activity AS (
    -- Every event counted, one row each, tagged with its kind: a single aggregate over them
    -- gives every column at once (a creator-day is listed when it has any such event).
    SELECT author_id, dt, actor_id, event_type AS kind, watch_ms
    FROM views
    WHERE event_type IN ('view', 'profile_view') AND actor_id <> author_id
    UNION ALL
    SELECT author_id, dt, actor_id, 'like' AS kind, NULL AS watch_ms
    FROM likes
    WHERE event_type = 'like' AND actor_id <> author_id
    UNION ALL
    SELECT author_id, dt, actor_id, 'comment' AS kind, NULL AS watch_ms
    FROM comments
    WHERE event_type = 'comment_created' AND actor_id <> author_id
    UNION ALL
    SELECT author_id, dt, actor_id, 'share' AS kind, NULL AS watch_ms
    FROM shares
    WHERE actor_id <> author_id
    UNION ALL
    SELECT author_id, dt, actor_id, 'save' AS kind, NULL AS watch_ms
    FROM saves
    WHERE event_type = 'save' AND actor_id <> author_id
    UNION ALL
    SELECT target_id AS author_id, dt, actor_id, event_type AS kind, NULL AS watch_ms
    FROM follows
    WHERE event_type IN ('follow', 'unfollow')
)
SELECT author_id,
       dt,
       SUM(CASE WHEN kind = 'view' THEN 1 ELSE 0 END) AS views,
       COUNT(DISTINCT CASE WHEN kind = 'view' THEN actor_id END) AS reach,
       SUM(CASE WHEN kind = 'view' THEN COALESCE(watch_ms, 0) ELSE 0 END) AS watch_ms,
       SUM(CASE WHEN kind = 'profile_view' THEN 1 ELSE 0 END) AS profile_visits,
       SUM(CASE WHEN kind = 'like' THEN 1 ELSE 0 END) AS likes,
       SUM(CASE WHEN kind = 'comment' THEN 1 ELSE 0 END) AS comments,
       SUM(CASE WHEN kind = 'share' THEN 1 ELSE 0 END) AS shares,
       SUM(CASE WHEN kind = 'save' THEN 1 ELSE 0 END) AS saves,
       SUM(CASE WHEN kind IN ('like', 'comment', 'share', 'save') THEN 1 ELSE 0 END) AS interactions,
       COUNT(DISTINCT CASE WHEN kind IN ('like', 'comment', 'share', 'save') THEN actor_id END)
           AS accounts_engaged,
       SUM(CASE WHEN kind = 'follow' THEN 1 ELSE 0 END) AS follows,
       SUM(CASE WHEN kind = 'unfollow' THEN 1 ELSE 0 END) AS unfollows
FROM activity
GROUP BY author_id, dt
