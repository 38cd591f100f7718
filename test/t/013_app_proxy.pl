# The app behind nginx (app/deploy/nginx.sh), against the attacks of
# issue 14 that cost the app its threads or its pooled connections:
#
#  - 200 connections that send their headers one line every 1.5 s: a search
#    through nginx still answers within 1 s (the app alone holds a thread
#    per connection and stops answering);
#  - a request for many byte ranges and a 64 MB chunked body: 4xx, and the
#    app's memory does not grow by 10 MB;
#  - 8 slow searches abandoned after 0.2 s: the next search is not delayed
#    by more than 100 ms (the app cancels a query whose client went away),
#    through nginx and without it.
#
# Searches are made slow on purpose: images is a view that sleeps 5 ms a
# row while slow_switch says so (the app's metadata loads fast first).
use strict;
use warnings FATAL => 'all';

use HTTP::Tiny;
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

use BenzerTAP;

my $repo = $ENV{BENZER_REPO} or die "BENZER_REPO is not set (run through test/t/run.sh)";
ok(-x "$repo/app/build/benzer-app", 'the app is built') or BAIL_OUT('build it: make -C app');
my $nginx = -x '/usr/sbin/nginx' ? '/usr/sbin/nginx' : `command -v nginx` =~ s/\s+$//r;
plan skip_all => 'nginx is not installed (apt-get install nginx)' unless $nginx && -x $nginx;

my $node = PostgreSQL::Test::Cluster->new('app_proxy');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
benzer_demo_db($node, $repo);
$node->safe_psql(
	'postgres', q{
	CREATE TABLE slow_switch (slow bool);
	INSERT INTO slow_switch VALUES (false);
	ALTER TABLE images RENAME TO images_data;
	CREATE VIEW images AS SELECT * FROM images_data
		WHERE NOT (SELECT slow FROM slow_switch) OR pg_sleep(0.005 + 0 * image_id) IS NOT NULL;
});
my $conninfo = 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres';
my ($app, $app_url) = benzer_start_app($repo, $conninfo, '--behind-proxy', '--pool', '4');
my ($app_port) = $app_url =~ /:(\d+)$/;

my $proxy_port = PostgreSQL::Test::Cluster::get_free_port();
my $proxy_dir = PostgreSQL::Test::Utils::tempdir();
my $proxy = IPC::Run::start([ 'bash', "$repo/app/deploy/nginx.sh", $proxy_port, $app_port, $proxy_dir ],
	'>', "$proxy_dir/stdout.log", '2>&1');
my $url = "http://127.0.0.1:$proxy_port";
my $http = HTTP::Tiny->new(timeout => 5);
for (1 .. 100)
{
	last if $http->get("$url/healthz")->{success};
	usleep(100_000);
}
my @ids = split /\n/,
  $node->safe_psql('postgres', 'SELECT image_id FROM images_data ORDER BY image_id LIMIT 20');
my $probe = "/api/similar?id=$ids[0]&model=pixels&version=v1&n=5";
is($http->get("$url$probe")->{status}, 200, 'a search through nginx');

# How long a search takes, or 99 when it fails.
sub timed
{
	my ($base, $path) = @_;
	my $t0 = time;
	my $r = $http->get("$base$path");
	return $r->{status} == 200 ? time - $t0 : 99;
}

# Slow headers from 200 connections.
my @slow;
for (1 .. 200)
{
	my $socket = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $proxy_port, Timeout => 5)
	  or die "connect: $!";
	print $socket "GET /api/meta HTTP/1.1\r\nHost: 127.0.0.1\r\n";
	push @slow, $socket;
}
my ($worst, $probes) = (0, 0);
{
	local $SIG{PIPE} = 'IGNORE';
	for my $round (1 .. 5)
	{
		print $_ "X-Slow-$round: 1\r\n" for @slow;
		my $took = timed($url, $probe);
		$worst = $took if $took > $worst;
		$probes++;
		usleep(1_500_000);
	}
}
ok($worst < 1, sprintf('200 connections sending one header line every 1.5 s: '
	  . "%d searches through nginx each answer within 1 s (worst %.3f s)", $probes, $worst));
close $_ for @slow;

# Requests that ask for memory.
sub app_rss_kb
{
	my ($kb) = slurp_file("/proc/$app->{KIDS}[0]{PID}/status") =~ /^VmRSS:\s+(\d+)/m;
	return $kb;
}
my $rss_before = app_rss_kb();
my $ranges = $http->get("$url/static/app.js", { headers => { Range => 'bytes=' . join(',', ('0-') x 1000) } });
ok($ranges->{status} == 416 || length($ranges->{content}) < 200_000,
	"1 000 byte ranges through nginx: $ranges->{status}, " . length($ranges->{content}) . ' bytes');
my ($status) = benzer_post_chunked($proxy_port, '/api/feedback', 64) =~ m{^HTTP/1\.1 (\d+)};
is($status, 413, 'a 64 MB chunked POST through nginx: 413');
my $growth = app_rss_kb() - $rss_before;
ok($growth < 10 * 1024, "the app's memory grew by less than 10 MB ($growth kB)");

# Abandoned slow searches: each would run 1 s (200 rows, 5 ms each) on one
# of the app's 4 pooled connections.
$node->safe_psql('postgres', 'UPDATE slow_switch SET slow = true');
sub abandon
{
	my ($port, $count) = @_;
	my @sockets;
	for my $i (1 .. $count)
	{
		my $socket = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 5)
		  or die "connect: $!";
		print $socket "GET /api/similar?id=$ids[$i]&model=pixels&version=v1&n=200 HTTP/1.1\r\n"
		  . "Host: 127.0.0.1:$port\r\n\r\n";
		push @sockets, $socket;
	}
	usleep(200_000);
	close $_ for @sockets;
}
sub median { my @s = sort { $a <=> $b } @_; return $s[ int(@s / 2) ]; }
for my $case ([ 'through nginx', $url, $proxy_port ], [ 'straight to the app', $app_url, $app_port ])
{
	my ($name, $base, $port) = @$case;
	my $baseline = median(map { timed($base, $probe) } 1 .. 3);
	abandon($port, 8);
	my $after = timed($base, $probe);
	ok($after - $baseline < 0.1,
		sprintf("$name: after 8 abandoned slow searches the next one takes %.3f s, "
			  . '%.3f s more than before (at most 0.1 s)', $after, $after - $baseline));
	ok( $node->poll_query_until(
			'postgres',
			"SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'benzer-app' "
			  . "AND state = 'active'"),
		"$name: ... and none of them is still running in the database");
}
$node->safe_psql('postgres', 'UPDATE slow_switch SET slow = false');

$proxy->kill_kill;
$app->kill_kill;
$node->stop;
done_testing();
