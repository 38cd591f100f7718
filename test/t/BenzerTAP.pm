# BenzerTAP.pm: helpers shared by benzer's TAP tests (test/t/*.pl).
#
# Vectors are generated deterministically in SQL by rv(seed, dim): every
# element is the fractional part of a large multiple of a sine (a classic
# hash), spread over [-1, 1). Distinct seeds give distinct, unclustered
# vectors, so "the nearest neighbour of row i's vector is row i" holds
# exactly and top-k lists have no ties. Tables in these tests store
# rv(id, dim) in row id, so any row's vector can be recomputed from its id.
package BenzerTAP;

use strict;
use warnings FATAL => 'all';

use Exporter 'import';
use HTTP::Tiny;
use IO::Socket::INET;
use IPC::Run;
use JSON::PP ();
use Time::HiRes;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(
  benzer_setup_db
  benzer_demo_db
  benzer_start_app
  benzer_vote_json
  benzer_app_login
  benzer_post_chunked
  sql_ok
  quietly
  session_query
  index_info
  index_used
  topk
  exact_topk
  full_scan
  index_check
  self_nn_misses
  server_log_problems
  start_pgbench
  finish_pgbench
);

# Every psql that a test runs gets a time limit (PostgreSQL::Test::Cluster
# sets none), so that a backend hanging in the extension fails the test
# instead of hanging the whole run: the test dies and the clusters are torn
# down ("immediate" stop). A caller may pass its own timeout (and timed_out)
# to psql.
our $psql_timeout;    # default: PG_TEST_TIMEOUT_DEFAULT (180 s)

sub psql_timeout
{
	return $psql_timeout // $PostgreSQL::Test::Utils::timeout_default // 180;
}
{
	no warnings 'redefine';
	my $psql = \&PostgreSQL::Test::Cluster::psql;
	*PostgreSQL::Test::Cluster::psql = sub {
		my ($self, $dbname, $sql, %params) = @_;
		$params{timeout} //= psql_timeout();
		return $psql->($self, $dbname, $sql, %params);
	};
}

# Creates the extension and rv() in a database.
sub benzer_setup_db
{
	my ($node, $db) = @_;
	$node->safe_psql(
		$db, q{
		CREATE EXTENSION IF NOT EXISTS benzer;
		CREATE OR REPLACE FUNCTION rv(seed int, dim int) RETURNS vector
		LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
		  SELECT array(SELECT 2 * (h - floor(h)) - 1
		               FROM (SELECT sin(seed * 12.9898 + j * 78.233) * 43758.5453 AS h
		                     FROM generate_series(1, dim) j) s)::vector
		$$;
		CREATE OR REPLACE FUNCTION benzer_test_fail(msg text) RETURNS void
		LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'benzer test check failed: %', msg; END $$;
	});
	return;
}

# Runs $sql and passes if it succeeds (fails, with psql's stderr, if not,
# without dying, so later checks still run). Returns psql's stdout.
sub sql_ok
{
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	my ($node, $db, $sql, $name) = @_;
	my ($ret, $out, $err) = $node->psql($db, $sql);
	is($ret, 0, $name) or diag("$sql\n$err");
	return $out;
}

# Runs $code with Test::More's note() output thrown away (BackgroundPsql
# notes every query and its whole output). Returns what $code returns.
sub quietly
{
	my ($code) = @_;
	my $tb = Test::More->builder;
	my $saved = $tb->output;
	open my $null, '>', '/dev/null' or die "could not open /dev/null: $!";
	$tb->output($null);
	my @result = eval { $code->() };
	my $error = $@;
	$tb->output($saved);
	die $error if $error;
	return wantarray ? @result : $result[0];
}

# Runs $sql in a BackgroundPsql session, quietly; dies if psql wrote to
# stderr (an error). Returns the output.
sub session_query
{
	my ($session, $sql) = @_;
	my ($out, $ret) = quietly(sub { $session->query($sql) });
	die "background psql query failed: $sql\n$session->{stderr}" if $ret;
	return $out;
}

# benzer_index_info() of an index, as a hash reference.
sub index_info
{
	my ($node, $db, $index) = @_;
	my @cols = qw(factory metric dimensions rows pending_rows dead_rows generation merges);
	my $out = $node->safe_psql($db,
		'SELECT ' . join(", ", @cols) . " FROM benzer_index_info('$index')");
	my @vals = split /\|/, $out, -1;
	my %info;
	@info{@cols} = @vals;
	return \%info;
}

# True if the plan of $sql (with seqscans off) scans index $index.
sub index_used
{
	my ($node, $db, $sql, $index) = @_;
	my $plan = $node->safe_psql($db,
		"SET enable_seqscan = off; EXPLAIN (COSTS OFF) $sql");
	return $plan =~ /Index Scan using \Q$index\E /;
}

# The k nearest rows of $table to rv($seed, $dim) by $op as an index scan
# (seqscans off): "id|distance" lines. $extra_sql runs first (SETs).
sub topk
{
	my ($node, $db, $table, $seed, $dim, $k, %opts) = @_;
	my $op = $opts{op} // '<->';
	my $extra = $opts{extra_sql} // '';
	return $node->safe_psql($db,
		"SET enable_seqscan = off; $extra "
		  . "SELECT id, v $op rv($seed, $dim) FROM $table ORDER BY v $op rv($seed, $dim) LIMIT $k");
}

# The same, computed exactly (sequential scan and sort).
sub exact_topk
{
	my ($node, $db, $table, $seed, $dim, $k, %opts) = @_;
	my $op = $opts{op} // '<->';
	return $node->safe_psql($db,
		"SET enable_indexscan = off; SET enable_bitmapscan = off; "
		  . "SELECT id, v $op rv($seed, $dim) FROM $table ORDER BY v $op rv($seed, $dim), id LIMIT $k"
	);
}

# A full index scan of $table (ORDER BY v <-> rv(seed) with no useful LIMIT):
# returns (rows returned, distinct ids returned, rows in the table).
sub full_scan
{
	my ($node, $db, $table, $dim, %opts) = @_;
	my $op = $opts{op} // '<->';
	my $seed = $opts{seed} // 424242;
	my $out = $node->safe_psql($db, qq{
		SET enable_seqscan = off;
		SET benzer.max_scan_tuples = 1000000;
		SELECT count(*), count(DISTINCT id), (SELECT count(*) FROM $table)
		FROM (SELECT id FROM $table ORDER BY v $op rv($seed, $dim) LIMIT 1000000) s;
	});
	return split /\|/, $out;
}

# benzer_index_check($index): the problems it reports, one a line ('' when
# the index agrees with its table).
sub index_check
{
	my ($node, $db, $index) = @_;
	return $node->safe_psql($db,
		"SELECT coalesce(string_agg(problem, E'\n'), '') FROM benzer_index_check('$index')");
}

# For the rows of $table matching $where, looks up each row's own vector
# through the index (ORDER BY v <-> row's v LIMIT 1): returns (rows
# checked, rows whose nearest neighbour was not the row itself).
sub self_nn_misses
{
	my ($node, $db, $table, $where) = @_;
	my $out = $node->safe_psql($db, qq{
		SET enable_seqscan = off;
		SELECT count(*), count(*) FILTER (WHERE nn IS DISTINCT FROM id)
		FROM (SELECT a.id,
		             (SELECT b.id FROM $table b ORDER BY b.v <-> a.v LIMIT 1) AS nn
		      FROM $table a WHERE $where) s;
	});
	return split /\|/, $out;
}

# Lines of the node's server log that show a crash or corruption.
sub server_log_problems
{
	my ($node) = @_;
	my $log = slurp_file($node->logfile);
	my @bad = grep {
		/PANIC|TRAP:|terminated by signal|was terminated|server process .* exited with|corrupt|could not read block|invalid page|unexpected zero page|WARNING:.*(leak|still referenced|buffer)/i
	} split /\n/, $log;
	return @bad;
}

# Starts pgbench in the background against $node. $scripts is the text of
# one custom script, or a hash reference { "name\@weight" => text, ... };
# @args go to pgbench. Returns a handle for finish_pgbench.
sub start_pgbench
{
	my ($node, $db, $name, $scripts, @args) = @_;
	$scripts = { $name => $scripts } unless ref $scripts;
	my @files;
	for my $key (sort keys %$scripts)
	{
		my ($base, $weight) = $key =~ /^([^@]+)(\@\d+)?$/;
		my $file = $node->basedir . "/$base.pgbench";
		open my $fh, '>', $file or die "could not write $file: $!";
		print $fh $scripts->{$key};
		close $fh;
		push @files, '-f', $file . ($weight // '');
	}
	my %h = (name => $name, out => '', err => '');
	my @cmd = ('pgbench', '-n', '-h', $node->host, '-p', $node->port, @files, @args, $db);
	note "starting: @cmd";
	# pgbench ends its clients only between transactions: a hung backend
	# would hang it, so it gets a time limit too.
	$h{timer} = IPC::Run::timeout(2 * psql_timeout());
	$h{run} = IPC::Run::start(\@cmd, '>', \$h{out}, '2>', \$h{err}, $h{timer});
	return \%h;
}

# Waits for a background pgbench; returns (exit status, stdout, stderr).
sub finish_pgbench
{
	my ($h) = @_;
	eval { $h->{run}->finish; };
	if ($@)
	{
		$h->{run}->kill_kill;
		die "pgbench $h->{name} did not finish in time: $@\nstdout:\n$h->{out}\nstderr:\n$h->{err}";
	}
	my $rc = $h->{run}->result(0);
	note "pgbench $h->{name} exited with $rc";
	note "pgbench $h->{name} stdout:\n$h->{out}";
	note "pgbench $h->{name} stderr:\n$h->{err}";
	return ($rc, $h->{out}, $h->{err});
}

# Loads the demo database into $node's database postgres as demo/ does it
# (400 + 66 Fashion-MNIST images, the demo's indexes and the app's tables),
# with one check per step.
sub benzer_demo_db
{
	my ($node, $repo) = @_;
	local $ENV{PGHOST} = $node->host;
	local $ENV{PGPORT} = $node->port;
	local $ENV{PGDATABASE} = 'postgres';
	local $ENV{PGOPTIONS} = '-c client_min_messages=warning';
	my @psql = ('psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1');
	for my $step ([ @psql, '-f', "$repo/demo/schema.sql" ],
		[ '/usr/bin/python3', "$repo/demo/load_fashion_mnist.py", '--limit', '400' ],
		[ @psql, '-c', 'ANALYZE images, features' ],
		[ @psql, '-f', "$repo/demo/indexes.sql" ],
		[ @psql, '-f', "$repo/demo/app.sql" ])
	{
		my ($out, $err) = ('', '');
		my $ok = IPC::Run::run($step, '>', \$out, '2>', \$err);
		ok($ok, 'demo database: ' . join(' ', map { s{.*/}{}r } @$step[ 0 .. 2 ]))
		  or diag($err);
	}
	return;
}

# Starts the app (app/build/benzer-app) on a free port against $conninfo
# with @extra arguments and waits until it answers /healthz. Returns the
# IPC::Run handle, its base URL and its log file.
sub benzer_start_app
{
	my ($repo, $conninfo, @extra) = @_;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my $log = "${PostgreSQL::Test::Utils::tmp_check}/app_$port.log";
	my $h = IPC::Run::start(
		[
			"$repo/app/build/benzer-app", '--db', $conninfo, @extra, '--listen',
			'127.0.0.1', '--port', $port, '--static', "$repo/app/static", '--pool', '2'
		],
		'>', $log, '2>&1');
	my $http = HTTP::Tiny->new(timeout => 30);
	for (1 .. 300)
	{
		last if $http->get("http://127.0.0.1:$port/healthz")->{success};
		Time::HiRes::usleep(100_000);
	}
	return ($h, "http://127.0.0.1:$port", $log);
}

# The app's feedback body: $vote ('up', 'down', 'clear') on result image
# $result for query image $query, model pixels v1.
sub benzer_vote_json
{
	my ($query, $result, $vote) = @_;
	return JSON::PP::encode_json({
		query_id => $query + 0,
		result_id => $result + 0,
		model => 'pixels',
		version => 'v1',
		vote => $vote
	});
}

# Creates the app user $name with $password (benzer-app --add-user, on
# the database $conninfo names) when $conninfo is given, then logs in at
# $url. Returns the headers a logged-in page sends: its session Cookie
# and its X-CSRF-Token.
sub benzer_app_login
{
	my ($repo, $conninfo, $url, $name, $password) = @_;
	if (defined $conninfo)
	{
		local $ENV{BENZER_APP_PASSWORD} = $password;
		my $out = `"$repo/app/build/benzer-app" --db '$conninfo' --add-user '$name' 2>&1`;
		die "benzer-app --add-user $name: $out" if $?;
	}
	my $http = HTTP::Tiny->new(timeout => 30);
	my $r = $http->post("$url/api/login",
		{
			headers => { 'Content-Type' => 'application/json' },
			content => JSON::PP::encode_json({ name => $name, password => $password })
		});
	die "login as $name: $r->{status} $r->{content}" unless $r->{success};
	my ($token) = ($r->{headers}{'set-cookie'} // '') =~ /benzer_session=([^;]+)/;
	return {
		Cookie => "benzer_session=$token",
		'X-CSRF-Token' => JSON::PP::decode_json($r->{content})->{csrf}
	};
}

# Sends a POST of $path with a chunked body of $megabytes MB to the HTTP
# server on 127.0.0.1:$port, as fast as the server reads it, and returns
# the server's answer (whatever came before it closed the connection).
sub benzer_post_chunked
{
	my ($port, $path, $megabytes) = @_;
	local $SIG{PIPE} = 'IGNORE';
	my $socket = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10)
	  or die "connect: $!";
	print $socket "POST $path HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
	  . "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
	my $chunk = sprintf("%x\r\n", 1 << 20) . ('x' x (1 << 20)) . "\r\n";
	for (1 .. $megabytes) { print $socket $chunk or last; }
	local $/;
	my $answer = <$socket> // '';
	close $socket;
	return $answer;
}

1;
