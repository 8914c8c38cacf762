-- flinksched's SQL example: clicks from Flink's datagen source counted per user in a keyed
-- aggregation (state Flink checkpoints). One INSERT: one job.
CREATE TABLE clicks (
  user_id BIGINT,
  url STRING
) WITH (
  'connector' = 'datagen',
  'rows-per-second' = '20',
  'fields.user_id.min' = '1',
  'fields.user_id.max' = '16',
  'fields.url.length' = '8'
);

CREATE TABLE clicks_per_user (
  user_id BIGINT,
  clicks BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO clicks_per_user
SELECT user_id, COUNT(*) FROM clicks GROUP BY user_id;
