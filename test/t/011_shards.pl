# A similarity query over shards on other servers (issue 13): partitioned
# tables on a coordinator whose partitions are postgres_fdw foreign tables
# on two servers with benzer and faiss indexes (and, for Fashion-MNIST, one
# local partition), plus a streaming replica of one shard. Checked:
#
# - benzer's plan (Custom Scan BenzerShardMerge): each shard gets its own
#   ORDER BY ... LIMIT k, asynchronously; EXPLAIN shows it;
# - its answers equal a single node's exact answers over the same rows, on
#   random vectors and on Fashion-MNIST, without and with filters (on the
#   shards' filter columns and on other columns, 1 % to 80 %), with
#   prepared statements' parameters, in correlated subqueries (rescans);
# - the search settings (benzer.nprobe) reach the shards for the query;
# - shapes it does not cover (OFFSET, WHERE conditions that cannot ship,
#   benzer.shard_pushdown off) keep PostgreSQL's plan and the same answers;
# - a replica of a shard answers what the primary answers;
# - a stopped shard makes the query fail with an error naming it (never a
#   silent partial answer), and it works again once the shard is back.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use BenzerTAP;

my $db = 'postgres';
my $dim = 16;
my $fm_rows = 3000;
my $fm_data = '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz';

# postgres_fdw ships with the server package's contrib modules, and
# scripts/cassert.sh builds it into its PostgreSQL; one built without it
# leaves this test nothing to run against.
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
plan skip_all => "postgres_fdw is not installed in this PostgreSQL ($sharedir)"
  unless -e "$sharedir/extension/postgres_fdw.control";

plan skip_all => "Fashion-MNIST is not installed ($fm_data: apt-get install dataset-fashion-mnist)"
  unless -e $fm_data;

my @shards;
for my $name ('shard_a', 'shard_b')
{
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(allows_streaming => 1);
	$node->append_conf('postgresql.conf', "autovacuum = off\n");
	$node->start;
	benzer_setup_db($node, $db);
	$node->safe_psql($db, "CREATE TABLE items (id int PRIMARY KEY, cat int, v vector($dim))");
	$node->safe_psql($db, "CREATE TABLE fm (id int PRIMARY KEY, label int, v vector(784))");
	push @shards, $node;
}

my $coord = PostgreSQL::Test::Cluster->new('coordinator');
$coord->init;
$coord->append_conf('postgresql.conf', "autovacuum = off\n");
$coord->start;
benzer_setup_db($coord, $db);
$coord->safe_psql($db, 'CREATE EXTENSION postgres_fdw');
$coord->safe_psql($db, "CREATE TABLE items (id int, cat int, v vector($dim)) PARTITION BY HASH (id)");
for my $i (0 .. 1)
{
	my $shard = $shards[$i];
	my $server = $shard->name;
	$coord->safe_psql(
		$db, qq{
		CREATE SERVER $server FOREIGN DATA WRAPPER postgres_fdw
			OPTIONS (host '@{[ $shard->host ]}', port '@{[ $shard->port ]}', dbname '$db',
			         extensions 'benzer', async_capable 'true', batch_size '200');
		CREATE USER MAPPING FOR CURRENT_USER SERVER $server;
		CREATE FOREIGN TABLE items_$i PARTITION OF items
			FOR VALUES WITH (MODULUS 2, REMAINDER $i) SERVER $server OPTIONS (table_name 'items');
	});
}

# Rows go through the coordinator to their shard; a single-node copy keeps
# them all.
$coord->safe_psql(
	$db, qq{
	INSERT INTO items SELECT i, i % 10, rv(i, $dim) FROM generate_series(1, 3000) i;
	CREATE TABLE single AS SELECT * FROM items;
});
my @counts = map { $_->safe_psql($db, 'SELECT count(*) FROM items') } @shards;
ok($counts[0] > 1000 && $counts[1] > 1000 && $counts[0] + $counts[1] == 3000,
	"the rows are split between the shards (@counts)");
for my $shard (@shards)
{
	$shard->safe_psql($db,
		"CREATE INDEX items_faiss ON items USING faiss (v, cat) WITH (factory = 'Flat')");
}

like(
	$coord->safe_psql($db,
		"EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items ORDER BY v <-> rv(1, $dim) LIMIT 10"),
	qr/Remote SQL: .*ORDER BY \(v OPERATOR\(public\.<->\)/,
	'the distance ordering ships to the shards');

like(
	$shards[0]->safe_psql($db,
		"BEGIN; EXPLAIN (COSTS OFF) DECLARE c CURSOR FOR SELECT id, v FROM items "
		  . "ORDER BY v OPERATOR(public.<->) rv(1, $dim) ASC NULLS LAST; ROLLBACK"),
	qr/Index Scan using items_faiss/,
	"a shard answers the coordinator's cursor with its faiss index");

# The coordinator's answers against the single node's exact ones.
sub compare
{
	my ($where, $op, $table, $single) = @_;
	$table //= 'items';
	$single //= 'single';
	my $differ = 0;
	for my $seed (9001 .. 9010)
	{
		my $q = "SELECT string_agg(id || ':' || round(d::numeric, 4), ',') FROM "
		  . "(SELECT id, v $op rv($seed, $dim) AS d FROM TABLE $where "
		  . "ORDER BY v $op rv($seed, $dim) LIMIT 10) x";
		my $sharded = $coord->safe_psql($db, $q =~ s/TABLE/$table/r);
		my $one = $coord->safe_psql($db, $q =~ s/TABLE/$single/r);
		$differ++ if $sharded ne $one || $sharded eq '';
	}
	return $differ;
}

my $plan = $coord->safe_psql($db,
	"EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items WHERE cat = 3 ORDER BY v <-> rv(1, $dim) LIMIT 10");
like($plan, qr/Custom Scan \(BenzerShardMerge\)/, 'benzer plans the query over the shards');
like($plan, qr/Shards: shard_a, shard_b/, 'EXPLAIN names the shards');
is(scalar(() = $plan =~ /Async Foreign Scan/g), 2, 'both shards run asynchronously');
like($plan, qr/Remote SQL: .*WHERE \(\(cat = 3\)\) ORDER BY .* LIMIT 10::bigint/,
	'each shard gets the WHERE condition, the ORDER BY and the LIMIT');

like($plan, qr/Remote SQL: SELECT id, \(v OPERATOR\(public\.<->\)/,
	'the shards send back the distance, not the vector');
unlike($plan, qr/Settings Sent/, 'with the search settings at their defaults none are sent');
like(
	$coord->safe_psql($db,
		"SET benzer.nprobe = 4; EXPLAIN (VERBOSE, COSTS OFF) SELECT id FROM items ORDER BY v <-> rv(1, $dim) LIMIT 10"),
	qr/Settings Sent: .*benzer\.nprobe/,
	'with one set, the search settings go to the shards');

is(compare('', '<->'), 0, 'L2, no filter: the shards answer what a single node answers');
is(compare('WHERE cat = 3', '<->'), 0, 'L2, a 10 % filter on a filter column: the same');
is(compare('WHERE cat < 8', '<=>'), 0, 'cosine, an 80 % filter: the same');
is(compare('WHERE cat = 3 AND id % 100 < 10', '<->'), 0,
	'a 1 % filter, partly on a column that is not a filter column: the same');
is(compare('WHERE id > 1500', '<#>'), 0, 'inner product, a range on id: the same');

# Shapes benzer leaves to PostgreSQL: the same answers through its plan.
like(
	$coord->safe_psql($db,
		"EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> rv(1, $dim) LIMIT 10 OFFSET 5"),
	qr/Merge Append/,
	'OFFSET: PostgreSQL\'s plan');
like(
	$coord->safe_psql($db,
		"EXPLAIN (COSTS OFF) SELECT id FROM items WHERE random() < 2 ORDER BY v <-> rv(1, $dim) LIMIT 10"),
	qr/Merge Append/,
	'a condition that cannot run on a shard: PostgreSQL\'s plan (a shard\'s LIMIT would lose rows)');
$coord->safe_psql($db, 'ALTER DATABASE postgres SET benzer.shard_pushdown = off');
like(
	$coord->safe_psql($db,
		"EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY v <-> rv(1, $dim) LIMIT 10"),
	qr/Merge Append/,
	'benzer.shard_pushdown off: PostgreSQL\'s plan');
is(compare('WHERE cat = 3', '<->'), 0, '... with the same answers');
$coord->safe_psql($db, 'ALTER DATABASE postgres RESET benzer.shard_pushdown');

# Prepared statements: the query vector, a filter value and the LIMIT are
# parameters, and postgres_fdw sends them to the shards as such.
my $prepared = $coord->safe_psql(
	$db, qq{
	SET plan_cache_mode = force_generic_plan;
	PREPARE near(vector, int, bigint) AS
		SELECT string_agg(id::text, ',') FROM
		(SELECT id FROM items WHERE cat = \$2 ORDER BY v <-> \$1 LIMIT \$3) x;
	EXECUTE near(rv(77, $dim), 4, 7);
	EXECUTE near(rv(78, $dim), 5, 12);
});
my $expected = $coord->safe_psql(
	$db, qq{
	SELECT string_agg(id::text, ',') FROM
		(SELECT id FROM single WHERE cat = 4 ORDER BY v <-> rv(77, $dim) LIMIT 7) x;
	SELECT string_agg(id::text, ',') FROM
		(SELECT id FROM single WHERE cat = 5 ORDER BY v <-> rv(78, $dim) LIMIT 12) x;
});
is($prepared, $expected, 'a generic plan with parameters: the same answers');

# A correlated subquery rescans the plan with a new query vector each row.
is( $coord->safe_psql(
		$db, q{
	SELECT count(*) FILTER (WHERE a IS DISTINCT FROM b) FROM (
		SELECT (SELECT array_agg(id) FROM
		          (SELECT id FROM items WHERE cat = q.cat ORDER BY v <-> q.v LIMIT 3) x) a,
		       (SELECT array_agg(id) FROM
		          (SELECT id FROM single WHERE cat = q.cat ORDER BY v <-> q.v LIMIT 3) y) b
		FROM single q WHERE q.id <= 60) z}),
	'0',
	'a correlated subquery (a rescan per row): the same answers');

# The search settings reach the shards. With an IVF index on each shard,
# nprobe = 1 answers from one list per shard; the coordinator's answer must
# be the merge of what each shard answers with that setting.
for my $shard (@shards)
{
	$shard->safe_psql($db,
		"DROP INDEX items_faiss; CREATE INDEX items_faiss ON items USING faiss (v, cat) "
		  . "WITH (factory = 'IVF16,Flat')");
}
my ($as_shards, $approximate) = (0, 0);
for my $seed (9101 .. 9110)
{
	my $near = "SELECT id, v <-> rv($seed, $dim) AS d FROM items ORDER BY v <-> rv($seed, $dim) LIMIT 10";
	my @rows;
	for my $shard (@shards)
	{
		push @rows, map { [ split /\|/ ] }
		  split /\n/, $shard->safe_psql($db, "SET benzer.nprobe = 1; $near");
	}
	my @merged = (sort { $a->[1] <=> $b->[1] } @rows)[ 0 .. 9 ];
	my $sharded = $coord->safe_psql($db,
		"SET benzer.nprobe = 1; SELECT string_agg(id::text, ',') FROM ($near) x");
	$as_shards++ if $sharded eq join(',', map { $_->[0] } @merged);
	$approximate++ if $sharded ne $coord->safe_psql($db,
		"SELECT string_agg(id::text, ',') FROM (SELECT id FROM single ORDER BY v <-> rv($seed, $dim) LIMIT 10) x");
}
is($as_shards, 10, 'SET benzer.nprobe = 1 on the coordinator: the shards search with it');
ok($approximate > 0, "... which changes answers ($approximate of 10 differ from exact)");
$coord->safe_psql($db, 'ALTER DATABASE postgres SET benzer.nprobe = 16');
is(compare('', '<->'), 0,
	'benzer.nprobe = 16 for the coordinator\'s sessions: the shards probe every list (exact answers)');
$coord->safe_psql($db, 'ALTER DATABASE postgres RESET benzer.nprobe');
for my $shard (@shards)
{
	$shard->safe_psql($db,
		"DROP INDEX items_faiss; CREATE INDEX items_faiss ON items USING faiss (v, cat) "
		  . "WITH (factory = 'Flat')");
}

# Fashion-MNIST: hash-partitioned by id over the two shards and a local
# partition with its own faiss index, against a single-node copy.
my $fm_file = PostgreSQL::Test::Utils::tempdir() . '/fm.tsv';
system(
	'/usr/bin/python3', '-c', q{
import gzip, sys
import numpy as np
path, out, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = gzip.open(path).read()
images = np.frombuffer(raw[16:16 + rows * 784], dtype=np.uint8).reshape(rows, 784) / 255.0
labels = np.frombuffer(gzip.open(path.replace('images-idx3', 'labels-idx1')).read()[8:8 + rows], dtype=np.uint8)
with open(out, 'w') as f:
    for i in range(rows):
        f.write('%d\t%d\t[%s]\n' % (i + 1, labels[i], ','.join('%.4f' % x for x in images[i])))
}, $fm_data, $fm_file, $fm_rows) == 0
  or die "could not read Fashion-MNIST";
# The Fashion-MNIST layout: partition 0 on $first (shard_a or its
# replica), 1 on shard_b (both the shard's table fm), 2 a local table.
sub fm_layout
{
	my ($table, $first) = @_;
	return qq{
	CREATE TABLE $table (id int, label int, v vector(784)) PARTITION BY HASH (id);
	CREATE FOREIGN TABLE ${table}_0 PARTITION OF $table FOR VALUES WITH (MODULUS 3, REMAINDER 0)
		SERVER $first OPTIONS (table_name 'fm');
	CREATE FOREIGN TABLE ${table}_1 PARTITION OF $table FOR VALUES WITH (MODULUS 3, REMAINDER 1)
		SERVER shard_b OPTIONS (table_name 'fm');
	CREATE TABLE ${table}_2 PARTITION OF $table FOR VALUES WITH (MODULUS 3, REMAINDER 2);};
}
$coord->safe_psql(
	$db, qq{
	CREATE TABLE fm_single (id int PRIMARY KEY, label int, v vector(784));
	COPY fm_single FROM '$fm_file';
	@{[ fm_layout('fm', 'shard_a') ]}
	INSERT INTO fm SELECT * FROM fm_single;
	CREATE INDEX fm_2_faiss ON fm_2 USING faiss (v, label) WITH (factory = 'Flat');
	ANALYZE fm_single, fm_2;
});
for my $shard (@shards)
{
	$shard->safe_psql($db,
		"CREATE INDEX fm_faiss ON fm USING faiss (v, label) WITH (factory = 'Flat'); ANALYZE fm");
}
my @fm_counts = (
	(map { $_->safe_psql($db, 'SELECT count(*) FROM fm') } @shards),
	$coord->safe_psql($db, 'SELECT count(*) FROM fm_2'));
ok($fm_counts[0] > 800 && $fm_counts[1] > 800 && $fm_counts[2] > 800,
	"Fashion-MNIST rows split over two shards and a local partition (@fm_counts)");

my $fm_plan = $coord->safe_psql($db,
	"EXPLAIN (COSTS OFF) SELECT id FROM fm ORDER BY v <-> (SELECT v FROM fm_single WHERE id = 1) LIMIT 10");
like($fm_plan, qr/BenzerShardMerge.*Async Foreign Scan.*Async Foreign Scan.*Limit.*Index Scan using fm_2_faiss/s,
	'the local partition is read through its own faiss index under the same merge');

# "Similar to :id", as the app asks it, on Fashion-MNIST.
sub compare_fm
{
	my ($where, $table) = @_;
	my $differ = 0;
	for my $qid (5, 50, 500, 1234, 2999)
	{
		my $q = "SELECT string_agg(id || ':' || round(d::numeric, 4), ',') FROM "
		  . "(SELECT id, v <-> (SELECT v FROM fm_single WHERE id = $qid) AS d FROM TABLE $where "
		  . "ORDER BY v <-> (SELECT v FROM fm_single WHERE id = $qid) LIMIT 10) x";
		my $sharded = $coord->safe_psql($db, $q =~ s/TABLE/$table/r);
		my $single = $coord->safe_psql($db, $q =~ s/TABLE/fm_single/r);
		$differ++ if $sharded ne $single || $sharded eq '';
	}
	return $differ;
}
is(compare_fm('', 'fm'), 0, 'Fashion-MNIST, no filter: the single node\'s answers');
is(compare_fm('WHERE label = 7', 'fm'), 0, 'Fashion-MNIST, one label (10 %): the same');
is(compare_fm('WHERE label IN (0, 2, 4, 6)', 'fm'), 0, 'Fashion-MNIST, four labels (40 %): the same');
is(compare_fm('WHERE label = 7 AND id % 10 = 3', 'fm'), 0, 'Fashion-MNIST, 1 %: the same');

# A streaming replica of shard_a serves the same shard for reads: a second
# partitioned table reads partition 0 from it.
my $primary = $shards[0];
$primary->backup('shard_a_backup');
my $replica = PostgreSQL::Test::Cluster->new('shard_a_replica');
$replica->init_from_backup($primary, 'shard_a_backup', has_streaming => 1);
$replica->start;
$primary->wait_for_catchup($replica);
$coord->safe_psql(
	$db, qq{
	CREATE SERVER shard_a_replica FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '@{[ $replica->host ]}', port '@{[ $replica->port ]}', dbname '$db',
		         extensions 'benzer', async_capable 'true');
	CREATE USER MAPPING FOR CURRENT_USER SERVER shard_a_replica;
	@{[ fm_layout('fm_reads', 'shard_a_replica') ]}
	INSERT INTO fm_reads_2 SELECT * FROM fm_2;
	CREATE INDEX ON fm_reads_2 USING faiss (v, label) WITH (factory = 'Flat');
});
like(
	$coord->safe_psql($db,
		"EXPLAIN (COSTS OFF) SELECT id FROM fm_reads ORDER BY v <-> (SELECT v FROM fm_single WHERE id = 1) LIMIT 10"),
	qr/Shards: shard_a_replica, shard_b/,
	'a partitioned table can read a shard from its replica');
is(compare_fm('', 'fm_reads'), 0, 'the replica of a shard answers what the primary answers');
is(compare_fm('WHERE label = 7', 'fm_reads'), 0, '... also under a filter');

# One statement per shard (benzer.shard_direct): outside a transaction
# block each shard gets its SQL as one statement on benzer's own
# connection; inside one, or after a write, postgres_fdw's remote
# transaction. Both answer the same.
my $near1 = "SELECT id FROM items WHERE cat = 3 ORDER BY v <-> rv(5, $dim) LIMIT 10";
like($coord->safe_psql($db, "EXPLAIN (ANALYZE, COSTS OFF) $near1"),
	qr/Shard Queries: one statement per shard/,
	'autocommit: one statement per shard');
like(
	$coord->safe_psql($db, "BEGIN; EXPLAIN (ANALYZE, COSTS OFF) $near1; COMMIT"),
	qr/Shard Queries: postgres_fdw remote transactions/,
	'in a transaction block: postgres_fdw\'s remote transactions');
like(
	$coord->safe_psql($db,
		"SET benzer.shard_direct = off; EXPLAIN (ANALYZE, COSTS OFF) $near1"),
	qr/Shard Queries: postgres_fdw remote transactions/,
	'benzer.shard_direct off: postgres_fdw\'s remote transactions');
my $same = 0;
for my $seed (9201 .. 9205)
{
	my $q = "SELECT string_agg(id || ':' || round(d::numeric, 4), ',') FROM "
	  . "(SELECT id, v <-> rv($seed, $dim) AS d FROM TABLE WHERE cat < 5 "
	  . "ORDER BY v <-> rv($seed, $dim) LIMIT 10) x";
	my $direct = $coord->safe_psql($db, $q =~ s/TABLE/items/r);
	my $in_block = $coord->safe_psql($db, 'BEGIN; ' . ($q =~ s/TABLE/items/r) . '; COMMIT');
	$same++ if $direct eq $in_block && $direct eq $coord->safe_psql($db, $q =~ s/TABLE/single/r);
}
is($same, 5, 'one statement per shard and remote transactions: the single node\'s answers');

# A transaction sees its own writes to the shards.
is( $coord->safe_psql(
		$db, qq{BEGIN;
		INSERT INTO items VALUES (100001, 3, rv(4242, $dim));
		SELECT id FROM items ORDER BY v <-> rv(4242, $dim) LIMIT 1;
		ROLLBACK}),
	'100001',
	'a transaction block sees the row it just wrote to a shard');
$coord->safe_psql(
	$db, qq{CREATE FUNCTION add_and_find(seed int) RETURNS int LANGUAGE plpgsql AS \$\$
	BEGIN
		INSERT INTO items VALUES (100000 + seed, 3, rv(seed, $dim));
		RETURN (SELECT id FROM items ORDER BY v <-> rv(seed, $dim) LIMIT 1);
	END \$\$});
is($coord->safe_psql($db, 'SELECT add_and_find(4343)'),
	'104343', '... and so does a function that writes, then searches, in one autocommit statement');
$coord->safe_psql($db, 'DELETE FROM items WHERE id > 100000; DROP FUNCTION add_and_find');

# A setting changed and reset within one session reaches the shard's
# connection both times.
for my $shard (@shards)
{
	$shard->safe_psql($db,
		"DROP INDEX items_faiss; CREATE INDEX items_faiss ON items USING faiss (v, cat) "
		  . "WITH (factory = 'IVF16,Flat')");
}
my $exact_near = $coord->safe_psql($db,
	"SELECT string_agg(id::text, ',') FROM (SELECT id FROM single ORDER BY v <-> rv(9101, $dim) LIMIT 10) x");
my $near_sql = "SELECT string_agg(id::text, ',') FROM (SELECT id FROM items ORDER BY v <-> rv(9101, $dim) LIMIT 10) x";
my @session = split /\n/, $coord->safe_psql($db,
	"SET benzer.nprobe = 1; $near_sql; SET benzer.nprobe = 16; $near_sql; RESET benzer.nprobe; SET benzer.recall = 1; $near_sql");
isnt($session[0], $exact_near, 'one session, nprobe = 1: approximate answers');
is($session[1], $exact_near, '... nprobe = 16 on the same connections: exact answers');
is($session[2], $exact_near, '... RESET, then recall = 1: exact answers');
for my $shard (@shards)
{
	$shard->safe_psql($db,
		"DROP INDEX items_faiss; CREATE INDEX items_faiss ON items USING faiss (v, cat) "
		  . "WITH (factory = 'Flat')");
}

# Cancelling the coordinator's query cancels the shards' statements, and
# the session goes on. The shard's table is a view that sleeps per row.
$shards[0]->safe_psql($db,
	"CREATE VIEW slow_items AS SELECT id, cat, v FROM items WHERE pg_sleep(0.5 + 0 * id) IS NOT NULL");
$coord->safe_psql(
	$db, qq{
	CREATE TABLE slow (id int, cat int, v vector($dim)) PARTITION BY HASH (id);
	CREATE FOREIGN TABLE slow_0 PARTITION OF slow FOR VALUES WITH (MODULUS 2, REMAINDER 0)
		SERVER shard_a OPTIONS (table_name 'slow_items');
	CREATE FOREIGN TABLE slow_1 PARTITION OF slow FOR VALUES WITH (MODULUS 2, REMAINDER 1)
		SERVER shard_b OPTIONS (table_name 'items');
});
my $cancelled = $coord->psql(
	$db, qq{
	SET statement_timeout = '300ms';
	SELECT id FROM slow ORDER BY v <-> rv(7, $dim) LIMIT 10;
	RESET statement_timeout;
	SELECT count(*) FROM (SELECT id FROM items ORDER BY v <-> rv(7, $dim) LIMIT 10) x;
}, stdout => \my $cancel_out, stderr => \my $cancel_err, on_error_stop => 0);
like($cancel_err, qr/canceling statement due to statement timeout/,
	'statement_timeout cancels a slow shard merge');
is($cancel_out, '10', '... and the session searches again on new connections');
ok( $shards[0]->poll_query_until(
		$db, "SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE '%slow_items%' AND pid <> pg_backend_pid()"),
	'... and the shard\'s statement was cancelled, not left running');

# A shard restarted under an open session: its connection is found
# broken and opened again.
my $bindir = `pg_config --bindir`;
chomp $bindir;
my $datadir = $shards[1]->data_dir;
my $logfile = $shards[1]->logfile;
my @restart = split /\n/, $coord->safe_psql(
	$db, qq{
	$near_sql;
	\\! $bindir/pg_ctl -D $datadir -l $logfile -w -m fast restart >/dev/null
	$near_sql;
});
is_deeply(\@restart, [ $exact_near, $exact_near ],
	'a shard restarted under an open session: the next search reconnects and answers');

# A stopped shard: an error naming it, then answers again.
$shards[1]->stop('fast');
my ($ret, $out, $err) = $coord->psql($db,
	"SELECT id FROM fm ORDER BY v <-> (SELECT v FROM fm_single WHERE id = 1) LIMIT 10");
isnt($ret, 0, 'with a shard stopped the query fails (no partial answer)');
like($err, qr/shard_b/, "the error names the shard: $err");
$shards[1]->start;
is(compare_fm('WHERE label = 7', 'fm'), 0, 'with the shard back, the answers are whole again');
is(compare('', '<->'), 0, '... on both tables');

$coord->stop;
$replica->stop;
$_->stop for @shards;
done_testing();
