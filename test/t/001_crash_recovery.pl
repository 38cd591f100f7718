# Crash recovery of faiss indexes: the server is stopped with
# "pg_ctl -m immediate" (no shutdown checkpoint, shared buffers lost) at
# moments that leave the index's last changes in WAL only, and after the
# restart every committed row must be found by the index, exactly once:
#
#   - right after CREATE INDEX (the build WAL-logs the relation at its end)
#   - while clients insert rows and another runs merges, deletes and VACUUM
#   - right after benzer_index_merge (a new generation of chains)
#   - right after VACUUM (tombstones), and after a compaction
#   - unlogged tables (reset to their init fork)
#   - halfvec, sparsevec and bit keys (built and pending rows)
#   - with wal_level = minimal, table and index created in the crashed
#     transaction's predecessor
#   - with a free space map that lists a page in use (it is not WAL-logged)
#
# Each case runs on an IVF index and on a Flat one. shared_buffers is 1MB,
# so index pages are also written out (and read back) under pressure.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use BenzerTAP;

my $dim = 32;
my $db = 'postgres';
my %factory = (
	ivf  => "factory = 'IVF64,Flat', nprobe = 8",
	flat => "factory = 'Flat'",
);
my @kinds = sort keys %factory;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init(allows_streaming => 1);    # wal_level = replica, shared_buffers = 1MB
$node->append_conf('postgresql.conf', qq{
autovacuum = off
max_connections = 20
checkpoint_timeout = 1h
max_wal_size = 1GB
});
$node->start;
benzer_setup_db($node, $db);

# Restarts after an immediate stop and checks the server came back.
sub crash_and_restart
{
	my ($what) = @_;
	$node->stop('immediate');
	$node->start;
	is($node->safe_psql($db, 'SELECT pg_is_in_recovery()'), 'f', "$what: server restarted");
	return;
}

# Checks that the index of table t_$kind finds every row, once.
sub check_table
{
	my ($kind, $what, $sample_where) = @_;
	my $t = "t_$kind";
	my $idx = "${t}_idx";
	ok(index_used($node, $db, "SELECT id FROM $t ORDER BY v <-> rv(1, $dim) LIMIT 5", $idx),
		"$kind: $what: the faiss index is used");
	my ($returned, $distinct, $count) = full_scan($node, $db, $t, $dim);
	cmp_ok($count, '>', 0, "$kind: $what: table has $count rows");
	is($returned, $count, "$kind: $what: full index scan returns all $count rows");
	is($distinct, $count, "$kind: $what: full index scan returns no row twice");
	my ($checked, $misses) = self_nn_misses($node, $db, $t, $sample_where);
	cmp_ok($checked, '>', 0, "$kind: $what: $checked rows looked up by their vector");
	is($misses, 0, "$kind: $what: each looked-up row is its own nearest neighbour");
	# The index's own counts agree with the table once VACUUM has removed
	# the entries of aborted inserts: live rows in the Faiss structure plus
	# pending rows = rows in the table.
	sql_ok($node, $db, "VACUUM (INDEX_CLEANUP ON) $t", "$kind: $what: VACUUM succeeds");
	is(index_check($node, $db, $idx), '', "$kind: $what: benzer_index_check finds no problem");
	my $info = index_info($node, $db, $idx);
	$count = $node->safe_psql($db, "SELECT count(*) FROM $t");
	is($info->{rows} + $info->{pending_rows}, $count,
		"$kind: $what: index rows ($info->{rows}) + pending ($info->{pending_rows}) = table rows");
	return $info;
}

# --- 1. Crash right after CREATE INDEX -------------------------------------
for my $kind (@kinds)
{
	$node->safe_psql($db, qq{
		CREATE TABLE t_$kind (id int PRIMARY KEY, v vector($dim));
		CREATE SEQUENCE t_${kind}_seq START 5001;
		INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(1, 5000) i;
	});
}
$node->safe_psql($db, 'CHECKPOINT');
for my $kind (@kinds)
{
	$node->safe_psql($db,
		"CREATE INDEX t_${kind}_idx ON t_$kind USING faiss (v) WITH ($factory{$kind})");
}
crash_and_restart('crash after CREATE INDEX');
for my $kind (@kinds)
{
	my $info = index_info($node, $db, "t_${kind}_idx");
	is($info->{rows}, 5000, "$kind: after build crash: 5000 rows in the index");
	is($info->{pending_rows}, 0, "$kind: after build crash: no pending rows");
	check_table($kind, 'after build crash', 'id % 25 = 0');
}

# --- 2. Crash under concurrent inserts, merges, deletes and VACUUM ---------
$node->safe_psql($db, 'CHECKPOINT');
my $inserts = start_pgbench($node, $db, 'inserts', qq{
INSERT INTO t_ivf (id, v) SELECT n, rv(n, $dim) FROM (SELECT nextval('t_ivf_seq')::int AS n) s;
INSERT INTO t_flat (id, v) SELECT n, rv(n, $dim) FROM (SELECT nextval('t_flat_seq')::int AS n) s;
}, '-c', '2', '-T', '120');
my $maintenance = start_pgbench($node, $db, 'maintenance', qq{
SELECT benzer_index_merge('t_ivf_idx');
DELETE FROM t_ivf WHERE id IN (SELECT id FROM t_ivf WHERE id > 5000 AND id < 1000000 AND id % 7 = 3);
DELETE FROM t_flat WHERE id IN (SELECT id FROM t_flat WHERE id > 5000 AND id < 1000000 AND id % 7 = 3);
VACUUM t_ivf;
SELECT benzer_index_merge('t_flat_idx', true);
VACUUM t_flat;
SELECT pg_sleep(0.1);
}, '-c', '1', '-T', '120');

# Meanwhile, rows whose commit we see acknowledged.
my @acked;
my $start = time;
my $n = 1000000;
while (time - $start < 6)
{
	$n++;
	$node->safe_psql($db, qq{
		INSERT INTO t_ivf VALUES ($n, rv($n, $dim));
		INSERT INTO t_flat VALUES ($n, rv($n, $dim));
	});
	push @acked, $n;
}
for my $kind (@kinds)
{
	my $merges = index_info($node, $db, "t_${kind}_idx")->{merges};
	cmp_ok($merges, '>', 0, "$kind: $merges merges ran during the load");
}
my $before = $node->safe_psql($db,
	"SELECT (SELECT count(*) FROM t_ivf) || ' ' || (SELECT count(*) FROM t_flat)");
note "before the crash: rows $before, " . scalar(@acked) . " acknowledged single inserts";
crash_and_restart('crash under load');
finish_pgbench($inserts);
finish_pgbench($maintenance);

for my $kind (@kinds)
{
	my $found = $node->safe_psql($db,
		"SELECT count(*) FROM t_$kind WHERE id > 1000000 AND id <= $n");
	is($found, scalar(@acked), "$kind: after crash under load: every acknowledged insert is there");
	my $added = $node->safe_psql($db, "SELECT count(*) FROM t_$kind WHERE id > 5000 AND id < 1000000");
	cmp_ok($added, '>', 50, "$kind: after crash under load: pgbench had inserted $added rows");
	check_table($kind, 'after crash under load', 'id > 5000 OR id % 25 = 0');
}

# The index keeps working after recovery: more rows, a merge, searches.
for my $kind (@kinds)
{
	$node->safe_psql($db, qq{
		INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(2000001, 2000300) i;
	});
	sql_ok($node, $db, "SELECT benzer_index_merge('t_${kind}_idx')",
		"$kind: merge after recovery succeeds");
	my $info = check_table($kind, 'after recovery, insert and merge', 'id > 2000000 OR id % 50 = 0');
	is($info->{pending_rows}, 0, "$kind: after merge: no pending rows");
}

# --- 3. Crash right after benzer_index_merge -------------------------------
my %gen;
for my $kind (@kinds)
{
	$node->safe_psql($db, qq{
		INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(3000001, 3000500) i;
	});
	is(index_info($node, $db, "t_${kind}_idx")->{pending_rows}, 500, "$kind: 500 pending rows");
}
$node->safe_psql($db, 'CHECKPOINT');
for my $kind (@kinds)
{
	$node->safe_psql($db, qq{
		INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(3000501, 3000600) i;
	});
	$gen{$kind} = index_info($node, $db, "t_${kind}_idx")->{generation};
	my $rows = $node->safe_psql($db, "SELECT benzer_index_merge('t_${kind}_idx')");
	my $count = $node->safe_psql($db, "SELECT count(*) FROM t_$kind");
	is($rows, $count, "$kind: benzer_index_merge returns the row count");
}
crash_and_restart('crash after merge');
for my $kind (@kinds)
{
	my $info = index_info($node, $db, "t_${kind}_idx");
	is($info->{pending_rows}, 0, "$kind: after merge crash: no pending rows");
	is($info->{generation}, $gen{$kind} + 1, "$kind: after merge crash: the merge's generation");
	check_table($kind, 'after merge crash', 'id > 3000000 OR id % 40 = 0');
}

# --- 3b. Crash in the middle of a large merge ------------------------------
# Whether the merge got to switch the metapage or not, the index must be
# whole: either the old generation and all the pending rows, or the new one.
for my $kind (@kinds)
{
	$node->safe_psql($db, qq{
		INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(5000001, 5020000) i;
	});
}
$node->safe_psql($db, 'CHECKPOINT');
my @sessions;
for my $kind (@kinds)
{
	my $bg = quietly(sub { $node->background_psql($db, on_error_stop => 0) });
	quietly(sub {
		$bg->query_until(qr/started/,
			"\\echo started\nSELECT benzer_index_merge('t_${kind}_idx');\n");
	});
	push @sessions, $bg;
}
usleep(150_000);
crash_and_restart('crash during merge');
for my $bg (@sessions) { eval { quietly(sub { $bg->quit }) }; }
for my $kind (@kinds)
{
	my $info = index_info($node, $db, "t_${kind}_idx");
	note "$kind: after a crash during merge: rows $info->{rows}, pending $info->{pending_rows}, generation $info->{generation}";
	check_table($kind, 'after crash during merge', 'id > 5019000 OR id % 40 = 0');
	sql_ok($node, $db, "SELECT benzer_index_merge('t_${kind}_idx')",
		"$kind: merge after a crash during merge succeeds");
	check_table($kind, 'after crash during merge, merged again', 'id % 60 = 0');
}

# --- 4. Crash right after VACUUM (tombstones), then after compaction -------
my %dead;
$node->safe_psql($db, 'CHECKPOINT');
for my $kind (@kinds)
{
	$node->safe_psql($db, "DELETE FROM t_$kind WHERE id % 10 = 5");
	my $info = index_info($node, $db, "t_${kind}_idx");
	$node->safe_psql($db, "VACUUM t_$kind");
	my $after = index_info($node, $db, "t_${kind}_idx");
	$dead{$kind} = $after->{dead_rows};
	cmp_ok($dead{$kind}, '>', 300, "$kind: VACUUM tombstoned $dead{$kind} rows");
	is($after->{generation}, $info->{generation}, "$kind: no compaction for 10% dead rows");
}
crash_and_restart('crash after VACUUM');
for my $kind (@kinds)
{
	my $info = index_info($node, $db, "t_${kind}_idx");
	is($info->{dead_rows}, $dead{$kind}, "$kind: after VACUUM crash: dead_rows survived");
	# Rows that reuse the freed heap slots must not be found under the
	# tombstoned labels.
	$node->safe_psql($db, qq{
		INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(4000001, 4000400) i;
	});
	check_table($kind, 'after VACUUM crash and reinsert', 'id > 4000000 OR id % 30 = 0');
}

$node->safe_psql($db, 'CHECKPOINT');
for my $kind (@kinds)
{
	# VACUUM never rewrites an index whose lists live in pages; the
	# compaction is asked for.
	$node->safe_psql($db, "DELETE FROM t_$kind WHERE id % 10 IN (1, 2, 3)");
	sql_ok($node, $db, "VACUUM t_$kind", "$kind: VACUUM with 40 % of the rows dead succeeds");
	sql_ok($node, $db, "SELECT benzer_index_merge('t_${kind}_idx', true)",
		"$kind: compaction succeeds");
	my $info = index_info($node, $db, "t_${kind}_idx");
	is($info->{dead_rows}, 0, "$kind: compaction dropped the dead rows");
}
crash_and_restart('crash after compaction');
for my $kind (@kinds)
{
	my $info = index_info($node, $db, "t_${kind}_idx");
	is($info->{dead_rows}, 0, "$kind: after compaction crash: no dead rows");
	is($info->{rows} + $info->{pending_rows},
		$node->safe_psql($db, "SELECT count(*) FROM t_$kind"),
		"$kind: after compaction crash: index rows = table rows");
	check_table($kind, 'after compaction crash', 'id % 20 = 4');
}

# --- 4b. Unlogged tables ---------------------------------------------------
# After a crash an unlogged table is reset to its init fork: empty, with an
# empty faiss index (written by ambuildempty) that must work as a new one.
for my $kind (@kinds)
{
	$node->safe_psql($db, qq{
		CREATE UNLOGGED TABLE u_$kind (id int PRIMARY KEY, v vector($dim));
		INSERT INTO u_$kind SELECT i, rv(i, $dim) FROM generate_series(1, 2000) i;
		CREATE INDEX u_${kind}_idx ON u_$kind USING faiss (v) WITH ($factory{$kind});
		INSERT INTO u_$kind SELECT i, rv(i, $dim) FROM generate_series(2001, 2100) i;
		CHECKPOINT;
	});
	is(index_info($node, $db, "u_${kind}_idx")->{rows}, 2000, "$kind: unlogged: index built");
}
crash_and_restart('crash with unlogged tables');
for my $kind (@kinds)
{
	my $t = "u_$kind";
	is($node->safe_psql($db, "SELECT count(*) FROM $t"), 0, "$kind: unlogged: table reset");
	my $info = index_info($node, $db, "${t}_idx");
	is("$info->{rows} $info->{pending_rows} $info->{dead_rows}", "0 0 0",
		"$kind: unlogged: index reset to empty");
	my @r = full_scan($node, $db, $t, $dim);
	is("@r", "0 0 0", "$kind: unlogged: empty index scan");
	$node->safe_psql($db, "INSERT INTO $t SELECT i, rv(i, $dim) FROM generate_series(1, 1500) i");
	sql_ok($node, $db, "SELECT benzer_index_merge('${t}_idx')",
		"$kind: unlogged: merge of the refilled index succeeds");
	$info = index_info($node, $db, "${t}_idx");
	is("$info->{rows} $info->{pending_rows}", "1500 0", "$kind: unlogged: 1500 rows merged");
	@r = full_scan($node, $db, $t, $dim);
	is("@r", "1500 1500 1500", "$kind: unlogged: all rows found once");
	my ($checked, $misses) = self_nn_misses($node, $db, $t, 'id % 10 = 0');
	is("$checked $misses", "150 0", "$kind: unlogged: each row is its own nearest neighbour");
}

# --- 4c. halfvec, sparsevec and bit keys -----------------------------------
# The index converts these keys to floats before they reach the pages and
# WAL; after a crash, built and pending rows of each must all be found, and
# the order must be an exact scan's.
my %key_index = (
	h => ["halfvec($dim)", "rv(i, $dim)::halfvec($dim)", "", '<->', "rv(7, $dim)::halfvec($dim)"],
	s => ["sparsevec($dim)", "(rv(i, $dim)::vector($dim))::sparsevec($dim)", 'sparsevec_ip_ops', '<#>',
		"rv(7, $dim)::sparsevec($dim)"],
	b => ["bit($dim)", "binary_quantize(rv(i, $dim))::bit($dim)", 'bit_hamming_ops', '<~>',
		"binary_quantize(rv(7, $dim))::bit($dim)"],
);
for my $col (sort keys %key_index)
{
	my ($type, $value, $opclass) = @{ $key_index{$col} };
	$node->safe_psql($db, qq{
		CREATE TABLE k_$col (id int PRIMARY KEY, k $type);
		INSERT INTO k_$col SELECT i, $value FROM generate_series(1, 1500) i;
		CREATE INDEX k_${col}_idx ON k_$col USING faiss (k $opclass) WITH (factory = 'Flat');
		INSERT INTO k_$col SELECT i, $value FROM generate_series(1501, 1600) i;
	});
}
crash_and_restart('crash with halfvec, sparsevec and bit indexes');
for my $col (sort keys %key_index)
{
	my ($type, $value, $opclass, $op, $query) = @{ $key_index{$col} };
	my $t = "k_$col";
	my $info = index_info($node, $db, "${t}_idx");
	is($info->{rows} + $info->{pending_rows}, 1600, "$type: 1600 rows in the index after the crash");
	my $order = "SELECT round((k $op $query)::numeric, 3) FROM $t ORDER BY k $op $query LIMIT 1600";
	ok(index_used($node, $db, $order, "${t}_idx"), "$type: the faiss index is used");
	my $by_index = $node->safe_psql($db, "SET enable_seqscan = off; SET benzer.max_scan_tuples = 100000; $order");
	my $exact = $node->safe_psql($db, "SET enable_indexscan = off; $order");
	is(scalar(split /\n/, $by_index), 1600, "$type: the index returns every row");
	is($by_index, $exact, "$type: in the order of an exact scan");
}

my @problems = server_log_problems($node);
is(scalar(@problems), 0, 'no crash or corruption in the server log')
  or diag(join("\n", @problems));
$node->stop;

# --- 5. wal_level = minimal ------------------------------------------------
# Relations created by a transaction are synced (or logged whole) at
# commit instead of WAL-logged page by page.
my $minimal = PostgreSQL::Test::Cluster->new('crash_minimal');
$minimal->init;    # wal_level = minimal
$minimal->append_conf('postgresql.conf', "autovacuum = off\n");
$minimal->start;
benzer_setup_db($minimal, $db);
$node = $minimal;    # for the helpers above
for my $kind (@kinds)
{
	$minimal->safe_psql($db, qq{
		BEGIN;
		CREATE TABLE t_$kind (id int PRIMARY KEY, v vector($dim));
		INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(1, 3000) i;
		CREATE INDEX t_${kind}_idx ON t_$kind USING faiss (v) WITH ($factory{$kind});
		COMMIT;
		INSERT INTO t_$kind SELECT i, rv(i, $dim) FROM generate_series(3001, 3200) i;
	});
}
crash_and_restart('wal_level=minimal: crash after build');
for my $kind (@kinds)
{
	my $info = index_info($node, $db, "t_${kind}_idx");
	is($info->{rows}, 3000, "$kind: wal_level=minimal: 3000 rows in the index");
	is($info->{pending_rows}, 200, "$kind: wal_level=minimal: 200 pending rows");
	check_table($kind, 'wal_level=minimal: after crash', 'id % 20 = 0 OR id > 3000');
}
# REINDEX in a committed transaction, then a crash.
for my $kind (@kinds)
{
	$minimal->safe_psql($db, "REINDEX INDEX t_${kind}_idx");
}
crash_and_restart('wal_level=minimal: crash after REINDEX');
for my $kind (@kinds)
{
	my $info = index_info($node, $db, "t_${kind}_idx");
	is($info->{rows}, 3200, "$kind: after REINDEX crash: 3200 rows in the index");
	check_table($kind, 'wal_level=minimal: after REINDEX crash', 'id % 20 = 0 OR id > 3000');
}
# --- 6. A stale free space map after a crash -----------------------------
# The free space map is not WAL-logged: after a crash it can list pages as
# free that were taken just before (here: the page the pending rows went to
# after a merge freed the old pending pages and a checkpoint wrote the map).
# Such a page is the pending chain's tail after the restart; when it fills
# up, the insert that needs a new page must not be handed the tail itself.
$minimal->safe_psql($db, qq{
	CREATE TABLE fsm_t (id int PRIMARY KEY, v vector($dim));
	INSERT INTO fsm_t SELECT i, rv(i, $dim) FROM generate_series(1, 2000) i;
	CREATE INDEX fsm_t_idx ON fsm_t USING faiss (v) WITH (factory = 'Flat');
	INSERT INTO fsm_t SELECT i, rv(i, $dim) FROM generate_series(2001, 2300) i;
	SELECT benzer_index_merge('fsm_t_idx');
	CHECKPOINT;
	INSERT INTO fsm_t SELECT i, rv(i, $dim) FROM generate_series(2301, 2310) i;
});
crash_and_restart('crash with a stale free space map');
is(index_info($minimal, $db, 'fsm_t_idx')->{pending_rows}, 10, 'stale FSM: 10 pending rows');
my $timed_out = 0;
my ($ret, $out, $err) = $minimal->psql($db,
	"INSERT INTO fsm_t SELECT i, rv(i, $dim) FROM generate_series(2311, 2600) i",
	timeout => 30, timed_out => \$timed_out);
ok(!$timed_out, 'stale FSM: an insert that needs a new pending page does not hang');
if ($timed_out)
{
	diag('hung backend: ' . $minimal->safe_psql($db, qq{
		SELECT pid, wait_event_type, wait_event, query FROM pg_stat_activity
		WHERE query LIKE 'INSERT INTO fsm_t%'}));
	# It waits for a buffer lock it holds itself, and cannot be cancelled.
	crash_and_restart('clearing the hung backend');
}
else
{
	is($ret, 0, 'stale FSM: the insert succeeds') or diag($err);
	my @r = full_scan($minimal, $db, 'fsm_t', $dim);
	is("@r", "2600 2600 2600", 'stale FSM: all rows found once');
	my $info = index_info($minimal, $db, 'fsm_t_idx');
	is("$info->{rows} $info->{pending_rows}", "2300 300", 'stale FSM: 300 pending rows');
	my ($checked, $misses) = self_nn_misses($minimal, $db, 'fsm_t', 'id > 2300 OR id % 50 = 0');
	is("$checked $misses", "346 0", 'stale FSM: each row is its own nearest neighbour');
}

@problems = server_log_problems($minimal);
is(scalar(@problems), 0, 'wal_level=minimal: no crash or corruption in the server log')
  or diag(join("\n", @problems));
$minimal->stop;

done_testing();
