# Faiss indexes on a streaming standby: after each change on the primary
# (build, pending inserts, DELETE + VACUUM, merge, compaction, REINDEX) has
# been replayed, the standby's index holds the same state
# (benzer_index_info) and gives the same top-10 (ids and distances) as the
# primary's, both in new sessions and in sessions that stay open across
# the changes (whose cached Faiss indexes must be refreshed). Then
# searches run on the standby while the primary merges again and again, and
# halfvec, sparsevec and bit indexes are replayed.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BenzerTAP;

my $dim = 32;
my $db = 'postgres';
my %factory = (
	ivf  => "factory = 'IVF32,Flat', nprobe = 4",
	hnsw => "factory = 'HNSW16'",
);
my @kinds = sort keys %factory;
my @seeds = (700001 .. 700006);

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
autovacuum = off
max_connections = 20
shared_buffers = 16MB
});
$primary->start;
$primary->backup('backup');

my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);

$standby->start;

benzer_setup_db($primary, $db);
for my $kind (@kinds)
{
	$primary->safe_psql($db, qq{
		CREATE TABLE t_$kind (id int PRIMARY KEY, v vector($dim));
		INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(1, 4000) i;
	});
}
$primary->wait_for_catchup($standby);

# Sessions that stay open on both nodes.
my %session;
for my $name ('primary', 'standby')
{
	my $node = $name eq 'primary' ? $primary : $standby;
	$session{$name} = quietly(sub { $node->background_psql($db) });
	session_query($session{$name}, 'SET enable_seqscan = off');
}

sub topk_sql
{
	my ($kind, $seed) = @_;
	return "SELECT id, v <-> rv($seed, $dim) FROM t_$kind ORDER BY v <-> rv($seed, $dim) LIMIT 10";
}

# Compares the standby with the primary after the primary's latest change.
sub compare
{
	my ($what) = @_;
	$primary->wait_for_catchup($standby);
	for my $kind (@kinds)
	{
		my $idx = "t_${kind}_idx";
		my $pinfo = index_info($primary, $db, $idx);
		my $sinfo = index_info($standby, $db, $idx);
		is_deeply($sinfo, $pinfo,
			"$kind: $what: benzer_index_info on the standby equals the primary's "
			  . "(rows $pinfo->{rows}, pending $pinfo->{pending_rows}, dead $pinfo->{dead_rows}, "
			  . "generation $pinfo->{generation})");
		ok(index_used($standby, $db, topk_sql($kind, 1), $idx),
			"$kind: $what: the standby searches with the faiss index");
		my ($bad_new, $bad_open, $bad_primary_open) = (0, 0, 0);
		for my $seed (@seeds)
		{
			my $want = topk($primary, $db, "t_$kind", $seed, $dim, 10);
			my @lines = split /\n/, $want;
			if (@lines != 10)
			{
				diag("$kind: $what: primary returned " . scalar(@lines) . " rows for rv($seed)");
				$bad_new++;
			}
			my $got = topk($standby, $db, "t_$kind", $seed, $dim, 10);
			if ($got ne $want)
			{
				$bad_new++;
				diag("$kind: $what: rv($seed): standby\n$got\nprimary\n$want");
			}
			my $open = session_query($session{standby}, topk_sql($kind, $seed));
			if ($open ne $want)
			{
				$bad_open++;
				diag("$kind: $what: rv($seed): open standby session\n$open\nprimary\n$want");
			}
			$open = session_query($session{primary}, topk_sql($kind, $seed));
			if ($open ne $want)
			{
				$bad_primary_open++;
				diag("$kind: $what: rv($seed): open primary session\n$open\nnew session\n$want");
			}
		}
		is($bad_new, 0, "$kind: $what: standby top-10 equals the primary's");
		is($bad_open, 0, "$kind: $what: an open standby session sees the same top-10");
		is($bad_primary_open, 0, "$kind: $what: an open primary session sees the same top-10");
		my @p = full_scan($primary, $db, "t_$kind", $dim);
		my @s = full_scan($standby, $db, "t_$kind", $dim);
		is("@s", "$p[2] $p[2] $p[2]",
			"$kind: $what: a full index scan on the standby returns all $p[2] rows once");
		my ($checked, $misses) = self_nn_misses($standby, $db, "t_$kind", 'id % 40 = 7 OR id > 4000');
		cmp_ok($checked, '>', 0, "$kind: $what: $checked rows looked up on the standby");
		is($misses, 0, "$kind: $what: on the standby each is its own nearest neighbour");
		is(index_check($standby, $db, "t_${kind}_idx"), '',
			"$kind: $what: benzer_index_check on the standby finds no problem");
	}
	return;
}

# Before the index exists the standby has nothing to use.
for my $kind (@kinds)
{
	$primary->safe_psql($db,
		"CREATE INDEX t_${kind}_idx ON t_$kind USING faiss (v) WITH ($factory{$kind})");
}
compare('after CREATE INDEX');

for my $kind (@kinds)
{
	$primary->safe_psql($db,
		"INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(4001, 4500) i");
}
compare('with 500 pending rows');
is(index_info($standby, $db, 't_ivf_idx')->{pending_rows}, 500, 'standby sees 500 pending rows');

for my $kind (@kinds)
{
	$primary->safe_psql($db, "DELETE FROM t_$kind WHERE id % 10 = 3 OR id BETWEEN 4001 AND 4050");
	$primary->safe_psql($db, "VACUUM (INDEX_CLEANUP ON) t_$kind");
}
compare('after DELETE and VACUUM');
is(index_info($standby, $db, 't_ivf_idx')->{dead_rows}, 400, 'standby sees 400 dead rows');
is(index_info($standby, $db, 't_ivf_idx')->{pending_rows}, 405, 'standby sees 405 pending rows');

for my $kind (@kinds)
{
	is($primary->safe_psql($db, "SELECT benzer_index_merge('t_${kind}_idx')"),
		4005, "$kind: benzer_index_merge returns the 4005 live rows");
}
compare('after benzer_index_merge');
is(index_info($standby, $db, 't_ivf_idx')->{pending_rows}, 0, 'standby sees no pending rows');

# More pending rows on top of the merged generation, then compaction of the
# IVF index (the HNSW one keeps its tombstones).
for my $kind (@kinds)
{
	$primary->safe_psql($db,
		"INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(4501, 4700) i");
}
is($primary->safe_psql($db, "SELECT benzer_index_merge('t_ivf_idx', true)"),
	4205, 'ivf: compaction returns the 4205 live rows');
compare('after compaction');
is(index_info($standby, $db, 't_ivf_idx')->{dead_rows}, 0, 'standby: compacted index has no dead rows');

# A merge cannot run on the standby: it must fail cleanly (no WAL can be
# written in recovery) and leave the standby working.
my ($ret, $out, $err) = $standby->psql($db, "SELECT benzer_index_merge('t_hnsw_idx')");
isnt($ret, 0, 'benzer_index_merge on the standby fails');
like($err, qr/ERROR:.*(recovery|read-only)/, 'benzer_index_merge on the standby: a clean error')
  or diag($err);
is($standby->safe_psql($db, 'SELECT pg_is_in_recovery()'), 't', 'the standby is still up');

for my $kind (@kinds)
{
	$primary->safe_psql($db, "REINDEX INDEX t_${kind}_idx");
}
compare('after REINDEX');

# Searches on the standby while the primary inserts and merges over and
# over: readers on the standby take no locks, so they meet chain pages that
# replay is replacing and must start over rather than fail or return rows
# twice. Each search checks it got 10 distinct rows.
my $search = start_pgbench($standby, $db, 'standby_search', qq{
\\set q random(1, 1000000000)
SELECT count(*) AS c, count(DISTINCT id) AS d FROM (SELECT id FROM t_ivf ORDER BY v <-> rv(:q, $dim) LIMIT 10) s \\gset
\\if :c != 10 or :d != 10
SELECT benzer_test_fail('standby search returned ' || :c || ' rows, ' || :d || ' distinct');
\\endif
SELECT count(*) AS c, count(DISTINCT id) AS d FROM (SELECT id FROM t_hnsw ORDER BY v <-> rv(:q, $dim) LIMIT 10) s \\gset
\\if :c != 10 or :d != 10
SELECT benzer_test_fail('standby search returned ' || :c || ' rows, ' || :d || ' distinct');
\\endif
}, '-c', '2', '-T', '10');
my $next = 10001;
my $start = time;
my $rounds = 0;
while (time - $start < 9)
{
	for my $kind (@kinds)
	{
		$primary->safe_psql($db, qq{
			INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series($next, $next + 99) i;
			SELECT benzer_index_merge('t_${kind}_idx');
		});
	}
	$next += 100;
	$rounds++;
}
note "$rounds rounds of insert + merge on the primary";
my ($rc, $bench_out, $bench_err) = finish_pgbench($search);
is($rc, 0, 'standby searches during replayed merges: pgbench succeeded');
unlike($bench_err, qr/ERROR/, 'standby searches during replayed merges: no errors');
my ($done) = $bench_out =~ /number of transactions actually processed: (\d+)/;
cmp_ok($done // 0, '>', 20, "standby searches during replayed merges: $done searches ran");
compare('after repeated merges');

# halfvec, sparsevec and bit keys: built and pending rows replayed, and the
# standby orders them as the primary does.
my %key_index = (
	h => ["halfvec($dim)", "rv(i, $dim)::halfvec($dim)", '', '<->', "rv(7, $dim)::halfvec($dim)"],
	s => ["sparsevec($dim)", "(rv(i, $dim)::vector($dim))::sparsevec($dim)", 'sparsevec_cosine_ops',
		'<=>', "rv(7, $dim)::sparsevec($dim)"],
	b => ["bit($dim)", "binary_quantize(rv(i, $dim))::bit($dim)", 'bit_hamming_ops', '<~>',
		"binary_quantize(rv(7, $dim))::bit($dim)"],
);
for my $col (sort keys %key_index)
{
	my ($type, $value, $opclass) = @{ $key_index{$col} };
	$primary->safe_psql($db, qq{
		CREATE TABLE k_$col (id int PRIMARY KEY, k $type);
		INSERT INTO k_$col SELECT i, $value FROM generate_series(1, 1000) i;
		CREATE INDEX k_${col}_idx ON k_$col USING faiss (k $opclass) WITH (factory = 'IVF16,Flat', nprobe = 16);
		INSERT INTO k_$col SELECT i, $value FROM generate_series(1001, 1100) i;
	});
}
$primary->wait_for_catchup($standby);
for my $col (sort keys %key_index)
{
	my ($type, $value, $opclass, $op, $query) = @{ $key_index{$col} };
	my $nearest = "SELECT string_agg(d::text, ',') FROM (SELECT round((k $op $query)::numeric, 3) AS d
	               FROM k_$col ORDER BY k $op $query LIMIT 10) t";
	ok(index_used($standby, $db, "SELECT id FROM k_$col ORDER BY k $op $query LIMIT 10", "k_${col}_idx"),
		"$type: the standby uses the replayed faiss index");
	my $on_standby = $standby->safe_psql($db, "SET enable_seqscan = off; $nearest");
	is($on_standby, $primary->safe_psql($db, "SET enable_seqscan = off; $nearest"),
		"$type: the standby's 10 nearest are the primary's");
	is($on_standby, $primary->safe_psql($db, "SET enable_indexscan = off; $nearest"),
		"$type: and an exact scan's");
	is($standby->safe_psql($db, "SELECT count(*) FROM k_$col"), 1100, "$type: 1100 rows on the standby");
}

quietly(sub { $_->quit }) for values %session;

for my $node ($primary, $standby)
{
	my @problems = server_log_problems($node);
	is(scalar(@problems), 0, $node->name . ': no crash or corruption in the server log')
	  or diag(join("\n", @problems));
}

$standby->stop;
$primary->stop;
done_testing();
