-- The interactions standing on a creator's posts, by kind, per creator (author_id) and UTC day
-- (dt) of the act: what the creators' dashboard counts as interactions. Unlike
-- creator_daily, which counts events as they happened, an act later taken back is not here: a
-- like or save counts when it starts a run of the pair's likes (its previous like-or-unlike of
-- the post, if any, is an unlike) and no unlike follows it, on the day it was made, as the
-- engagement job's counters do; a repeated like counts once. A comment counts unless its
-- commenter or the post's author deleted it; a share counts once per event. Acts of creators on
-- their own posts are left out. Order is by event time, then event id.
--
-- Columns:
--   author_id      the creator
--   dt             the UTC day of the act
--   likes          likes standing
--   comments       comments standing
--   shares         shares
--   saves          saves standing
--   interactions   likes + comments + shares + saves
CREATE VIEW creator_interactions AS
WITH toggles AS (
    SELECT 'like' AS kind, post_id, author_id, actor_id, event_id, ts, dt,
           event_type = 'like' AS act
    FROM likes
    UNION ALL
    SELECT 'save' AS kind, post_id, author_id, actor_id, event_id, ts, dt,
           event_type = 'save' AS act
    FROM saves
),
ordered AS (
    SELECT kind, author_id, actor_id, dt, act,
           LAG(act) OVER (
               PARTITION BY kind, post_id, actor_id ORDER BY ts, event_id
           ) AS before,
           MAX(CASE WHEN act THEN 0 ELSE 1 END) OVER (
               PARTITION BY kind, post_id, actor_id ORDER BY ts, event_id
               ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
           ) AS undone_after
    FROM toggles
),
-- Each comment with its commenter on every row of it, so that its deletes can be judged
-- without a join: only the commenter's or the post author's delete counts.
comment_rows AS (
    SELECT post_id, comment_id, author_id, event_type, actor_id, dt,
           MIN(CASE WHEN event_type = 'comment_created' THEN actor_id END) OVER (
               PARTITION BY post_id, comment_id
           ) AS commenter
    FROM comments
),
comment_state AS (
    SELECT post_id, comment_id, author_id, commenter,
           MIN(CASE WHEN event_type = 'comment_created' THEN dt END) AS dt,
           MAX(CASE WHEN event_type = 'comment_deleted'
                     AND (actor_id = commenter OR actor_id = author_id) THEN 1 ELSE 0 END)
               AS deleted
    FROM comment_rows
    GROUP BY post_id, comment_id, author_id, commenter
),
standing AS (
    SELECT author_id, dt,
           CASE WHEN kind = 'like' THEN 1 ELSE 0 END AS likes,
           0 AS comments,
           0 AS shares,
           CASE WHEN kind = 'save' THEN 1 ELSE 0 END AS saves
    FROM ordered
    WHERE act AND (before IS NULL OR NOT before) AND COALESCE(undone_after, 0) = 0
      AND actor_id <> author_id
    UNION ALL
    SELECT author_id, dt, 0, 1, 0, 0
    FROM comment_state
    WHERE dt IS NOT NULL AND deleted = 0 AND commenter <> author_id
    UNION ALL
    SELECT author_id, dt, 0, 0, 1, 0
    FROM (SELECT DISTINCT event_id, author_id, dt FROM shares WHERE actor_id <> author_id) s
)
SELECT author_id,
       dt,
       CAST(SUM(likes) AS BIGINT) AS likes,
       CAST(SUM(comments) AS BIGINT) AS comments,
       CAST(SUM(shares) AS BIGINT) AS shares,
       CAST(SUM(saves) AS BIGINT) AS saves,
       CAST(SUM(likes + comments + shares + saves) AS BIGINT) AS interactions
FROM standing
GROUP BY author_id, dt
