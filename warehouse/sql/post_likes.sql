-- The likes standing on each post at the end of the warehouse: the accounts whose latest like
-- or unlike of the post is a like. A repeated like counts once and an unlike takes its like
-- back, as the engagement job's `likes` counter does; "latest" is by event time, then event
-- id. Posts whose every like was taken back are left out.
--
-- Columns:
--   post_id        the post
--   author_id      the post's author
--   likes          accounts whose like of the post stands
--   first_like_ts  when the earliest standing like was made
--   last_like_ts   when the latest standing like was made
CREATE VIEW post_likes AS
WITH latest AS (
    SELECT post_id, author_id, actor_id, event_type, ts,
           ROW_NUMBER() OVER (
               PARTITION BY post_id, actor_id ORDER BY ts DESC, event_id DESC
           ) AS nth
    FROM likes
)
SELECT post_id,
       author_id,
       COUNT(*) AS likes,
       MIN(ts) AS first_like_ts,
       MAX(ts) AS last_like_ts
FROM latest
WHERE nth = 1 AND event_type = 'like'
GROUP BY post_id, author_id
