-- How much each hashtag was used on a day, in posts published and comments written that day
-- (UTC). Tags are as extracted on ingest: case-folded, without '#', once per post or comment.
--
-- Columns:
--   hashtag    the tag, without '#'
--   dt         the UTC day
--   posts      posts published with the tag in their caption
--   comments   comments written with the tag in their text
--   accounts   distinct accounts that used the tag in a post or a comment
CREATE VIEW hashtag_daily AS
WITH tagged AS (
    SELECT dt, actor_id, unnest(hashtags) AS hashtag, 'post' AS source
    FROM posts
    WHERE event_type = 'post_created'
    UNION ALL
    SELECT dt, actor_id, unnest(hashtags) AS hashtag, 'comment' AS source
    FROM comments
    WHERE event_type = 'comment_created'
)
SELECT hashtag,
       dt,
       SUM(CASE WHEN source = 'post' THEN 1 ELSE 0 END) AS posts,
       SUM(CASE WHEN source = 'comment' THEN 1 ELSE 0 END) AS comments,
       COUNT(DISTINCT actor_id) AS accounts
FROM tagged
GROUP BY hashtag, dt
