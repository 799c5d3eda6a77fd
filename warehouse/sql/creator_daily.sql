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
WITH parts AS (
    -- One row per creator and day from each source, each aggregated on its own, then summed
    -- below: no aggregate is planned twice, and a filter on author_id or dt reaches every scan.
    -- Views and profile visits share one pass over `views`, so its files are opened once.
    -- Counts are `COUNT(*) FILTER (WHERE …)` rather than `SUM(CASE WHEN … THEN 1 ELSE 0 END)`:
    -- the same numbers from a smaller plan, which DataFusion plans faster. A SUM that a
    -- filter leaves no rows for is NULL, hence the COALESCE on watch_ms (a day of profile
    -- visits alone watched for 0 ms).
    SELECT author_id, dt,
           COUNT(*) FILTER (WHERE event_type = 'view') AS views,
           COUNT(DISTINCT actor_id) FILTER (WHERE event_type = 'view') AS reach,
           COALESCE(SUM(watch_ms) FILTER (WHERE event_type = 'view'), 0) AS watch_ms,
           COUNT(*) FILTER (WHERE event_type = 'profile_view') AS profile_visits,
           0 AS likes, 0 AS comments, 0 AS shares, 0 AS saves,
           0 AS interactions, 0 AS accounts_engaged,
           0 AS follows, 0 AS unfollows
    FROM views
    WHERE event_type IN ('view', 'profile_view') AND actor_id <> author_id
    GROUP BY author_id, dt
    UNION ALL
    SELECT author_id, dt, 0, 0, 0, 0,
           COUNT(*) FILTER (WHERE kind = 'like'),
           COUNT(*) FILTER (WHERE kind = 'comment'),
           COUNT(*) FILTER (WHERE kind = 'share'),
           COUNT(*) FILTER (WHERE kind = 'save'),
           COUNT(*),
           COUNT(DISTINCT actor_id),
           0, 0
    FROM (
        SELECT author_id, dt, actor_id, 'like' AS kind FROM likes WHERE event_type = 'like'
        UNION ALL
        SELECT author_id, dt, actor_id, 'comment' AS kind FROM comments WHERE event_type = 'comment_created'
        UNION ALL
        SELECT author_id, dt, actor_id, 'share' AS kind FROM shares
        UNION ALL
        SELECT author_id, dt, actor_id, 'save' AS kind FROM saves WHERE event_type = 'save'
    ) engaged
    WHERE actor_id <> author_id
    GROUP BY author_id, dt
    UNION ALL
    SELECT target_id, dt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
           COUNT(*) FILTER (WHERE event_type = 'follow'),
           COUNT(*) FILTER (WHERE event_type = 'unfollow')
    FROM follows
    WHERE event_type IN ('follow', 'unfollow')
    GROUP BY target_id, dt
)
SELECT author_id,
       dt,
       CAST(SUM(views) AS BIGINT) AS views,
       CAST(SUM(reach) AS BIGINT) AS reach,
       CAST(SUM(watch_ms) AS BIGINT) AS watch_ms,
       CAST(SUM(profile_visits) AS BIGINT) AS profile_visits,
       CAST(SUM(likes) AS BIGINT) AS likes,
       CAST(SUM(comments) AS BIGINT) AS comments,
       CAST(SUM(shares) AS BIGINT) AS shares,
       CAST(SUM(saves) AS BIGINT) AS saves,
       CAST(SUM(interactions) AS BIGINT) AS interactions,
       CAST(SUM(accounts_engaged) AS BIGINT) AS accounts_engaged,
       CAST(SUM(follows) AS BIGINT) AS follows,
       CAST(SUM(unfollows) AS BIGINT) AS unfollows
FROM parts
GROUP BY author_id, dt
