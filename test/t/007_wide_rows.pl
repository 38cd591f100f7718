# Vectors wider than a page (2 048 dimensions): IVF list entries straddle
# list pages, and inserted rows (in list tails) keep their vectors out of
# line, in page chains of their own. Those chains are WAL-logged like every other page:
# a streaming standby replays them and answers as the primary does, a
# crash (immediate stop) loses none, and VACUUM and merges free them so
# that repeated insert / delete / merge cycles reuse the pages instead of
# growing the index.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BenzerTAP;

my $dim = 2048;
my $db = 'postgres';
my $idx = 'wide_idx';

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
autovacuum = off
shared_buffers = 32MB
maintenance_work_mem = 256MB
});
$primary->start;
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;

benzer_setup_db($primary, $db);
$primary->safe_psql($db, qq{
	CREATE TABLE wide (id int PRIMARY KEY, v vector($dim));
	INSERT INTO wide SELECT i, rv(i, $dim) FROM generate_series(1, 800) i;
	CREATE INDEX $idx ON wide USING faiss (v) WITH (factory = 'IVF8,Flat');
});

# The standby answers as the primary, and both indexes agree with the table.
sub compare
{
	my ($what) = @_;
	$primary->wait_for_catchup($standby);
	is(index_check($primary, $db, $idx), '', "$what: benzer_index_check on the primary");
	is(index_check($standby, $db, $idx), '', "$what: benzer_index_check on the standby");
	my $bad = 0;
	for my $seed (900001 .. 900004)
	{
		my $want = exact_topk($primary, $db, 'wide', $seed, $dim, 10);
		my $p = topk($primary, $db, 'wide', $seed, $dim, 10, extra_sql => 'SET benzer.recall = 1;');
		my $s = topk($standby, $db, 'wide', $seed, $dim, 10, extra_sql => 'SET benzer.recall = 1;');
		if ($p ne $want || $s ne $want)
		{
			$bad++;
			diag("$what: rv($seed): exact\n$want\nprimary\n$p\nstandby\n$s");
		}
	}
	is($bad, 0, "$what: exact top-10 on the primary and the standby");
	my ($checked, $misses) = self_nn_misses($standby, $db, 'wide', 'id % 50 = 3 OR id > 800');
	is($misses, 0, "$what: on the standby, each of $checked rows is its own nearest neighbour");
	return;
}

compare('build');

$primary->safe_psql($db,
	"INSERT INTO wide SELECT i, rv(i, $dim) FROM generate_series(801, 1000) i");
is(index_info($primary, $db, $idx)->{pending_rows}, 200, '200 wide inserted rows');
like($primary->safe_psql($db, "SELECT description FROM benzer_index_info('$idx')"),
	qr/200 rows inserted into list tails/, '... in list tails');
compare('wide inserted rows');

# Crash with inserted rows written, and more inserted by an open transaction.
my $open = quietly(sub { $primary->background_psql($db, on_error_stop => 0) });
quietly(sub {
	$open->query_safe(
		"BEGIN; INSERT INTO wide SELECT i, rv(i, $dim) FROM generate_series(5001, 5050) i");
});
$primary->stop('immediate');
eval { quietly(sub { $open->quit }) };
$primary->start;
cmp_ok(index_info($primary, $db, $idx)->{pending_rows}, '>=', 200,
	'after a crash: the committed inserted rows are in the index');
is($primary->safe_psql($db, 'SELECT count(*) FROM wide'), 1000,
	'... and the open transaction\'s rows are not in the table');
compare('after a crash');

# Insert / delete / VACUUM / merge cycles: freed chains are reused.
my @sizes;
for my $cycle (1 .. 3)
{
	$primary->safe_psql($db, qq{
		DELETE FROM wide WHERE id > 800;
		VACUUM wide;
		INSERT INTO wide SELECT i, rv(i + $cycle, $dim) FROM generate_series(801, 1000) i;
		SELECT benzer_index_merge('$idx');
	});
	push @sizes, $primary->safe_psql($db, "SELECT pg_relation_size('$idx') / 8192");
}
note("index pages after each cycle: @sizes");
cmp_ok($sizes[2], '<=', $sizes[0] * 1.25, 'repeated cycles reuse pages');
compare('after insert / delete / merge cycles');

$primary->safe_psql($db, "DELETE FROM wide WHERE id % 3 = 0; VACUUM wide");
compare('after DELETE and VACUUM');

# VACUUM alone (no merge) frees the out-of-line vectors of deleted tail
# rows: as many rows inserted again reuse their pages.
$primary->safe_psql($db,
	"INSERT INTO wide SELECT i, rv(i, $dim) FROM generate_series(2001, 2200) i");
my $grown = $primary->safe_psql($db, "SELECT pg_relation_size('$idx') / 8192");
$primary->safe_psql($db, qq{
	DELETE FROM wide WHERE id > 2000;
	VACUUM wide;
	INSERT INTO wide SELECT i, rv(i + 5, $dim) FROM generate_series(2001, 2200) i;
});
my $again = $primary->safe_psql($db, "SELECT pg_relation_size('$idx') / 8192");
note("index pages with 200 tail rows: $grown, after deleting them, VACUUM and 200 more: $again");
cmp_ok($again, '<=', $grown + 20, 'VACUUM frees deleted tail rows\' out-of-line vectors for reuse');
compare('after VACUUM of wide tail rows');

is(join("\n", server_log_problems($primary)), '', 'no crash or corruption in the primary\'s log');
is(join("\n", server_log_problems($standby)), '', 'none in the standby\'s log');

$standby->stop;
$primary->stop;
done_testing();
