# Concurrency: pgbench clients insert, delete and search while another
# client runs VACUUM and benzer_index_merge (plain and compacting) in a
# loop, on an IVF, a Flat and an HNSW index. Every search checks its own
# answer inside pgbench (and fails the client if it is wrong): 10 distinct
# rows, and for the IVF and Flat indexes (whose settings make searches
# exact) the same 10th distance as a sequential scan in the same snapshot.
# Afterwards every row of each table is found by a full index scan exactly
# once, each sampled row is its own nearest neighbour, and the index's
# counts match the table's.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BenzerTAP;

my $dim = 24;
my $db = 'postgres';
# The service variant (009) runs longer: a merge makes the service read the
# index again, which slows the workload on a loaded 2-core machine.
my $seconds = $ENV{BENZER_TAP_SERVICE} ? 25 : 15;
my %factory = (
	ivf  => "factory = 'IVF16,Flat', nprobe = 16",
	flat => "factory = 'Flat'",
	hnsw => "factory = 'HNSW16'",
);
my @kinds = sort keys %factory;

my $node = PostgreSQL::Test::Cluster->new('concurrency');
$node->init;
$node->append_conf('postgresql.conf', qq{
autovacuum = off
max_connections = 30
shared_buffers = 16MB
deadlock_timeout = 100ms
log_statement = none
log_min_messages = warning
log_lock_waits = off
});
# 009_service_concurrency.pl runs this same test with the search service
# answering the exact searches (Flat, and IVF under small filters).
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'benzer'
benzer.service_min_rows = 0
}) if $ENV{BENZER_TAP_SERVICE};
$node->start;
benzer_setup_db($node, $db);

$node->safe_psql($db, 'CREATE SEQUENCE ids START 3001');
for my $kind (@kinds)
{
	$node->safe_psql($db, qq{
		CREATE TABLE t_$kind (id int PRIMARY KEY, v vector($dim));
		INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(1, 3000) i;
		CREATE INDEX t_${kind}_idx ON t_$kind USING faiss (v) WITH ($factory{$kind});
	});
}

# The workload. Each failed check calls benzer_test_fail(), which raises an
# ERROR and aborts the pgbench client.
my $insert = "SELECT nextval('ids') AS n \\gset\n";
$insert .= "INSERT INTO t_$_ VALUES (:n, rv(:n, $dim));\n" for @kinds;

my $delete = "\\set d random(1, 6000)\n";
$delete .= "DELETE FROM t_$_ WHERE id = :d;\n" for @kinds;

my $search = "\\set q random(1, 1000000000)\n";
for my $kind ('ivf', 'flat')
{
	$search .= qq{BEGIN ISOLATION LEVEL REPEATABLE READ;
SET LOCAL enable_seqscan = off;
SELECT count(*) AS icnt, count(DISTINCT id) AS idist, max(d) AS imax FROM (SELECT id, v <-> rv(:q, $dim) AS d FROM t_$kind ORDER BY v <-> rv(:q, $dim) LIMIT 10) s \\gset
SET LOCAL enable_seqscan = on;
SET LOCAL enable_indexscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT max(d) AS emax FROM (SELECT v <-> rv(:q, $dim) AS d FROM t_$kind ORDER BY 1 LIMIT 10) s \\gset
COMMIT;
\\if :icnt != 10 or :idist != 10 or :imax > :emax + 0.00001
SELECT benzer_test_fail('t_$kind: rv(' || :q || '): ' || :icnt || ' rows, ' || :idist || ' distinct, 10th distance ' || :imax || ', exact ' || :emax);
\\endif
};
}
$search .= qq{SET enable_seqscan = off;
SELECT count(*) AS icnt, count(DISTINCT id) AS idist FROM (SELECT id FROM t_hnsw ORDER BY v <-> rv(:q, $dim) LIMIT 10) s \\gset
\\if :icnt != 10 or :idist != 10
SELECT benzer_test_fail('t_hnsw: rv(' || :q || '): ' || :icnt || ' rows, ' || :idist || ' distinct');
\\endif
};

# A search under a filter that discards most rows: the scan must go on
# (rounds) until it has 10 rows that pass it.
$search .= qq{SET enable_seqscan = off;
SELECT count(*) AS fcnt, count(DISTINCT id) AS fdist FROM (SELECT id FROM t_ivf WHERE id % 50 = 7 ORDER BY v <-> rv(:q, $dim) LIMIT 10) s \\gset
\\if :fcnt != 10 or :fdist != 10
SELECT benzer_test_fail('t_ivf filtered: rv(' || :q || '): ' || :fcnt || ' rows, ' || :fdist || ' distinct');
\\endif
};

my $maintenance = '';
for my $kind (@kinds)
{
	$maintenance .= "VACUUM t_$kind;\n";
	$maintenance .= "SELECT benzer_index_merge('t_${kind}_idx');\n";
}
# Compaction of the indexes that keep exact vectors (the HNSW one is left
# with its tombstones: its deletions stay well below a fifth of the rows).
$maintenance .= "SELECT benzer_index_merge('t_ivf_idx', true);\n";
$maintenance .= "SELECT benzer_index_merge('t_flat_idx', true);\n";
$maintenance .= "SELECT pg_sleep(0.05);\n";

my $work = start_pgbench($node, $db, 'workload',
	{ 'insert@5' => $insert, 'delete@1' => $delete, 'search@4' => $search },
	'-c', '4', '-j', '2', '-T', $seconds);
my $maint = start_pgbench($node, $db, 'maintenance', $maintenance, '-c', '1', '-T', $seconds);

my ($rc, $out, $err) = finish_pgbench($work);
is($rc, 0, 'workload: pgbench exited successfully');
unlike($err, qr/ERROR|aborted/, 'workload: no errors');
my %processed;
for my $script ('insert', 'delete', 'search')
{
	($processed{$script}) = $out =~ /SQL script \d+: \S*\/$script\.pgbench\n - weight: \d+ \(targets [^)]*\)\n - (\d+) transactions/;
	cmp_ok($processed{$script} // 0, '>', 20, "workload: " . ($processed{$script} // 0) . " $script transactions");
}
my ($failed) = $out =~ /number of failed transactions: (\d+)/;
is($failed // 0, 0, 'workload: no failed transactions');

($rc, $out, $err) = finish_pgbench($maint);
is($rc, 0, 'maintenance: pgbench exited successfully');
unlike($err, qr/ERROR|aborted/, 'maintenance: no errors');
my ($loops) = $out =~ /number of transactions actually processed: (\d+)/;
cmp_ok($loops // 0, '>', 3, "maintenance: " . ($loops // 0) . " rounds of VACUUM and merges");

my $log = slurp_file($node->logfile);
my @errors = grep { /ERROR|FATAL|PANIC/ } split /\n/, $log;
is(scalar(@errors), 0, 'no ERROR, FATAL or PANIC in the server log')
  or diag(join("\n", @errors[ 0 .. ($#errors < 20 ? $#errors : 19) ]));

# Afterwards: every row found once, and the counts agree.
for my $kind (@kinds)
{
	my $t = "t_$kind";
	my $idx = "${t}_idx";
	my $info = index_info($node, $db, $idx);
	cmp_ok($info->{merges}, '>', 0, "$kind: the index was merged $info->{merges} times");
	my ($returned, $distinct, $count) = full_scan($node, $db, $t, $dim);
	cmp_ok($count, '>', 3000 + ($processed{insert} // 0) / 2, "$kind: table has $count rows");
	is($returned, $count, "$kind: full index scan returns all $count rows");
	is($distinct, $count, "$kind: full index scan returns no row twice");
	my ($checked, $misses) = self_nn_misses($node, $db, $t, 'id % 13 = 0');
	cmp_ok($checked, '>', 200, "$kind: $checked rows looked up by their vector");
	is($misses, 0, "$kind: each is its own nearest neighbour");

	sql_ok($node, $db, "VACUUM (INDEX_CLEANUP ON) $t", "$kind: final VACUUM succeeds");
	is(index_check($node, $db, $idx), '', "$kind: benzer_index_check finds no problem");
	$info = index_info($node, $db, $idx);
	is($info->{rows} + $info->{pending_rows}, $count,
		"$kind: index rows ($info->{rows}) + pending ($info->{pending_rows}) = table rows");
	is(sql_ok($node, $db, "SELECT benzer_index_merge('$idx')", "$kind: final merge succeeds"),
		$count, "$kind: the merged index holds every row");
	($returned, $distinct, $count) = full_scan($node, $db, $t, $dim);
	is("$returned $distinct", "$count $count", "$kind: after the final merge, all rows once");
	next if $kind eq 'hnsw';
	my $bad = 0;
	for my $seed (600001 .. 600005)
	{
		my $got = topk($node, $db, $t, $seed, $dim, 10);
		my $want = exact_topk($node, $db, $t, $seed, $dim, 10);
		$bad++, diag("$kind: rv($seed): index\n$got\nexact\n$want") if $got ne $want;
	}
	is($bad, 0, "$kind: index top-10 equals the exact top-10");
}

if ($ENV{BENZER_TAP_SERVICE})
{
	my ($requests, $loads) = split /\|/,
	  $node->safe_psql($db, 'SELECT requests, index_loads FROM benzer_search_service()');
	ok($requests > 100, "the search service answered searches throughout ($requests, "
		  . "$loads index generations read)");
}

my @problems = server_log_problems($node);
is(scalar(@problems), 0, 'no crash or corruption in the server log')
  or diag(join("\n", @problems));

$node->stop;
done_testing();
