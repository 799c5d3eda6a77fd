-- Each creator's top posts of a day: the ten posts with the most interactions that day (ties
-- broken by views, then by the older post id), with their numbers. Like creator_daily, the
-- creator's own actions are left out, and counts are of that day's events.
--
-- Columns:
--   author_id      the creator
--   dt             the UTC day
--   rank           1 for the day's top post, up to 10
--   post_id        the post
--   views          views of the post by other accounts
--   reach          distinct accounts that viewed the post
--   watch_ms       total watch time of the post, ms (videos and reels)
--   likes          likes of the post
--   comments       comments written on the post
--   shares         shares of the post
--   saves          saves of the post
--   interactions   likes + comments + shares + saves
CREATE VIEW creator_top_posts AS
WITH activity AS (
    -- Every event counted, one row each, tagged with its kind: a single aggregate over them
    -- gives every column at once (a post-day is listed when it has any such event).
    SELECT author_id, post_id, dt, actor_id, 'view' AS kind, watch_ms
    FROM views
    WHERE event_type = 'view' AND actor_id <> author_id
    UNION ALL
    SELECT author_id, post_id, dt, actor_id, 'like' AS kind, NULL AS watch_ms
    FROM likes
    WHERE event_type = 'like' AND actor_id <> author_id
    UNION ALL
    SELECT author_id, post_id, dt, actor_id, 'comment' AS kind, NULL AS watch_ms
    FROM comments
    WHERE event_type = 'comment_created' AND actor_id <> author_id
    UNION ALL
    SELECT author_id, post_id, dt, actor_id, 'share' AS kind, NULL AS watch_ms
    FROM shares
    WHERE actor_id <> author_id
    UNION ALL
    SELECT author_id, post_id, dt, actor_id, 'save' AS kind, NULL AS watch_ms
    FROM saves
    WHERE event_type = 'save' AND actor_id <> author_id
), post_days AS (
    SELECT author_id, post_id, dt,
           SUM(CASE WHEN kind = 'view' THEN 1 ELSE 0 END) AS views,
           COUNT(DISTINCT CASE WHEN kind = 'view' THEN actor_id END) AS reach,
           SUM(CASE WHEN kind = 'view' THEN COALESCE(watch_ms, 0) ELSE 0 END) AS watch_ms,
           SUM(CASE WHEN kind = 'like' THEN 1 ELSE 0 END) AS likes,
           SUM(CASE WHEN kind = 'comment' THEN 1 ELSE 0 END) AS comments,
           SUM(CASE WHEN kind = 'share' THEN 1 ELSE 0 END) AS shares,
           SUM(CASE WHEN kind = 'save' THEN 1 ELSE 0 END) AS saves,
           SUM(CASE WHEN kind <> 'view' THEN 1 ELSE 0 END) AS interactions
    FROM activity
    GROUP BY author_id, post_id, dt
), ranked AS (
    SELECT author_id,
           dt,
           CAST(ROW_NUMBER() OVER (
               PARTITION BY author_id, dt
               ORDER BY interactions DESC, views DESC, post_id
           ) AS BIGINT) AS rank,
           post_id,
           views,
           reach,
           watch_ms,
           likes,
           comments,
           shares,
           saves,
           interactions
    FROM post_days
)
SELECT * FROM ranked WHERE rank <= 10
