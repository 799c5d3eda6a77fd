-- Each account's follower changes per UTC day, and the running total since the warehouse
-- began. A follow of a private account is a request: it is counted in follows when it is made,
-- and again in requests_approved when the account approves it; blocks, which end follows
-- silently, are not counted.
--
-- Columns:
--   user_id             the account followed
--   dt                  the UTC day
--   follows             follow events received (requests included)
--   unfollows           unfollow events received
--   requests_approved   follow requests the account approved
--   net                 follows - unfollows
--   cumulative_net      net summed over this and every earlier day
CREATE VIEW follower_growth AS
WITH daily AS (
    SELECT target_id AS user_id, dt,
           SUM(CASE WHEN event_type = 'follow' THEN 1 ELSE 0 END) AS follows,
           SUM(CASE WHEN event_type = 'unfollow' THEN 1 ELSE 0 END) AS unfollows,
           0 AS requests_approved
    FROM follows
    WHERE event_type IN ('follow', 'unfollow')
    GROUP BY target_id, dt
    UNION ALL
    SELECT actor_id AS user_id, dt, 0 AS follows, 0 AS unfollows, COUNT(*) AS requests_approved
    FROM follows
    WHERE event_type = 'follow_request_approved'
    GROUP BY actor_id, dt
), summed AS (
    SELECT user_id, dt,
           SUM(follows) AS follows,
           SUM(unfollows) AS unfollows,
           SUM(requests_approved) AS requests_approved
    FROM daily
    GROUP BY user_id, dt
)
SELECT user_id,
       dt,
       follows,
       unfollows,
       requests_approved,
       follows - unfollows AS net,
       SUM(follows - unfollows) OVER (
           PARTITION BY user_id ORDER BY dt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
       ) AS cumulative_net
FROM summed
