# The pattern-search app with a read replica (issue 13, item 3): started
# with --read-db naming a hot standby first and the primary second
# (target_session_attrs=prefer-standby), it sends searches and thumbnails
# to the standby and feedback to the primary; the standby's answers equal
# the primary's; a refine (which must see the votes just cast) runs on the
# primary; when the standby stops, searches go on through the primary.
#
# Needs the app built (app/build/benzer-app; run.sh builds it) and the
# demo loader's dependencies (python3-numpy, dataset-fashion-mnist).
use strict;
use warnings FATAL => 'all';

use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

use BenzerTAP;

my $repo = $ENV{BENZER_REPO} or die "BENZER_REPO is not set (run through test/t/run.sh)";
my $app = "$repo/app/build/benzer-app";
ok(-x $app, "the app is built ($app)") or BAIL_OUT("build it: make -C app");

my $primary = PostgreSQL::Test::Cluster->new('app_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', "autovacuum = off\nmax_connections = 40\n");
$primary->start;

# The demo database: 400 + 66 Fashion-MNIST images, the demo's indexes and
# the app's tables, loaded as demo/ does it.
benzer_demo_db($primary, $repo);

$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('app_standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

my $primary_info = 'host=' . $primary->host . ' port=' . $primary->port . ' dbname=postgres';
my $read_info =
    'host='
  . $standby->host . ','
  . $primary->host
  . ' port='
  . $standby->port . ','
  . $primary->port
  . ' dbname=postgres target_session_attrs=prefer-standby';

# Two apps: one reading from the replica, one on the primary alone.
sub start_app { return benzer_start_app($repo, $primary_info, @_); }
my ($replica_app, $replica_url, $replica_log) = start_app('--read-db', $read_info);
my ($primary_app, $primary_url) = start_app();
my $http = HTTP::Tiny->new(timeout => 60);
ok($http->get("$replica_url/healthz")->{success}, 'the app with --read-db answers');
like(slurp_file($replica_log), qr/reads on 2 more \(--read-db\)/,
	'it says where its reads go');

sub api
{
	my ($url, $headers) = @_;
	my $r = $http->get($url, { headers => $headers // {} });
	return ($r->{status}, $r->{success} ? decode_json($r->{content}) : $r->{content});
}

# The rows and scores of a search, as one string.
sub answers
{
	my ($base, $query) = @_;
	my ($status, $body) = api("$base/api/similar?$query");
	return "HTTP $status: $body" unless $status == 200;
	return join(',', map { "$_->{id}:" . sprintf('%.5f', $_->{score} // $_->{distance} // 0) }
		  @{ $body->{results} });
}

my @ids = split /\n/,
  $primary->safe_psql('postgres', 'SELECT image_id FROM images ORDER BY image_id LIMIT 6');
my $differ = 0;
my $searched = 0;
for my $id (@ids)
{
	for my $query ("id=$id&model=pixels&version=v1&n=10",
		"id=$id&model=pooled&version=v1&metric=cosine&n=10",
		"id=$id&model=pixels&version=v1&n=20&season=winter,summer")
	{
		my $on_replica = answers($replica_url, $query);
		my $on_primary = answers($primary_url, $query);
		$searched++ if $on_replica =~ /^\d+:/;
		$differ++ if $on_replica ne $on_primary;
	}
}
is($searched, 3 * @ids, 'every search through the replica found rows');
is($differ, 0, 'the replica answers exactly what the primary answers');
like(
	$standby->safe_psql('postgres',
		"SELECT string_agg(query, ' | ') FROM pg_stat_activity WHERE application_name = 'benzer-app'"),
	qr/<->|<=>/,
	"the searches ran on the standby (its benzer-app backends ran them)");
my $png = $http->get("$replica_url/img/$ids[0].png");
ok($png->{success} && $png->{content} =~ /^\x89PNG/, 'thumbnails come through the replica');

# Feedback goes to the primary; a refine, which reads it, runs there too.
# Both are a logged-in user's (the session lives on the primary).
my $session = benzer_app_login($repo, $primary_info, $replica_url, 'alice', 'alice-password');
my $vote = benzer_vote_json($ids[0], $ids[1], 'up');
my $posted = $http->post("$replica_url/api/feedback",
	{ headers => { 'Content-Type' => 'application/json', %$session }, content => $vote });
ok($posted->{success}, 'feedback through the app with a replica is accepted')
  or diag("$posted->{status} $posted->{content}");
is($primary->safe_psql('postgres',
		"SELECT vote FROM feedback WHERE query_id = $ids[0] AND result_id = $ids[1]"),
	'1', 'the vote is on the primary');
my ($refine_status, $refined) =
  api("$replica_url/api/similar?id=$ids[0]&model=pixels&version=v1&n=10&refine=1", $session);
is($refine_status, 200, 'a refine right after the vote works');
is($refined->{feedback}{liked}, 1, '... and sees the vote (it ran on the primary)')
  if ref $refined;
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres',
		"SELECT vote FROM feedback WHERE query_id = $ids[0] AND result_id = $ids[1]"),
	'1', 'the vote reached the standby');

# The standby stops: searches go on through the primary (the second host).
$standby->stop('fast');
my $after = answers($replica_url, "id=$ids[2]&model=pixels&version=v1&n=10");
is($after, answers($primary_url, "id=$ids[2]&model=pixels&version=v1&n=10"),
	'with the standby down, searches are answered through the primary');

$replica_app->kill_kill;
$primary_app->kill_kill;
$primary->stop;
my @problems = server_log_problems($primary);
is(scalar(@problems), 0, 'no crash in the primary log') or diag(join("\n", @problems));

done_testing();
