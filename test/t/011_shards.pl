# A similarity query over shards on other servers (issue 13): a
# hash-partitioned table on a coordinator whose partitions are postgres_fdw
# foreign tables on two servers with benzer and faiss indexes. Checked: the
# operators ship to the shards (the server's extensions option), the
# query's answers over the shards equal a single node's exact answers over
# the same rows, with and without filters on the shards' filter columns; a
# stopped shard makes the query fail with an error naming it (never a
# silent partial answer), and it works again once the shard is back.
#
# This is the plan PostgreSQL makes today (a Merge Append of the shards'
# ordered scans, bench/results/shard_groundwork_issue13.md); the test
# holds the answers any faster plan must keep.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use BenzerTAP;

my $db = 'postgres';
my $dim = 16;

# postgres_fdw ships with the server package's contrib modules; a
# PostgreSQL built from source without contrib (scripts/cassert.sh) has
# none, and this test then has nothing to run against.
my $sharedir = `pg_config --sharedir`;
chomp $sharedir;
plan skip_all => "postgres_fdw is not installed in this PostgreSQL ($sharedir)"
  unless -e "$sharedir/extension/postgres_fdw.control";

my @shards;
for my $name ('shard_a', 'shard_b')
{
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', "autovacuum = off\n");
	$node->start;
	benzer_setup_db($node, $db);
	$node->safe_psql($db, "CREATE TABLE items (id int PRIMARY KEY, cat int, v vector($dim))");
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
			         extensions 'benzer', async_capable 'true');
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
	my ($where, $op) = @_;
	my $differ = 0;
	for my $seed (9001 .. 9010)
	{
		my $q = "SELECT string_agg(id || ':' || round(d::numeric, 4), ',') FROM "
		  . "(SELECT id, v $op rv($seed, $dim) AS d FROM %s $where "
		  . "ORDER BY v $op rv($seed, $dim) LIMIT 10) x";
		my $sharded = $coord->safe_psql($db, sprintf($q, 'items'));
		my $single = $coord->safe_psql($db, sprintf($q, 'single'));
		$differ++ if $sharded ne $single || $sharded eq '';
	}
	return $differ;
}
is(compare('', '<->'), 0, 'L2, no filter: the shards answer what a single node answers');
is(compare('WHERE cat = 3', '<->'), 0, 'L2, a 10 % filter on a filter column: the same');
is(compare('WHERE cat < 8', '<=>'), 0, 'cosine, an 80 % filter: the same');

# A stopped shard: an error naming it, then answers again.
$shards[1]->stop('fast');
my ($ret, $out, $err) = $coord->psql($db,
	"SELECT id FROM items ORDER BY v <-> rv(1, $dim) LIMIT 10");
isnt($ret, 0, 'with a shard stopped the query fails (no partial answer)');
like($err, qr/shard_b/, "the error names the shard: $err");
$shards[1]->start;
is(compare('', '<->'), 0, 'with the shard back, the answers are whole again');

$coord->stop;
$_->stop for @shards;
done_testing();
