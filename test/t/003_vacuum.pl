# VACUUM of faiss indexes: dead rows are tombstoned and never returned again
# (even after their heap slots are reused by new rows), dead pending rows
# are deleted, VACUUM merges pending rows once there are merge_threshold of
# them, compaction (benzer_index_merge(idx, true), or VACUUM when a fifth of
# the rows are dead) drops dead rows, and searches stay exact throughout.
# An index with its lists in pages (ivf_pages, flat_pages) takes inserted
# rows into list tails instead: VACUUM deletes dead ones in place and never
# merges them (pending_rows counts them until an explicit merge or
# compaction), and never compacts by itself: only REINDEX or an explicit
# compaction rewrites it.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BenzerTAP;

my $dim = 32;
my $db = 'postgres';

my $node = PostgreSQL::Test::Cluster->new('vacuum');
$node->init;
$node->append_conf('postgresql.conf', qq{
autovacuum = off
shared_buffers = 16MB
});
$node->start;
benzer_setup_db($node, $db);

# Settings that make every search exact, so index results can be compared
# with a sequential scan's.
my @configs = (
	{ name => 'ivf',  with => "factory = 'IVF32,Flat', nprobe = 32, lists_in_pages = off" },
	{ name => 'ivf_pages', with => "factory = 'IVF32,Flat', nprobe = 32", tails => 1 },
	{ name => 'flat', with => "factory = 'Flat', lists_in_pages = off" },
	{ name => 'flat_pages', with => "factory = 'Flat'", tails => 1 },
	{ name => 'hnsw', with => "factory = 'HNSW32', ef_search = 1000" },
);

for my $c (@configs)
{
	my $t = "t_$c->{name}";
	my $idx = "${t}_idx";
	my $label = $c->{name};
	my $tails = $c->{tails} // 0;

	# The index's state, compared with what we expect.
	my $check_info = sub {
		my ($what, %want) = @_;
		my $info = index_info($node, $db, $idx);
		for my $k (sort keys %want)
		{
			is($info->{$k}, $want{$k}, "$label: $what: $k = $want{$k}");
		}
		return $info;
	};
	# Every row found exactly once by a full index scan, and the top-10 of
	# several queries (random points and the vectors of deleted rows) equal
	# to the exact answer.
	my $check_results = sub {
		my ($what, @extra_seeds) = @_;
		my ($returned, $distinct, $count) = full_scan($node, $db, $t, $dim);
		is($returned, $count, "$label: $what: full index scan returns all $count rows");
		is($distinct, $count, "$label: $what: full index scan returns no row twice");
		my $bad = 0;
		for my $seed (900001 .. 900004, @extra_seeds)
		{
			my $got = topk($node, $db, $t, $seed, $dim, 10);
			my $want = exact_topk($node, $db, $t, $seed, $dim, 10);
			if ($got ne $want)
			{
				$bad++;
				diag("$label: $what: query rv($seed): index\n$got\nexact\n$want");
			}
		}
		is($bad, 0, "$label: $what: index top-10 equals exact top-10");
		my ($checked, $misses) = self_nn_misses($node, $db, $t, 'id % 23 = 0');
		ok($checked >= 20, "$label: $what: $checked rows looked up by their vector");
		is($misses, 0, "$label: $what: each row is its own nearest neighbour");
	};

	$node->safe_psql($db, qq{
		CREATE TABLE $t (id int PRIMARY KEY, v vector($dim), note text);
		INSERT INTO $t SELECT i, rv(i, $dim) FROM generate_series(1, 3000) i;
		CREATE INDEX $idx ON $t USING faiss (v) WITH ($c->{with}, merge_threshold = 100);
	});
	ok(index_used($node, $db, "SELECT id FROM $t ORDER BY v <-> rv(1, $dim) LIMIT 10", $idx),
		"$label: searches use the faiss index");
	my $info = $check_info->('after build',
		rows => 3000, pending_rows => 0, dead_rows => 0, merges => 0);
	my $gen = $info->{generation};

	# Delete 10% of the rows: before VACUUM the index does not know.
	$node->safe_psql($db, "DELETE FROM $t WHERE id % 10 = 0");
	$check_info->('after DELETE, before VACUUM', rows => 3000, dead_rows => 0);
	$check_results->('after DELETE, before VACUUM', 10, 20, 30);

	sql_ok($node, $db, "VACUUM $t", "$label: VACUUM after deleting 10%");
	$check_info->('after VACUUM',
		rows => 2700, pending_rows => 0, dead_rows => 300, generation => $gen, merges => 0);
	$check_results->('after VACUUM', 10, 20, 30);

	# New rows take the heap slots VACUUM freed: if a tombstoned label still
	# led to its old TID, a scan would return the new row twice (once under
	# the dead label at the dead row's distance).
	$node->safe_psql($db,
		"INSERT INTO $t SELECT i, rv(i, $dim) FROM generate_series(3001, 3300) i");
	my $slots_reused = $node->safe_psql($db, qq{
		SELECT count(*) FROM $t WHERE id > 3000
		   AND (ctid::text::point)[0] < (SELECT max((ctid::text::point)[0]) FROM $t WHERE id <= 3000)});
	cmp_ok($slots_reused, '>', 100, "$label: new rows reuse the freed heap slots ($slots_reused)");
	$check_info->('after INSERT into freed slots',
		rows => 2700, pending_rows => 300, dead_rows => 300);
	$check_results->('after INSERT into freed slots', 10, 20, 30, 3005, 3150);

	# 300 pending rows >= merge_threshold 100: VACUUM merges them (rows in
	# list tails stay there).
	sql_ok($node, $db, "VACUUM $t", "$label: VACUUM with 300 pending rows");
	my $merged_gen = $tails ? $gen : $gen + 1;
	my $merges = $tails ? 0 : 1;
	$info = $check_info->('after VACUUM above merge_threshold',
		rows => $tails ? 2700 : 3000, pending_rows => $tails ? 300 : 0, dead_rows => 300,
		generation => $merged_gen, merges => $merges);
	$check_results->('after VACUUM merged pending rows', 10, 3005, 3150);

	# Pending rows below the threshold stay pending; dead ones are deleted
	# outright (they never count as dead_rows).
	$node->safe_psql($db, qq{
		INSERT INTO $t SELECT i, rv(i, $dim) FROM generate_series(3301, 3350) i;
		DELETE FROM $t WHERE id BETWEEN 3301 AND 3320;
	});
	sql_ok($node, $db, "VACUUM (INDEX_CLEANUP ON) $t", "$label: VACUUM after deleting pending rows");
	$check_info->('after VACUUM below merge_threshold',
		rows => $tails ? 2700 : 3000, pending_rows => $tails ? 330 : 30, dead_rows => 300,
		generation => $merged_gen, merges => $merges);
	$check_results->('after deleting pending rows', 3301, 3310, 3321);

	# 200 more dead rows (500 of 3300, under a fifth): no compaction yet.
	$node->safe_psql($db, "DELETE FROM $t WHERE id % 10 = 1 AND id <= 2000");
	sql_ok($node, $db, "VACUUM (INDEX_CLEANUP ON) $t", "$label: VACUUM with 500 dead rows");
	$check_info->('after VACUUM with 500 dead',
		rows => $tails ? 2500 : 2800, pending_rows => $tails ? 330 : 30, dead_rows => 500,
		generation => $merged_gen, merges => $merges);

	# Compaction drops the dead rows (and folds the pending ones in).
	my $live = $node->safe_psql($db, "SELECT count(*) FROM $t");
	is($live, 2830, "$label: 2830 live rows");
	my $merged = sql_ok($node, $db, "SELECT benzer_index_merge('$idx', true)",
		"$label: benzer_index_merge(compact) succeeds");
	is($merged, $live, "$label: benzer_index_merge(compact) returns the live row count");
	$check_info->('after compaction',
		rows => $live, pending_rows => 0, dead_rows => 0, generation => $merged_gen + 1,
		merges => $merges + 1);
	$check_results->('after compaction', 1, 10, 11, 3301, 3321);

	# Compacting again with nothing to do changes no counts.
	$merged = sql_ok($node, $db, "SELECT benzer_index_merge('$idx', true)",
		"$label: second benzer_index_merge(compact) succeeds");
	is($merged, $live, "$label: a second compaction keeps $live rows");
	$check_info->('after second compaction',
		rows => $live, pending_rows => 0, dead_rows => 0);

	# When more than a fifth of the rows are dead, VACUUM compacts by itself;
	# not an index whose lists live in pages: VACUUM never rewrites one, its
	# dead rows stay masked and benzer_index_info says how to drop them.
	my $gen_before = index_info($node, $db, $idx)->{generation};
	$node->safe_psql($db, "DELETE FROM $t WHERE id % 10 IN (2, 3)");
	my $deleted = $live - $node->safe_psql($db, "SELECT count(*) FROM $t");
	$live = $node->safe_psql($db, "SELECT count(*) FROM $t");
	sql_ok($node, $db, "VACUUM $t", "$label: VACUUM with a quarter of the rows dead");
	$info = $check_info->('after VACUUM with a quarter dead',
		rows => $live, pending_rows => 0, dead_rows => $tails ? $deleted : 0);
	if ($tails)
	{
		is($info->{generation}, $gen_before, "$label: VACUUM did not rewrite the index");
		like($node->safe_psql($db, "SELECT description FROM benzer_index_info('$idx')"),
			qr/$deleted dead rows masked \(\d+% of the lists\): REINDEX or benzer_index_merge/,
			"$label: benzer_index_info says how to drop the dead rows");
	}
	else
	{
		cmp_ok($info->{generation}, '>', $merged_gen + 1,
			"$label: VACUUM compacted into a new generation");
	}
	$check_results->('after VACUUM with a quarter dead', 2, 3, 12, 13);

	# Updates: a changed vector is a new (pending) index entry and the old
	# one dies; a HOT update (vector unchanged) adds none, and the index's
	# TID leads to the new row version through the HOT chain.
	$live = $node->safe_psql($db, "SELECT count(*) FROM $t");
	my $changed = $node->safe_psql($db,
		"WITH u AS (UPDATE $t SET v = rv(id + 100000, $dim) WHERE id % 10 = 4 RETURNING 1) SELECT count(*) FROM u");
	my $hot = $node->safe_psql($db,
		"WITH u AS (UPDATE $t SET note = 'hot' WHERE id % 10 = 6 RETURNING 1) SELECT count(*) FROM u");
	note "$label: $changed vectors changed, $hot rows updated otherwise";
	$info = index_info($node, $db, $idx);
	# (an update that does not fit on its page is not HOT and adds an
	# entry too, with the same vector)
	ok($info->{pending_rows} >= $changed && $info->{pending_rows} <= $changed + $hot,
		"$label: each changed vector is a pending row ($info->{pending_rows} pending)");
	$check_results->('after UPDATE', 4, 14, 100004, 100014, 6, 16);
	my ($checked, $misses) = self_nn_misses($node, $db, $t, 'id % 10 IN (4, 6)');
	is("$checked $misses", ($changed + $hot) . " 0",
		"$label: after UPDATE: every updated row is found by its (new) vector");
	sql_ok($node, $db, "VACUUM (INDEX_CLEANUP ON) $t", "$label: VACUUM after UPDATE");
	$info = index_info($node, $db, $idx);
	is($info->{rows} + $info->{pending_rows}, $live,
		"$label: after UPDATE and VACUUM: index rows + pending = $live table rows");
	$check_results->('after UPDATE and VACUUM', 4, 14, 100004, 100014, 6, 16);
	($checked, $misses) = self_nn_misses($node, $db, $t, 'id % 10 IN (4, 6)');
	is("$checked $misses", ($changed + $hot) . " 0",
		"$label: after UPDATE and VACUUM: every updated row is found by its (new) vector");

	# Everything deleted: the index returns nothing, and takes rows again.
	my $before_empty = index_info($node, $db, $idx);
	$node->safe_psql($db, "DELETE FROM $t");
	sql_ok($node, $db, "VACUUM $t", "$label: VACUUM of an emptied table");
	my @r = full_scan($node, $db, $t, $dim);
	is("@r", "0 0 0", "$label: empty table, empty index scan");
	$node->safe_psql($db,
		"INSERT INTO $t SELECT i, rv(i, $dim) FROM generate_series(5001, 5500) i");
	sql_ok($node, $db, "VACUUM $t", "$label: VACUUM of the refilled table");
	$check_info->('after refilling',
		rows => $tails ? 0 : 500, pending_rows => $tails ? 500 : 0,
		dead_rows => $tails ? $before_empty->{rows} + $before_empty->{dead_rows} : 0);
	is(index_check($node, $db, $idx), '', "$label: after refilling: benzer_index_check");
	$check_results->('after refilling', 5001, 5250);
}

my @problems = server_log_problems($node);
is(scalar(@problems), 0, 'no crash or corruption in the server log')
  or diag(join("\n", @problems));

$node->stop;
done_testing();
