# pg_dump -Fc / pg_restore of a database with faiss indexes (IVF, HNSW and
# Flat; L2, cosine and inner product). The restore rebuilds each index from
# the restored rows, into a new database on the same node (pg_restore) and
# on a second node (pg_restore -j 2). The source indexes have a history
# (pending rows, dead rows, merges), the restored ones are fresh builds with
# the same options; with settings that make the searches exact, the top-10
# of every query (ids and distances) must be the same everywhere, and equal
# to a sequential scan's.
use strict;
use warnings FATAL => 'all';

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use BenzerTAP;

my $dim = 24;
my @tables = (
	{ t => 't_ivf',  ops => 'vector_l2_ops',     op => '<->',
	  with => "factory = 'IVF32,Flat', nprobe = 32" },
	{ t => 't_hnsw', ops => 'vector_cosine_ops', op => '<=>',
	  with => "factory = 'HNSW16', ef_search = 600, ef_construction = 80" },
	{ t => 't_flat', ops => 'vector_ip_ops',     op => '<#>',
	  with => "factory = 'Flat'" },
);
my @seeds = (800001 .. 800005, 7, 1234);

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE src');
benzer_setup_db($node, 'src');

for my $c (@tables)
{
	my $t = $c->{t};
	$node->safe_psql('src', qq{
		CREATE TABLE $t (id int PRIMARY KEY, v vector($dim), note text);
		INSERT INTO $t SELECT i, rv(i, $dim), 'row ' || i FROM generate_series(1, 3000) i;
		CREATE INDEX ${t}_idx ON $t USING faiss (v $c->{ops}) WITH ($c->{with});
		-- a history: pending rows, dead rows, a merge, more pending rows
		INSERT INTO $t SELECT i, rv(i, $dim), 'row ' || i FROM generate_series(3001, 3400) i;
		DELETE FROM $t WHERE id % 9 = 4;
		VACUUM (INDEX_CLEANUP ON) $t;
		SELECT benzer_index_merge('${t}_idx');
		INSERT INTO $t SELECT i, rv(i, $dim), 'row ' || i FROM generate_series(3401, 3500) i;
	});
	my $info = index_info($node, 'src', "${t}_idx");
	cmp_ok($info->{dead_rows}, '>', 0, "$t: source index has dead rows ($info->{dead_rows})");
	is($info->{pending_rows}, 100, "$t: source index has 100 pending rows");
	is($info->{merges}, 1, "$t: source index was merged once");
}

# Top-10 lists of every table and query in a database: { "table seed" => text }.
sub results
{
	my ($n, $db) = @_;
	my %r;
	for my $c (@tables)
	{
		for my $seed (@seeds)
		{
			$r{"$c->{t} $seed"} = topk($n, $db, $c->{t}, $seed, $dim, 10, op => $c->{op});
		}
	}
	return \%r;
}

# Checks a database's results against the expected ones, and its indexes.
sub check_db
{
	my ($n, $db, $want, $what) = @_;
	for my $c (@tables)
	{
		my $t = $c->{t};
		ok(index_used($n, $db,
				"SELECT id FROM $t ORDER BY v $c->{op} rv(1, $dim) LIMIT 10", "${t}_idx"),
			"$what: $t: searches use the faiss index");
		my $bad = 0;
		for my $seed (@seeds)
		{
			my $got = topk($n, $db, $t, $seed, $dim, 10, op => $c->{op});
			my @lines = split /\n/, $got;
			if ($got ne $want->{"$t $seed"} || @lines != 10)
			{
				$bad++;
				diag("$what: $t: rv($seed): got\n$got\nexpected\n" . $want->{"$t $seed"});
			}
		}
		is($bad, 0, "$what: $t: top-10 of " . scalar(@seeds) . " queries identical");
		my ($returned, $distinct, $count) = full_scan($n, $db, $t, $dim, op => $c->{op});
		is("$returned $distinct", "$count $count",
			"$what: $t: a full index scan returns all $count rows once");
	}
	return;
}

# The source database against exact answers.
my $src = results($node, 'src');
for my $c (@tables)
{
	my $bad = 0;
	for my $seed (@seeds)
	{
		my $exact = exact_topk($node, 'src', $c->{t}, $seed, $dim, 10, op => $c->{op});
		if ($exact ne $src->{"$c->{t} $seed"})
		{
			$bad++;
			diag("source $c->{t} rv($seed): index\n" . $src->{"$c->{t} $seed"} . "\nexact\n$exact");
		}
	}
	is($bad, 0, "source: $c->{t}: index top-10 equals the exact top-10");
}
check_db($node, 'src', $src, 'source');

my $dump = $node->basedir . '/src.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', 'src' ], 'pg_dump -Fc');

# Restore on the same node.
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'pg_restore', '--exit-on-error', '-d', 'dst', $dump ], 'pg_restore');

# Restore on a second node, in parallel.
my $node2 = PostgreSQL::Test::Cluster->new('restore');
$node2->init;
$node2->append_conf('postgresql.conf', "autovacuum = off\n");
$node2->start;
$node2->safe_psql('postgres', 'CREATE DATABASE dst2');
$node2->command_ok([ 'pg_restore', '--exit-on-error', '-j', '2', '-d', 'dst2', $dump ],
	'pg_restore -j 2 on a second node');

for my $target ([ $node, 'dst', 'restored' ], [ $node2, 'dst2', 'restored on node 2' ])
{
	my ($n, $db, $what) = @$target;
	for my $c (@tables)
	{
		my $t = $c->{t};
		my $idx = "${t}_idx";
		my $count = $n->safe_psql($db, "SELECT count(*) FROM $t");
		is($count, $node->safe_psql('src', "SELECT count(*) FROM $t"), "$what: $t: all rows restored");
		is($n->safe_psql($db, "SELECT md5(string_agg(id || v::text || note, ',' ORDER BY id)) FROM $t"),
			$node->safe_psql('src', "SELECT md5(string_agg(id || v::text || note, ',' ORDER BY id)) FROM $t"),
			"$what: $t: restored rows identical");
		is($n->safe_psql($db, "SELECT indexdef FROM pg_indexes WHERE indexname = '$idx'"),
			$node->safe_psql('src', "SELECT indexdef FROM pg_indexes WHERE indexname = '$idx'"),
			"$what: $t: index definition (method, operator class, options) restored");
		my $info = index_info($n, $db, $idx);
		my $srcinfo = index_info($node, 'src', $idx);
		is($info->{factory}, $srcinfo->{factory}, "$what: $t: factory $srcinfo->{factory}");
		is($info->{metric}, $srcinfo->{metric}, "$what: $t: metric $srcinfo->{metric}");
		is("$info->{rows} $info->{pending_rows} $info->{dead_rows} $info->{merges}",
			"$count 0 0 0", "$what: $t: the index was built afresh from all $count rows");
	}
	check_db($n, $db, $src, $what);
}

for my $n ($node, $node2)
{
	my @problems = server_log_problems($n);
	is(scalar(@problems), 0, $n->name . ': no crash or corruption in the server log')
	  or diag(join("\n", @problems));
}

$node2->stop;
$node->stop;
done_testing();
