-- Exact top-10 over the 60 000 train pixel vectors of the demo, beside a
-- plain count(*) of the same rows (issue 2's figure): medians of 9 runs,
-- one core, no indexes. Run against the demo database:
--   psql -h /var/tmp/benzer-demo/run -p 5499 -U postgres benzer_demo -f bench/exact_scan.sql
\timing off
set enable_indexscan = off; set enable_bitmapscan = off; set enable_indexonlyscan = off; set max_parallel_workers_per_gather = 0;
create temp table times (what text, ms float8);
do $$
declare t0 timestamptz; q vector; i int; n bigint;
begin
  select embedding into q from features where image_id = 60001 and model = 'pixels';
  perform count(*) from features where model = 'pixels' and image_id <= 60000;
  perform image_id from features where model = 'pixels' and image_id <= 60000 order by embedding <-> q limit 10;
  for i in 1..9 loop
    t0 := clock_timestamp(); select count(*) into n from features where model = 'pixels' and image_id <= 60000;
    insert into times values ('count(*)', extract(epoch from clock_timestamp() - t0) * 1000);
    t0 := clock_timestamp(); perform image_id from features where model = 'pixels' and image_id <= 60000 order by embedding <-> q limit 10;
    insert into times values ('exact top-10 <->', extract(epoch from clock_timestamp() - t0) * 1000);
  end loop;
  raise notice 'rows: %', n;
end $$;
select what, round(percentile_cont(0.5) within group (order by ms)::numeric, 1) as median_ms, round(min(ms)::numeric,1) min_ms, round(max(ms)::numeric,1) max_ms, count(*) runs from times group by what order by 1;
select pg_size_pretty(pg_table_size('features')) as features_heap;
