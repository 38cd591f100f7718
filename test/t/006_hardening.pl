# Hardening (issue 9): what an immediate stop, a crash during a merge or a
# cancel at a random moment may leave behind.
#
#   - an unlogged table's index reset by crash recovery, then VACUUM;
#   - servers stopped with "immediate" in the middle of merges: the pages
#     those merges wrote, and the free pages the (unlogged) free space map
#     lost, are reused, so the index does not grow with every crash;
#   - statements cancelled by statement_timeout at random points of an
#     index load, CREATE INDEX, a merge, benzer_kmeans and batch search:
#     the next statement is right, and one backend's memory after 50
#     cancelled loads is what it was after a few (nothing leaks, no cache
#     entry is left half-built).
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use BenzerTAP;

my $db = 'postgres';
my $dim = 16;

my $node = PostgreSQL::Test::Cluster->new('hardening');
$node->init;
$node->append_conf('postgresql.conf', qq{
autovacuum = off
checkpoint_timeout = 1h
max_wal_size = 1GB
shared_buffers = 16MB
});
$node->start;
benzer_setup_db($node, $db);

# --- an unlogged table's index after crash recovery -------------------------

$node->safe_psql($db, qq{
	CREATE UNLOGGED TABLE ul2 (id int, v vector(4), c int);
	CREATE INDEX ul2_idx ON ul2 USING faiss (v, c);
	INSERT INTO ul2 SELECT i, rv(i, 4), i % 5 FROM generate_series(1, 100) i;
});
$node->stop('immediate');
$node->start;
is($node->safe_psql($db, 'SELECT count(*) FROM ul2'), '0', 'unlogged table reset by recovery');
sql_ok($node, $db, qq{
	INSERT INTO ul2 SELECT i, rv(i, 4), i % 5 FROM generate_series(1, 10) i;
	VACUUM ul2;
	SELECT benzer_index_merge('ul2_idx');
}, 'unlogged: insert, VACUUM and merge after the reset');
is($node->safe_psql($db, qq{
	SET enable_seqscan = off;
	SELECT string_agg(id::text, ',' ORDER BY id) FROM
	  (SELECT id FROM ul2 WHERE c = 3 ORDER BY v <-> rv(3, 4) LIMIT 10) s}),
	'3,8', 'unlogged: filtered search after the reset');

# --- immediate stops in the middle of merges --------------------------------

$node->safe_psql($db, qq{
	CREATE TABLE big (id int, v vector($dim), c int);
	INSERT INTO big SELECT i, rv(i, $dim), i % 7 FROM generate_series(1, 60000) i;
	CREATE INDEX big_idx ON big USING faiss (v, c) WITH (factory = 'IVF64,Flat', nprobe = 64);
});
my $next_id = 60001;

# Adds rows, deletes some, and makes VACUUM tombstone them, so that the next
# merge rewrites the index.
sub churn
{
	my $last = $next_id + 1999;
	$node->safe_psql($db, qq{
		INSERT INTO big SELECT i, rv(i, $dim), i % 7 FROM generate_series($next_id, $last) i;
		DELETE FROM big WHERE id % 50 = $next_id % 50 AND id < $next_id;
	});
	$next_id = $last + 1;
	return;
}

sub index_bytes
{
	my ($disk, $faiss) = split /\|/, $node->safe_psql($db,
		"SELECT bytes_on_disk, faiss_bytes FROM benzer_index_info('big_idx')");
	return ($disk, $faiss);
}

my ($start_disk, $faiss_bytes) = index_bytes();
srand(9);
for my $round (1 .. 10)
{
	churn();
	my $bg = quietly(sub { $node->background_psql($db, on_error_stop => 0) });
	$bg->query_until(qr/started/, qq{\\echo started\nSELECT benzer_index_merge('big_idx', true);\n});
	usleep(50_000 + int(rand(600_000)));
	$node->stop('immediate');
	quietly(sub { eval { $bg->quit } });
	$node->start;
}
# Merges after the crashes, each writing a whole new generation.
for my $round (1 .. 5)
{
	churn();
	$node->safe_psql($db, "SELECT benzer_index_merge('big_idx', true)");
}
my ($disk, $faiss) = index_bytes();
note("index: $start_disk bytes at the start, $disk after 10 crashed and 5 clean merges "
	  . "($faiss bytes of Faiss data)");
# Up to about four generations: the one in use, the one being written, the
# free one before, and what crashes add until the index is past 3 * live.
cmp_ok($disk, '<=', 5 * $faiss + 8 * 1024 * 1024,
	'the index reuses the pages crashed merges left behind');
my ($rows, $distinct, $total) = full_scan($node, $db, 'big', $dim, seed => 7);
is($rows, $total, 'after the crashes the index returns every row');
is($distinct, $rows, '... once');

# --- cancels at random points -----------------------------------------------

my $s = quietly(sub { $node->background_psql($db, on_error_stop => 0) });
session_query($s, qq{
	CREATE FUNCTION backend_rss_kb() RETURNS bigint LANGUAGE sql AS
	\$\$ SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmRSS:\\s+(\\d+)'))[1]::bigint \$\$;
	SET client_min_messages = error;
});

# Runs $sql in the session under a statement_timeout of $ms; an error
# (the cancel, or none when it finished first) is what we want.
sub cancelled
{
	my ($sql, $ms) = @_;
	quietly(sub { $s->query("SET statement_timeout = '${ms}ms';\n$sql;\nRESET statement_timeout;") });
	$s->{stderr} = '';    # BackgroundPsql keeps an error for the next query
	return;
}

# The nearest row to rv($seed) through the index, and by an exact scan
# (the index probes every list: they must agree).
sub nearest
{
	my ($seed) = @_;
	my $sql = "SELECT id FROM big ORDER BY v <-> rv($seed, $dim) LIMIT 1";
	my $indexed = session_query($s, qq{
		SET statement_timeout = 0;
		SET enable_seqscan = off;
		$sql;
		RESET enable_seqscan;});
	my $exact = session_query($s, qq{
		SET enable_indexscan = off;
		$sql;
		RESET enable_indexscan;});
	return ($indexed, $exact);
}

my ($rss_early, $wrong) = (0, 0);
for my $i (1 .. 50)
{
	# A new generation made by another backend: the session's next query
	# loads the index again, and is cancelled somewhere in the load.
	$node->safe_psql($db, qq{
		INSERT INTO big VALUES ($next_id, rv($next_id, $dim), 1);
		SELECT benzer_index_merge('big_idx');});
	$next_id++;
	cancelled("SELECT id FROM big ORDER BY v <-> rv(7, $dim) LIMIT 1", 1 + int(rand(40)));
	my ($indexed, $exact) = nearest(1 + int(rand(50000)));
	$wrong++ if $indexed ne $exact;
	$rss_early = session_query($s, 'SELECT backend_rss_kb()') if $i == 5;
}
my $rss_late = session_query($s, 'SELECT backend_rss_kb()');
is($wrong, 0, 'every query after a cancelled index load is right');
note("backend RSS: $rss_early kB after 5 cancelled loads, $rss_late kB after 50");
cmp_ok($rss_late, '<=', $rss_early * 1.05 + 8192, 'cancelled loads leak no memory');

# CREATE INDEX, merges, k-means and batch search, cancelled anywhere.
for my $i (1 .. 8)
{
	cancelled("CREATE INDEX big_tmp ON big USING faiss (v) WITH (factory = 'IVF32,Flat')",
		5 + int(rand(400)));
	session_query($s, 'DROP INDEX IF EXISTS big_tmp');
	$node->safe_psql($db, qq{INSERT INTO big VALUES ($next_id, rv($next_id, $dim), 2)});
	$next_id++;
	cancelled("SELECT benzer_index_merge('big_idx', true)", 5 + int(rand(400)));
	cancelled("SELECT count(*) FROM benzer_kmeans('SELECT id, v FROM big', 20, 50)",
		5 + int(rand(400)));
	cancelled("SELECT count(*) FROM benzer_batch_search('big_idx', "
		  . "ARRAY(SELECT v FROM big WHERE id <= 300), 50, '{\"c\": 3}')",
		5 + int(rand(300)));
}
my $rss_end = session_query($s, 'SELECT backend_rss_kb()');
note("backend RSS after cancelled builds, merges, k-means and batch searches: $rss_end kB");
my ($indexed, $exact) = nearest(4321);
is($indexed, $exact, 'the session still searches right');
is(session_query($s, qq{SELECT count(*) FROM benzer_batch_search('big_idx',
	ARRAY[rv(11, $dim), rv(12, $dim)], 10, '{"c": 3}')}), '20', 'batch search after cancels');
is(session_query($s, 'SELECT count(*) FROM pg_indexes WHERE indexname = \'big_tmp\''), '0',
	'no half-built index');
quietly(sub { $s->quit });

($rows, $distinct, $total) = full_scan($node, $db, 'big', $dim, seed => 11);
is($rows, $total, 'after cancelled merges the index returns every row');
is($distinct, $rows, '... once');
is(join("\n", server_log_problems($node)), '', 'no crash in the server log');

$node->stop;
done_testing();
