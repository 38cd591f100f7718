# The search service (src/pg/service*.cpp): with benzer preloaded, one
# background worker answers the exact searches of every backend. Checked
# here: it runs and shows in pg_stat_activity; its answers equal a
# sequential scan's (Flat and IVF-Flat under small filters; L2, cosine and
# inner product; rows inserted and deleted since the build; after REINDEX);
# concurrent clients are batched; a search whose service is stopped falls
# back after benzer.service_timeout or is cancelled by statement_timeout
# without leaking the request slot; a terminated service is restarted
# without a server restart while searches fall back; a hot standby runs its
# own service and answers what the primary answers; after an immediate stop
# and crash recovery the service answers again; nothing crashes. Whole
# Faiss structures (HNSW) are held by the service once per server: a backend
# searching through it keeps no copy, and gets the answers its own copy
# would give (with the index's options, filters, batch searches), also
# when the service stops answering half-way through a session.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use BenzerTAP;

my $dim = 24;
my $db = 'postgres';

# scripts/gpu-check.sh runs this test again on a GPU machine with the plugin
# it built: the same checks, with the service computing on the GPU.
my $plugin = $ENV{BENZER_TAP_GPU_PLUGIN};
my $device_kind = $plugin ? "gpu" : "cpu";

my $node = PostgreSQL::Test::Cluster->new('service');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'benzer'
autovacuum = off
max_connections = 30
log_min_messages = warning
benzer.service_batch_window = 2000
benzer.service_min_rows = 0
});
$node->append_conf('postgresql.conf', qq{
benzer.gpu_plugin = '$plugin'
benzer.device = gpu
}) if $plugin;
$node->start;
benzer_setup_db($node, $db);

# --- The worker runs -----------------------------------------------------
is($node->safe_psql($db,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benzer search service'"),
	'1', 'the search service shows in pg_stat_activity');
my ($pid, $device, $absent) = split /\|/, $node->safe_psql($db,
	'SELECT pid, device, gpu_absent FROM benzer_search_service()');
ok($pid > 0, "the service has a pid ($pid)");
if ($plugin)
{
	like($device, qr/^gpu: /, "with the plugin the service computes on the GPU ($device)");
	ok(!$absent, 'and reports no reason for a missing GPU');
}
else
{
	is($device, 'cpu', 'without a GPU the service computes on the CPU');
	like($absent, qr/no GPU plugin at|no GPU/, "it says why there is no GPU: $absent");
}

# --- Tables and indexes ----------------------------------------------------
$node->safe_psql($db, qq{
	CREATE TABLE t (id int PRIMARY KEY, cat int, v vector($dim));
	INSERT INTO t SELECT i, i % 20, rv(i, $dim) FROM generate_series(1, 4000) i;
	CREATE INDEX t_flat ON t USING faiss (v, cat) WITH (factory = 'Flat');
	CREATE TABLE c (id int PRIMARY KEY, cat int, v vector($dim));
	INSERT INTO c SELECT * FROM t;
	CREATE INDEX c_ivf ON c USING faiss (v vector_cosine_ops, cat) WITH (factory = 'IVF16,Flat');
	CREATE TABLE p (id int PRIMARY KEY, cat int, v vector($dim));
	INSERT INTO p SELECT * FROM t;
	CREATE INDEX p_flat ON p USING faiss (v vector_ip_ops, cat) WITH (factory = 'Flat');
});

# Index answers (service on or off) against a sequential scan, for a
# handful of queries; returns the number of queries that differed.
sub compare_with_exact
{
	my ($table, $op, $where, $extra) = @_;
	$extra //= '';
	my $differ = 0;
	for my $seed (9001 .. 9012)
	{
		my $q = "SELECT id, round((v $op rv($seed, $dim))::numeric, 5) FROM $table $where "
		  . "ORDER BY v $op rv($seed, $dim) LIMIT 10";
		my %index = (t => 't_flat', c => 'c_ivf', p => 'p_flat');
		die "no faiss index scan for $q" unless index_used($node, $db, $q, $index{$table});
		my $by_index = $node->safe_psql($db, "SET enable_seqscan = off; $extra $q");
		my $exact = $node->safe_psql($db,
			"SET enable_indexscan = off; SET enable_bitmapscan = off; $q");
		$differ++ if $by_index ne $exact;
	}
	return $differ;
}

sub explain_line
{
	my ($table, $op, $where, $extra) = @_;
	$extra //= '';
	return $node->safe_psql($db,
		"SET enable_seqscan = off; $extra EXPLAIN (ANALYZE, COSTS OFF) "
		  . "SELECT id FROM $table $where ORDER BY v $op rv(5, $dim) LIMIT 10");
}

my @cases = (
	[ 't', '<->', '',             'Flat, L2' ],
	[ 't', '<->', 'WHERE cat = 3', 'Flat, L2, filtered' ],
	[ 'c', '<=>', 'WHERE cat = 3', 'IVF-Flat, cosine, small filter' ],
	[ 'p', '<#>', '',             'Flat, inner product' ],
	[ 'p', '<#>', 'WHERE cat IN (1, 2)', 'Flat, inner product, filtered' ],
);
for my $case (@cases)
{
	my ($table, $op, $where, $name) = @$case;
	like(explain_line($table, $op, $where), qr/rounds in the search service \($device_kind/,
		"$name: EXPLAIN says the service answered");
	is(compare_with_exact($table, $op, $where), 0, "$name: the service's answers are exact");
	is(compare_with_exact($table, $op, $where, 'SET benzer.search_service = off;'),
		0, "$name: the backend's own answers are the same");
	unlike(explain_line($table, $op, $where, 'SET benzer.search_service = off;'),
		qr/search service/, "$name: with the service off, EXPLAIN says nothing of it");
}

like(explain_line('c', '<=>', 'WHERE cat = 3', 'SET benzer.service_min_rows = 1000;'),
	qr/searched in this backend: fewer rows than benzer.service_min_rows/,
	'a filter allowing fewer rows than benzer.service_min_rows stays in the backend');

# --- 2 048 dimensions: entries wider than a page --------------------------
$node->safe_psql($db, q{
	CREATE TABLE w (id int PRIMARY KEY, cat int, v vector(2048));
	INSERT INTO w SELECT i, i % 4, rv(i, 2048) FROM generate_series(1, 400) i;
	CREATE INDEX w_flat ON w USING faiss (v, cat) WITH (factory = 'Flat');
});
{
	my ($differ, $plans) = (0, '');
	for my $seed (9301 .. 9305)
	{
		my $q = "SELECT id, round((v <-> rv($seed, 2048))::numeric, 4) FROM w WHERE cat = 1 "
		  . "ORDER BY v <-> rv($seed, 2048) LIMIT 5";
		my $by_index = $node->safe_psql($db, "SET enable_seqscan = off; $q");
		my $exact = $node->safe_psql($db,
			"SET enable_indexscan = off; SET enable_bitmapscan = off; $q");
		$differ++ if $by_index ne $exact;
	}
	is($differ, 0, '2 048 dimensions (rows straddling pages): the service answers exactly');
	like($node->safe_psql($db, "SET enable_seqscan = off; EXPLAIN (ANALYZE, COSTS OFF) "
			  . "SELECT id FROM w WHERE cat = 1 ORDER BY v <-> rv(1, 2048) LIMIT 5"),
		qr/rounds in the search service/, '2 048 dimensions: the service answered');
}

# --- Rows inserted and deleted since the build -----------------------------
$node->safe_psql($db, qq{
	INSERT INTO t SELECT i, i % 20, rv(i, $dim) FROM generate_series(4001, 4300) i;
	DELETE FROM t WHERE id % 7 = 0;
	VACUUM t;
	INSERT INTO c SELECT i, i % 20, rv(i, $dim) FROM generate_series(4001, 4300) i;
	DELETE FROM c WHERE id % 7 = 0;
	VACUUM c;
});
is(compare_with_exact('t', '<->', ''), 0, 'Flat after inserts and deletes: exact');
is(compare_with_exact('t', '<->', 'WHERE cat = 5'), 0,
	'Flat after inserts and deletes, filtered: exact');
is(compare_with_exact('c', '<=>', 'WHERE cat = 5'), 0,
	'IVF-Flat after inserts and deletes, small filter: exact');
like(explain_line('t', '<->', ''), qr/rounds in the search service/,
	'the service still answers for the index rows (the backend adds the new ones)');

# --- REINDEX: a new relfilenode, read again --------------------------------
my ($loads_before) = $node->safe_psql($db, 'SELECT index_loads FROM benzer_search_service()');
$node->safe_psql($db, 'REINDEX INDEX t_flat');
is(compare_with_exact('t', '<->', ''), 0, 'after REINDEX: exact');
my ($loads_after) = $node->safe_psql($db, 'SELECT index_loads FROM benzer_search_service()');
ok($loads_after > $loads_before, 'after REINDEX the service read the new index')
  or diag("index loads $loads_before before, $loads_after after;\n"
	  . explain_line('t', '<->', ''));
like($node->safe_psql($db, "SELECT description FROM benzer_index_info('t_flat')"),
	qr/the search service holds generation \d+ \(\d+ rows/,
	'benzer_index_info says the service holds the index');

# --- Concurrent clients are batched ----------------------------------------
my $bench = start_pgbench($node, $db, 'service_batch',
	"\\set s random(1, 100000)\n"
	  . "SET enable_seqscan = off;\n"
	  . "SELECT id FROM t WHERE cat = :s % 20 ORDER BY v <-> rv(:s, $dim) LIMIT 10;\n",
	'-c', '8', '-j', '2', '-T', '4');
my ($rc, $out, $err) = finish_pgbench($bench);
is($rc, 0, '8 clients searching at once: no error') or diag($err);
my ($largest, $failed) = split /\|/,
  $node->safe_psql($db, 'SELECT largest_batch, failed FROM benzer_search_service()');
ok($largest > 1, "requests that arrived together were answered together (largest batch $largest)");
is($failed, '0', 'no request failed');

# --- benzer_batch_search hands its queries over together -----------------
{
	my $batch = q{
		SELECT string_agg(b.query || ':' || t.id || ':' || round(b.distance::numeric, 5), ',' ORDER BY b.query, b.rank)
		FROM benzer_batch_search('t_flat', ARRAY(SELECT rv(s, 24) FROM generate_series(9201, 9212) s), 10,
		                         '{"cat": [1, 2, 3, 4, 5]}') b
		JOIN t ON t.ctid = b.tid};
	my ($batches_before) = $node->safe_psql($db, 'SELECT batches FROM benzer_search_service()');
	my $served = $node->safe_psql($db, $batch);
	my ($batches_after, $largest_after) = split /\|/,
	  $node->safe_psql($db, 'SELECT batches, largest_batch FROM benzer_search_service()');
	my $local = $node->safe_psql($db, "SET benzer.search_service = off; $batch");
	is($served, $local, 'benzer_batch_search: the same answers with and without the service');
	ok($batches_after - $batches_before <= 3,
		'its 12 queries went to the service together ('
		  . ($batches_after - $batches_before) . ' device calls)');
	my $exact = $node->safe_psql($db, q{
		SELECT string_agg(q || ':' || id || ':' || round(d::numeric, 5), ',' ORDER BY q, d)
		FROM (SELECT s - 9200 AS q, x.id, x.d
		      FROM generate_series(9201, 9212) s,
		           LATERAL (SELECT id, v <-> rv(s, 24) AS d FROM t WHERE cat IN (1, 2, 3, 4, 5)
		                    ORDER BY v <-> rv(s, 24) LIMIT 10) x) e});
	is($served, $exact, 'and they equal a sequential scan per query');
}

# --- Whole structures (HNSW) are held once per server ---------------------
$node->safe_psql($db, qq{
	CREATE TABLE h (id int PRIMARY KEY, cat int, v vector($dim));
	INSERT INTO h SELECT * FROM t;
	CREATE INDEX h_hnsw ON h USING faiss (v, cat) WITH (factory = 'HNSW16');
	CREATE TABLE hp (id int PRIMARY KEY, cat int, v vector($dim));
	INSERT INTO hp SELECT * FROM t;
	CREATE INDEX hp_hnsw ON hp USING faiss (v vector_ip_ops, cat) WITH (factory = 'HNSW16');
});

# The answers of an HNSW index (approximate) for a dozen queries, as one
# string: the service runs the very same search as a backend's own copy.
sub graph_answers
{
	my ($table, $op, $where, $extra) = @_;
	$extra //= '';
	my @out;
	for my $seed (9301 .. 9312)
	{
		push @out, $node->safe_psql($db,
			"SET enable_seqscan = off; $extra SELECT string_agg(id || ':' || "
			  . "round(d::numeric, 5), ',') FROM (SELECT id, v $op rv($seed, $dim) AS d "
			  . "FROM $table $where ORDER BY v $op rv($seed, $dim) LIMIT 10) x");
	}
	return join(';', @out);
}

for my $case ([ 'h', '<->', '', 'HNSW, L2' ],
	[ 'h', '<->', 'WHERE cat = 3', 'HNSW, L2, filtered' ],
	[ 'hp', '<#>', 'WHERE cat IN (1, 2)', 'HNSW, inner product, filtered' ])
{
	my ($table, $op, $where, $name) = @$case;
	like($node->safe_psql($db,
			"SET enable_seqscan = off; EXPLAIN (ANALYZE, COSTS OFF) "
			  . "SELECT id FROM $table $where ORDER BY v $op rv(5, $dim) LIMIT 10"),
		qr/rounds in the search service \(cpu/, "$name: EXPLAIN says the service searched");
	my $served = graph_answers($table, $op, $where);
	my $local = graph_answers($table, $op, $where, 'SET benzer.search_service = off;');
	is($served, $local, "$name: the same rows and distances as the backend's own copy");
	like($served, qr/^\d+:/, "$name: and there are answers");
}

{
	my $info = q{SELECT bytes_in_memory, faiss_bytes, description FROM benzer_index_info('h_hnsw')};
	my ($mine, $faiss, $description) = split /\|/, $node->safe_psql($db, $info);
	ok($mine < $faiss / 10,
		"a backend searching through the service keeps no copy ($mine bytes, the structure is $faiss)");
	like($description, qr/efSearch.*the search service holds generation/,
		'benzer_index_info describes the structure and says the service holds it');
	my @lines = split /\n/, $node->safe_psql($db,
		"SET benzer.search_service = off; SET enable_seqscan = off; "
		  . "SELECT id FROM h ORDER BY v <-> rv(1, $dim) LIMIT 1; $info");
	my ($own) = split /\|/, $lines[-1];
	ok($own >= $faiss / 2, "with the service off a backend loads its own copy ($own bytes)");
	my @kept = split /\n/, $node->safe_psql($db,
		"SET benzer.service_structures = off; SET enable_seqscan = off; "
		  . "SELECT id FROM h ORDER BY v <-> rv(1, $dim) LIMIT 1; $info");
	my ($kept) = split /\|/, $kept[-1];
	ok($kept >= $faiss / 2,
		"benzer.service_structures = off: the backend loads its own copy ($kept bytes)");
	like($node->safe_psql($db,
			"SET benzer.service_structures = off; SET enable_seqscan = off; "
			  . "EXPLAIN (ANALYZE, COSTS OFF) SELECT id FROM t ORDER BY v <-> rv(5, $dim) LIMIT 10"),
		qr/rounds in the search service/, '... while exact searches still go to the service');
}

# REINDEX and rows added through a merge: a new generation, held again.
{
	my $before = graph_answers('h', '<->', 'WHERE cat = 5');
	$node->safe_psql($db, 'REINDEX INDEX h_hnsw');
	is(graph_answers('h', '<->', 'WHERE cat = 5'), $before,
		'after REINDEX the service holds the new structure and answers the same');
	$node->safe_psql($db, qq{
		INSERT INTO h SELECT i, i % 20, rv(i, $dim) FROM generate_series(7001, 7300) i;
		SELECT benzer_index_merge('h_hnsw');
	});
	is(graph_answers('h', '<->', 'WHERE cat = 5'),
		graph_answers('h', '<->', 'WHERE cat = 5', 'SET benzer.search_service = off;'),
		'after a merge (a new generation) the service answers as the backend does');
}

# The index's options (ALTER INDEX ... SET) reach the service's copy.
$node->safe_psql($db, 'ALTER INDEX h_hnsw SET (ef_search = 4)');
is(graph_answers('h', '<->', ''),
	graph_answers('h', '<->', '', 'SET benzer.search_service = off;'),
	'ef_search set on the index: the service answers as the backend does');
$node->safe_psql($db, 'ALTER INDEX h_hnsw RESET (ef_search)');

{
	my $batch = q{
		SELECT string_agg(b.query || ':' || h.id || ':' || round(b.distance::numeric, 5), ',' ORDER BY b.query, b.rank)
		FROM benzer_batch_search('h_hnsw', ARRAY(SELECT rv(s, 24) FROM generate_series(9201, 9212) s), 10,
		                         '{"cat": [1, 2, 3]}') b
		JOIN h ON h.ctid = b.tid};
	is($node->safe_psql($db, $batch),
		$node->safe_psql($db, "SET benzer.search_service = off; $batch"),
		'benzer_batch_search on HNSW: the same answers with and without the service');
}

# What the service holds before concurrent searches of the graph (the
# lanes they get come on top).
my ($held_before) = $node->safe_psql($db, 'SELECT bytes FROM benzer_search_service()');
my $graph_bench = start_pgbench($node, $db, 'service_graph',
	"\\set s random(1, 100000)\n"
	  . "SET enable_seqscan = off;\n"
	  . "SELECT id FROM h ORDER BY v <-> rv(:s, $dim) LIMIT 10;\n",
	'-c', '8', '-j', '2', '-T', '3');
my ($graph_rc, undef, $graph_err) = finish_pgbench($graph_bench);
is($graph_rc, 0, '8 clients searching HNSW through the service: no error') or diag($graph_err);

# Concurrent searches with filters of different sizes (5 % to all rows,
# so different graph widths) run at once on the service's lanes (a copy
# of the graph each, over the same rows): every answer must be the
# backend's own. pgbench fails the run on the first that differs.
$node->safe_psql($db, qq{
	SET benzer.search_service = off; SET enable_seqscan = off;
	CREATE TABLE graph_expected AS
		SELECT s, (SELECT string_agg(id::text, ',') FROM
		           (SELECT id FROM h WHERE cat <= s % 20 ORDER BY v <-> rv(s, $dim) LIMIT 10) x) AS answer
		FROM generate_series(1, 200) s;
});
my $lanes_bench = start_pgbench($node, $db, 'service_lanes',
	"\\set s random(1, 200)\n"
	  . "SET enable_seqscan = off;\n"
	  . "SELECT (SELECT string_agg(id::text, ',') FROM (SELECT id FROM h WHERE cat <= :s % 20 "
	  . "ORDER BY v <-> rv(:s, $dim) LIMIT 10) x) = answer AS same FROM graph_expected WHERE s = :s \\gset\n"
	  . "\\if :same\n\\else\nSELECT benzer_test_fail('seed ' || :s || ' answered differently');\n\\endif\n",
	'-c', '8', '-j', '2', '-T', '4');
my ($lanes_rc, undef, $lanes_err) = finish_pgbench($lanes_bench);
is($lanes_rc, 0, '8 clients, different filters at once: every answer is the backend\'s own')
  or diag($lanes_err);
my ($held_after) = $node->safe_psql($db, 'SELECT bytes FROM benzer_search_service()');
ok($held_after > $held_before,
	"the service made a lane for concurrent searches (held bytes $held_before -> $held_after)");

# --- k-means on the service's device ----------------------------------------
# benzer.device = gpu sends k-means (benzer_kmeans, an IVF index's coarse
# training) to the service; without a GPU it runs on the service's CPU
# implementation of the device: the same protocol a GPU gets.
my $kmeans_q = q{SELECT string_agg(id || ':' || cluster || ':' || round(distance::numeric, 4), ',' ORDER BY id)
	FROM benzer_kmeans('SELECT id, v FROM t', 6, 20)};
my $kmeans_local = $node->safe_psql($db, "SET benzer.search_service = off; $kmeans_q");
{
	my ($requests_before) = $node->safe_psql($db, 'SELECT requests FROM benzer_search_service()');
	my ($ret, $out, $err) = $node->psql($db,
		"SET client_min_messages = debug1; SET benzer.device = gpu; $kmeans_q");
	like($err, qr/rows clustered by the search service on $device_kind/,
		'benzer_kmeans with benzer.device = gpu: the service clusters');
	is($out, $kmeans_local, '... with the clusters and distances of the backend\'s own k-means');
	my ($requests_after) = $node->safe_psql($db, 'SELECT requests FROM benzer_search_service()');
	is($requests_after - $requests_before, 1, '... as one request');
	($ret, $out, $err) = $node->psql($db, "SET client_min_messages = debug1; $kmeans_q");
	unlike($err, qr/clustered by the search service/,
		'benzer.device = auto without a GPU: k-means stays in the backend') unless $plugin;
}
{
	my ($ret, $out, $err) = $node->psql($db, q{
		SET client_min_messages = debug1; SET benzer.device = gpu;
		CREATE TABLE k AS SELECT * FROM t;
		CREATE INDEX k_ivf ON k USING faiss (v vector_cosine_ops) WITH (factory = 'IVF8,Flat', nprobe = 8)});
	is($ret, 0, 'CREATE INDEX with the coarse k-means in the service') or diag($err);
	like($err, qr/8 coarse centroids trained by the search service/,
		'... says the service trained the coarse centroids');
	my $q = "SELECT string_agg(id::text, ',') FROM (SELECT id FROM k ORDER BY v <=> rv(4242, $dim) LIMIT 10) x";
	is($node->safe_psql($db, "SET enable_seqscan = off; $q"),
		$node->safe_psql($db, "SET enable_indexscan = off; SET enable_bitmapscan = off; $q"),
		'... and the index, probing every list, answers exactly');
}

# --- IVF-Flat probes on the service's device ---------------------------------
# With a device wanted (benzer.device = gpu; without a GPU, the CPU
# implementation), a fixed probe of IVF-Flat lists goes to the service as
# one bitmap: the filter's rows in the lists the probe visits.
$node->safe_psql($db, qq{
	CREATE TABLE kc AS SELECT * FROM t;
	CREATE INDEX kc_ivf ON kc USING faiss (v, cat) WITH (factory = 'IVF16,Flat');
});
for my $case ([ '', 'no filter' ], [ 'WHERE cat < 10', 'half the rows' ],
	[ 'WHERE cat IN (1, 2, 3)', 'a 15 % filter' ])
{
	my ($where, $name) = @$case;
	my $probe = 'SET benzer.nprobe = 3; SET enable_seqscan = off;';
	like($node->safe_psql($db,
			"$probe SET benzer.device = gpu; EXPLAIN (ANALYZE, COSTS OFF) "
			  . "SELECT id FROM kc $where ORDER BY v <-> rv(5, $dim) LIMIT 10"),
		qr/rounds in the search service \($device_kind/,
		"IVF-Flat probe, $name: the service's device searched the probed lists");
	my @served;
	my @local;
	for my $seed (9401 .. 9408)
	{
		my $q = "SELECT string_agg(id || ':' || round(d::numeric, 4), ',') FROM "
		  . "(SELECT id, v <-> rv($seed, $dim) AS d FROM kc $where "
		  . "ORDER BY v <-> rv($seed, $dim) LIMIT 10) x";
		push @served, $node->safe_psql($db, "$probe SET benzer.device = gpu; $q");
		push @local, $node->safe_psql($db, "$probe SET benzer.search_service = off; $q");
	}
	is(join(';', @served), join(';', @local),
		"IVF-Flat probe, $name: the same rows as the backend's own probe");
}
unlike($node->safe_psql($db,
		"SET benzer.nprobe = 3; SET enable_seqscan = off; EXPLAIN (ANALYZE, COSTS OFF) "
		  . "SELECT id FROM kc ORDER BY v <-> rv(5, $dim) LIMIT 10"),
	qr/search service/, 'benzer.device = auto without a GPU: probes stay in the backend')
  unless $plugin;

# A session whose structure the service holds searches itself when the
# service stops answering, with the same answers.
my $graph_session = $node->background_psql($db);
my $graph_q = "SET enable_seqscan = off; SELECT string_agg(id::text, ',') FROM "
  . "(SELECT id FROM h WHERE cat < 10 ORDER BY v <-> rv(77, $dim) LIMIT 10) x";
my $graph_before = session_query($graph_session, $graph_q);

# --- A stopped service: fallback after the timeout, and cancel ------------
kill 'STOP', $pid;
is(session_query($graph_session, "SET benzer.service_timeout = 200; $graph_q"), $graph_before,
	'HNSW: with the service stopped, a session loads its own copy and answers the same');
$graph_session->quit;
is($node->safe_psql($db,
		"SET benzer.device = gpu; SET benzer.service_timeout = 200; $kmeans_q"),
	$kmeans_local, 'k-means with the service stopped: clustered in the backend after the timeout');
is(graph_answers('h', '<->', 'WHERE cat = 3', 'SET benzer.service_timeout = 100;'),
	graph_answers('h', '<->', 'WHERE cat = 3', 'SET benzer.search_service = off;'),
	'HNSW: new sessions answer the same while the service is stopped');
my $plan = explain_line('t', '<->', '', 'SET benzer.service_timeout = 300;');
like($plan, qr/searched in this backend: the service was busy past benzer.service_timeout/,
	'a stopped service: the backend searches itself after benzer.service_timeout');
is(compare_with_exact('t', '<->', '', 'SET benzer.service_timeout = 100;'), 0,
	'... with the same answers');
my ($ret, $stdout, $stderr) = $node->psql($db,
	"SET enable_seqscan = off; SET benzer.service_timeout = 600000; SET statement_timeout = 300; "
	  . "SELECT id FROM t ORDER BY v <-> rv(3, $dim) LIMIT 10");
like($stderr, qr/canceling statement due to statement timeout/,
	'statement_timeout cancels a search waiting for the service');
kill 'CONT', $pid;
# Every slot must be free again: 40 searches, each answered by the service.
my ($requests_before) = $node->safe_psql($db, 'SELECT requests FROM benzer_search_service()');
for my $i (1 .. 40)
{
	$node->safe_psql($db,
		"SET enable_seqscan = off; SELECT id FROM t ORDER BY v <-> rv($i, $dim) LIMIT 10");
}
my ($requests_after) = $node->safe_psql($db, 'SELECT requests FROM benzer_search_service()');
ok($requests_after - $requests_before >= 40,
	'after the cancel and the timeouts, the service answers every search (no slot leaked)');

# --- Terminating the service: restarted, the server is not -----------------
my $session = $node->background_psql($db);
session_query($session, 'SELECT 1');
$node->safe_psql($db, "SELECT pg_terminate_backend($pid)");
# While it is away, searches fall back.
is(compare_with_exact('t', '<->', 'WHERE cat = 2'), 0,
	'while the service restarts, searches are exact');
my $new_pid = 0;
for (1 .. 100)
{
	$new_pid = $node->safe_psql($db, 'SELECT coalesce(pid, 0) FROM benzer_search_service()');
	last if $new_pid > 0 && $new_pid != $pid;
	usleep(100_000);
}
ok($new_pid > 0 && $new_pid != $pid, "the postmaster started the service again ($new_pid)");
is(session_query($session, 'SELECT 2'), '2',
	'a session opened before is still connected: no server restart');
$session->quit;
like(explain_line('t', '<->', ''), qr/rounds in the search service/,
	'the new service answers');
is(compare_with_exact('t', '<->', ''), 0, 'and its answers are exact');

# --- A hot standby has its own service, which answers as the primary ------
$node->safe_psql($db, 'CHECKPOINT');
$node->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('service_standby');
$standby->init_from_backup($node, 'backup', has_streaming => 1);
$standby->start;
$node->safe_psql($db, qq{
	INSERT INTO t SELECT i, i % 20, rv(i, $dim) FROM generate_series(5001, 5200) i;
	REINDEX INDEX t_flat;
});
$node->wait_for_catchup($standby);
is($standby->safe_psql($db,
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'benzer search service'"),
	'1', 'the standby runs its own search service');
my ($differ_standby, $served_standby) = (0, 0);
for my $seed (9101 .. 9108)
{
	my $q = "SELECT id, round((v <-> rv($seed, $dim))::numeric, 5) FROM t WHERE cat < 10 "
	  . "ORDER BY v <-> rv($seed, $dim) LIMIT 10";
	my $on_primary = $node->safe_psql($db, "SET enable_seqscan = off; $q");
	my $on_standby = $standby->safe_psql($db, "SET enable_seqscan = off; $q");
	$differ_standby++ if $on_primary ne $on_standby;
}
is($differ_standby, 0, 'the standby answers exactly what the primary answers');
like($standby->safe_psql($db,
		"SET enable_seqscan = off; EXPLAIN (ANALYZE, COSTS OFF) "
		  . "SELECT id FROM t ORDER BY v <-> rv(1, $dim) LIMIT 10"),
	qr/rounds in the search service/, "the standby's searches go to its service");
$standby->stop;

# --- An immediate stop and crash recovery: the service comes back ---------
$node->stop('immediate');
$node->start;
like(explain_line('t', '<->', ''), qr/rounds in the search service/,
	'after crash recovery the service answers again');
is(compare_with_exact('t', '<->', 'WHERE cat = 4'), 0, 'and exactly');

$node->stop;
my @problems = server_log_problems($node);
is(scalar(@problems), 0, 'no crash or corruption in the server log')
  or diag(join("\n", @problems));

done_testing();
