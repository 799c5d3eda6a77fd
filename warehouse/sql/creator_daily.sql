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
WITH seen AS (
    SELECT author_id, dt,
           COUNT(*) AS views,
           COUNT(DISTINCT actor_id) AS reach,
           SUM(COALESCE(watch_ms, 0)) AS watch_ms
    FROM views
    WHERE event_type = 'view' AND actor_id <> author_id
    GROUP BY author_id, dt
), visits AS (
    SELECT author_id, dt, COUNT(*) AS profile_visits
    FROM views
    WHERE event_type = 'profile_view' AND actor_id <> author_id
    GROUP BY author_id, dt
), engaged AS (
    SELECT author_id, dt, actor_id, 'like' AS kind FROM likes WHERE event_type = 'like'
    UNION ALL
    SELECT author_id, dt, actor_id, 'comment' AS kind FROM comments WHERE event_type = 'comment_created'
    UNION ALL
    SELECT author_id, dt, actor_id, 'share' AS kind FROM shares
    UNION ALL
    SELECT author_id, dt, actor_id, 'save' AS kind FROM saves WHERE event_type = 'save'
), interactions AS (
    SELECT author_id, dt,
           SUM(CASE WHEN kind = 'like' THEN 1 ELSE 0 END) AS likes,
           SUM(CASE WHEN kind = 'comment' THEN 1 ELSE 0 END) AS comments,
           SUM(CASE WHEN kind = 'share' THEN 1 ELSE 0 END) AS shares,
           SUM(CASE WHEN kind = 'save' THEN 1 ELSE 0 END) AS saves,
           COUNT(*) AS interactions,
           COUNT(DISTINCT actor_id) AS accounts_engaged
    FROM engaged
    WHERE actor_id <> author_id
    GROUP BY author_id, dt
), graph AS (
    SELECT target_id AS author_id, dt,
           SUM(CASE WHEN event_type = 'follow' THEN 1 ELSE 0 END) AS follows,
           SUM(CASE WHEN event_type = 'unfollow' THEN 1 ELSE 0 END) AS unfollows
    FROM follows
    WHERE event_type IN ('follow', 'unfollow')
    GROUP BY target_id, dt
), creator_days AS (
    SELECT author_id, dt FROM seen
    UNION SELECT author_id, dt FROM visits
    UNION SELECT author_id, dt FROM interactions
    UNION SELECT author_id, dt FROM graph
)
SELECT d.author_id,
       d.dt,
       COALESCE(s.views, 0) AS views,
       COALESCE(s.reach, 0) AS reach,
       COALESCE(s.watch_ms, 0) AS watch_ms,
       COALESCE(v.profile_visits, 0) AS profile_visits,
       COALESCE(i.likes, 0) AS likes,
       COALESCE(i.comments, 0) AS comments,
       COALESCE(i.shares, 0) AS shares,
       COALESCE(i.saves, 0) AS saves,
       COALESCE(i.interactions, 0) AS interactions,
       COALESCE(i.accounts_engaged, 0) AS accounts_engaged,
       COALESCE(g.follows, 0) AS follows,
       COALESCE(g.unfollows, 0) AS unfollows
FROM creator_days d
LEFT JOIN seen s ON s.author_id = d.author_id AND s.dt = d.dt
LEFT JOIN visits v ON v.author_id = d.author_id AND v.dt = d.dt
LEFT JOIN interactions i ON i.author_id = d.author_id AND i.dt = d.dt
LEFT JOIN graph g ON g.author_id = d.author_id AND g.dt = d.dt
