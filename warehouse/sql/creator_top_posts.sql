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
WITH seen AS (
    SELECT author_id, post_id, dt,
           COUNT(*) AS views,
           COUNT(DISTINCT actor_id) AS reach,
           SUM(COALESCE(watch_ms, 0)) AS watch_ms
    FROM views
    WHERE event_type = 'view' AND actor_id <> author_id
    GROUP BY author_id, post_id, dt
), engaged AS (
    SELECT author_id, post_id, dt, actor_id, 'like' AS kind FROM likes WHERE event_type = 'like'
    UNION ALL
    SELECT author_id, post_id, dt, actor_id, 'comment' AS kind FROM comments WHERE event_type = 'comment_created'
    UNION ALL
    SELECT author_id, post_id, dt, actor_id, 'share' AS kind FROM shares
    UNION ALL
    SELECT author_id, post_id, dt, actor_id, 'save' AS kind FROM saves WHERE event_type = 'save'
), interactions AS (
    SELECT author_id, post_id, dt,
           SUM(CASE WHEN kind = 'like' THEN 1 ELSE 0 END) AS likes,
           SUM(CASE WHEN kind = 'comment' THEN 1 ELSE 0 END) AS comments,
           SUM(CASE WHEN kind = 'share' THEN 1 ELSE 0 END) AS shares,
           SUM(CASE WHEN kind = 'save' THEN 1 ELSE 0 END) AS saves,
           COUNT(*) AS interactions
    FROM engaged
    WHERE actor_id <> author_id
    GROUP BY author_id, post_id, dt
), post_days AS (
    SELECT author_id, post_id, dt FROM seen
    UNION SELECT author_id, post_id, dt FROM interactions
), ranked AS (
    SELECT p.author_id,
           p.dt,
           CAST(ROW_NUMBER() OVER (
               PARTITION BY p.author_id, p.dt
               ORDER BY COALESCE(i.interactions, 0) DESC, COALESCE(s.views, 0) DESC, p.post_id
           ) AS BIGINT) AS rank,
           p.post_id,
           COALESCE(s.views, 0) AS views,
           COALESCE(s.reach, 0) AS reach,
           COALESCE(s.watch_ms, 0) AS watch_ms,
           COALESCE(i.likes, 0) AS likes,
           COALESCE(i.comments, 0) AS comments,
           COALESCE(i.shares, 0) AS shares,
           COALESCE(i.saves, 0) AS saves,
           COALESCE(i.interactions, 0) AS interactions
    FROM post_days p
    LEFT JOIN seen s ON s.author_id = p.author_id AND s.post_id = p.post_id AND s.dt = p.dt
    LEFT JOIN interactions i
        ON i.author_id = p.author_id AND i.post_id = p.post_id AND i.dt = p.dt
)
SELECT * FROM ranked WHERE rank <= 10
