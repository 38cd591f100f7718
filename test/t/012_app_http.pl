# The pattern-search app's HTTP surface under abuse (issue 14, first part):
# what a page on another site, a DNS-rebinding page or a crafted request
# could do to today's app, each refused:
#
# - every response carries a Content-Security-Policy with frame-ancestors
#   'none', X-Frame-Options DENY and nosniff (no framing, no sniffing);
# - a Host name outside the allow-list (localhost, the --listen name,
#   --allow-host names; IP addresses are always allowed) gets 421: a
#   rebinding page cannot read the app;
# - a vote must be same-origin JSON: a cross-site no-cors POST (text/plain),
#   a foreign Origin or Sec-Fetch-Site: cross-site are refused and store
#   nothing, while the page's own vote works;
# - a %0A in a request cannot forge a log line, invalid UTF-8 in a
#   parameter name still gets valid JSON back;
# - more than 120 votes a minute from one address get 429;
# - several byte ranges, a chunked POST body and a huge Content-Length are
#   refused before they cost memory; /api/meta?refresh=1 (a second of
#   database work, anyone may ask) reloads at most once in 10 s;
# - the log rotates at --log-max-bytes;
# - /healthz says 503 while the database is down, ok once it is back.
#
# Needs the app built (app/build/benzer-app; run.sh builds it) and the
# demo loader's dependencies (python3-numpy, dataset-fashion-mnist).
use strict;
use warnings FATAL => 'all';

use HTTP::Tiny;
use IO::Socket::INET;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use BenzerTAP;

my $repo = $ENV{BENZER_REPO} or die "BENZER_REPO is not set (run through test/t/run.sh)";
ok(-x "$repo/app/build/benzer-app", 'the app is built') or BAIL_OUT('build it: make -C app');

my $node = PostgreSQL::Test::Cluster->new('app_http');
$node->init;
$node->append_conf('postgresql.conf', "autovacuum = off\n");
$node->start;
benzer_demo_db($node, $repo);
my $conninfo = 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres';
my ($app, $url, $log) = benzer_start_app($repo, $conninfo, '--allow-host', 'patterns.lan');
my ($port) = $url =~ /:(\d+)$/;
my $http = HTTP::Tiny->new(timeout => 30);

# One raw HTTP/1.1 request (headers as given, Connection: close); returns
# the status and the whole response.
sub raw
{
	my ($request) = @_;
	my $socket = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Timeout => 10)
	  or die "connect: $!";
	print $socket $request;
	local $/;
	my $response = <$socket> // '';
	close $socket;
	my ($status) = $response =~ m{^HTTP/1\.\d (\d+)};
	return ($status // 0, $response);
}

# Security headers on the page, the API, static files and errors.
for my $path ('/', '/api/meta', '/static/app.js', '/no/such/page')
{
	my $r = $http->get("$url$path");
	my $h = $r->{headers};
	like($h->{'content-security-policy'} // '', qr/frame-ancestors 'none'/,
		"$path: a Content-Security-Policy that forbids framing");
	ok(($h->{'x-frame-options'} // '') eq 'DENY'
		  && ($h->{'x-content-type-options'} // '') eq 'nosniff',
		"$path: X-Frame-Options DENY and nosniff");
}

# Host allow-list (DNS rebinding).
my ($status, $response) =
  raw("GET /api/meta HTTP/1.1\r\nHost: evil.example:$port\r\nConnection: close\r\n\r\n");
is($status, 421, 'a request for another host name is refused (421)');
like($response, qr/host not allowed: evil\.example/, '... saying which name and how to allow it');
($status) = raw("GET /api/meta HTTP/1.1\r\nHost: localhost:$port\r\nConnection: close\r\n\r\n");
is($status, 200, 'localhost is allowed');
($status) = raw("GET /api/meta HTTP/1.1\r\nHost: 192.0.2.7:$port\r\nConnection: close\r\n\r\n");
is($status, 200, 'an IP address is allowed (no DNS name to rebind)');
($status) = raw("GET /api/meta HTTP/1.1\r\nHost: PATTERNS.lan:$port\r\nConnection: close\r\n\r\n");
is($status, 200, 'a name given with --allow-host is allowed (any case)');

# Votes: only the page's own JSON requests.
my @ids = split /\n/,
  $node->safe_psql('postgres', 'SELECT image_id FROM images ORDER BY image_id LIMIT 3');
my $vote = benzer_vote_json($ids[0], $ids[1], 'up');
my $votes = "SELECT count(*) FROM feedback WHERE query_id = $ids[0] AND result_id = $ids[1]";
my $alice = benzer_app_login($repo, $conninfo, $url, 'alice', 'alice-password');
sub post
{
	my (%headers) = (%$alice, @_);
	my $extra = join('', map { "$_: $headers{$_}\r\n" } sort keys %headers);
	return raw("POST /api/feedback HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n$extra"
		  . 'Content-Length: ' . length($vote) . "\r\nConnection: close\r\n\r\n$vote");
}
($status) = post('Content-Type' => 'text/plain;charset=UTF-8', Origin => 'http://evil.example');
is($status, 415, "another site's no-cors vote (text/plain) is refused");
($status) = post('Content-Type' => 'application/json', Origin => 'http://evil.example');
is($status, 403, 'a JSON vote from another origin is refused');
($status) = post('Content-Type' => 'application/json', 'Sec-Fetch-Site' => 'cross-site');
is($status, 403, 'a vote the browser marks cross-site is refused');
is($node->safe_psql('postgres', $votes), '0', 'none of them stored a vote');
($status, $response) =
  post('Content-Type' => 'application/json', Origin => "http://127.0.0.1:$port");
is($status, 200, "the page's own vote is accepted") or diag($response);
is($node->safe_psql('postgres', $votes), '1', '... and stored');

# Users: votes are their user's, sent with the session's CSRF token.
like($node->safe_psql('postgres', "SELECT password_hash FROM app_users WHERE name = 'alice'"),
	qr/^\$argon2id\$v=19\$m=65536,t=2,p=1\$/, 'passwords are stored as Argon2id strings');
{
	local $ENV{BENZER_APP_PASSWORD} = 'short';
	system("$repo/app/build/benzer-app", '--db', $conninfo, '--add-user', 'carol');
	is($? >> 8, 2, '--add-user refuses a password under 8 characters');
}
sub login
{
	my ($name, $password) = @_;
	return $http->post("$url/api/login",
		{
			headers => { 'Content-Type' => 'application/json' },
			content => encode_json({ name => $name, password => $password })
		});
}
my $login = login('alice', 'wrong-password');
is($login->{status}, 401, 'a wrong password: 401');
is(login('nobody', 'alice-password')->{status}, 401, 'an unknown user: 401, the same answer');
$login = login('alice', 'alice-password');
is($login->{status}, 200, 'the right password: 200');
like($login->{headers}{'set-cookie'}, qr/^benzer_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/,
	'the session cookie is HttpOnly and SameSite=Strict');
my ($token) = $login->{headers}{'set-cookie'} =~ /benzer_session=([^;]+)/;
is($node->safe_psql('postgres', "SELECT count(*) FROM app_sessions WHERE token_sha256 = '$token'"),
	'0', 'the sessions table keeps no token, only its SHA-256');
my $feedback = sub {
	my ($headers, $body) = @_;
	return $http->post("$url/api/feedback",
		{ headers => { 'Content-Type' => 'application/json', %$headers }, content => $body });
};
my $down = benzer_vote_json($ids[0], $ids[2], 'down');
is($feedback->({}, $down)->{status}, 401, 'a vote without a session: 401');
is($feedback->({ Cookie => $alice->{Cookie} }, $down)->{status},
	403, 'a vote with the cookie but no CSRF token (what another site can send): 403');
is($feedback->({ Cookie => $alice->{Cookie}, 'X-CSRF-Token' => 'x' x 43 }, $down)->{status},
	403, 'a vote with a wrong CSRF token: 403');
my $bob = benzer_app_login($repo, $conninfo, $url, 'bob', 'bob-password');
is($feedback->($bob, $down)->{status}, 200, "bob's vote with his token: 200");
is( $node->safe_psql('postgres',
		"SELECT string_agg(u.name || ':' || f.vote, ',' ORDER BY u.name) FROM feedback f "
		  . "JOIN app_users u USING (user_id) WHERE query_id = $ids[0] AND result_id = $ids[2]"),
	'bob:-1', 'the vote is stored as his');
is($feedback->($alice, benzer_vote_json($ids[0], $ids[2], 'up'))->{status}, 200, 'alice votes the other way');
sub votes_seen
{
	my ($headers) = @_;
	my $r = $http->get("$url/api/similar?id=$ids[0]&model=pixels&version=v1&n=500",
		{ headers => $headers // {} });
	my $body = decode_json($r->{content});
	my ($result) = grep { $_->{id} == $ids[2] } @{ $body->{results} };
	return ($result ? $result->{vote} : 'absent') . ' of ' . ($body->{feedback}{liked} + $body->{feedback}{disliked});
}
my $alice_votes = $node->safe_psql('postgres',
	"SELECT count(*) FROM feedback JOIN app_users USING (user_id) WHERE name = 'alice' AND query_id = $ids[0]");
is(votes_seen($alice), "1 of $alice_votes", 'alice sees her own votes');
is(votes_seen($bob), '-1 of 1', 'bob sees his');
is(votes_seen(), '0 of 0', 'a visitor who is not logged in sees none');
is($http->get("$url/api/similar?id=$ids[0]&model=pixels&version=v1&n=10&refine=1")->{status},
	401, 'a refine without a session: 401 (it uses your votes)');
is($http->get("$url/api/similar?id=$ids[0]&model=pixels&version=v1&n=10&refine=1", { headers => $bob })->{status},
	200, '... with one: 200');
my $me = decode_json($http->get("$url/api/me", { headers => $bob })->{content});
is($me->{user} . ' ' . ($me->{csrf} eq $bob->{'X-CSRF-Token'} ? 'same token' : 'other token'),
	'bob same token', '/api/me names the user and gives the page its CSRF token');
my $logout = $http->post("$url/api/logout", { headers => { %$bob, 'Content-Type' => 'application/json' }, content => '{}' });
is($logout->{status}, 200, 'logout: 200');
like($logout->{headers}{'set-cookie'}, qr/^benzer_session=; .*Max-Age=0/, '... and the cookie is cleared');
is($feedback->($bob, $down)->{status}, 401, 'the old cookie no longer votes');
is($node->safe_psql('postgres', "SELECT count(*) FROM app_sessions JOIN app_users USING (user_id) WHERE name = 'bob'"),
	'0', "... and bob's session row is gone");
# At most 10 attempts a minute per user name: the 11th in a minute gets
# 429 (bob's login above was one; a minute may end in between, so up to
# 20 may pass first).
my ($refused, $attempts) = (0, 0);
while (!$refused && $attempts < 25)
{
	$attempts++;
	$refused = login('bob', "guess-$attempts")->{status} == 429;
}
ok($refused && $attempts >= 10 && $attempts <= 21,
	"password guessing: 429 after 10 attempts a minute for one user (attempt $attempts)");

# --require-login: searches and pictures need a session as well.
my ($closed_app, $closed_url) = benzer_start_app($repo, $conninfo, '--require-login');
is($http->get("$closed_url/api/meta")->{status}, 401, '--require-login: the API needs a session');
is($http->get("$closed_url/img/$ids[0].png")->{status}, 401, '... and so do the pictures');
is($http->get("$closed_url/")->{status}, 200, '... the page does not (it shows the login)');
is(decode_json($http->get("$closed_url/api/me")->{content})->{login_required}, JSON::PP::true,
	'... and /api/me says a login is required');
my $carol = benzer_app_login($repo, $conninfo, $closed_url, 'carol', 'carol-password');
is($http->get("$closed_url/api/meta", { headers => $carol })->{status}, 200, '... with a session: 200');
$closed_app->kill_kill;

# A script that floods votes gets 429 (at most 120 a minute per address;
# 250 votes cross that limit even when a minute ends in the middle).
my %codes;
for my $n (1 .. 250)
{
	my ($code) = post('Content-Type' => 'application/json');
	$codes{$code}++;
}
ok($codes{429} && $codes{200}, 'votes beyond 120 a minute from one address get 429 ('
	  . join(', ', map { "$_: $codes{$_}" } sort keys %codes) . ')');

# Requests that ask for much memory or work are refused up front.
sub app_rss_kb
{
	my $pid = $app->{KIDS}[0]{PID};
	my ($kb) = slurp_file("/proc/$pid/status") =~ /^VmRSS:\s+(\d+)/m;
	return $kb;
}
my $rss_before = app_rss_kb();
($status, $response) = raw("GET /static/app.js HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nRange: bytes="
	  . join(',', ('0-') x 1000) . "\r\nConnection: close\r\n\r\n");
is($status, 416, 'a request for 1 000 ranges of a file is refused (416)');
ok(length($response) < 4096, '... with a short answer (' . length($response) . ' bytes)');
# A chunked body the app would read whole before its 64 kB limit: refused
# after the headers, the body never read.
like(benzer_post_chunked($port, '/api/feedback', 64), qr{^HTTP/1\.1 411}, 'a chunked POST is refused (411)');
($status) = raw("POST /api/feedback HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
	  . "Content-Type: application/json\r\nContent-Length: 268435456\r\nConnection: close\r\n\r\n");
is($status, 413, 'a POST announcing 256 MB is refused before its body (413)');
my $growth = app_rss_kb() - $rss_before;
ok($growth < 10 * 1024, "the app's memory grew by less than 10 MB ($growth kB)");
$http->get("$url/api/meta?refresh=1") for 1 .. 3;
my @refreshes = slurp_file($log) =~ /(metadata reloaded|refresh skipped)/g;
is(join(',', @refreshes), 'metadata reloaded,refresh skipped,refresh skipped',
	'/api/meta?refresh=1 reloads at most once in 10 s');

# Browsers offer brotli, which httplib runs at its slowest quality (200 ms
# for a 100-result answer): the app answers them with gzip.
($status, $response) = raw("GET /api/similar?id=$ids[0]&model=pixels&version=v1&n=100 HTTP/1.1\r\n"
	  . "Host: 127.0.0.1:$port\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: close\r\n\r\n");
like($response, qr/^Content-Encoding: gzip\r$/mi, 'a browser offering brotli gets gzip');

# Uploaded pictures (POST /api/similar-image): a stored picture finds
# itself; a picture announcing 20 000 x 20 000 pixels (a decompression
# bomb: a few bytes of header) is refused before it is decoded; bodies over
# 4 MB and bodies that are not image/* are refused before they are read.
my $own = $http->get("$url/img/$ids[0].png")->{content};
($status, $response) = raw("POST /api/similar-image?model=pixels&version=v1&n=3 HTTP/1.1\r\n"
	  . "Host: 127.0.0.1:$port\r\nContent-Type: image/png\r\nContent-Length: "
	  . length($own) . "\r\nConnection: close\r\n\r\n$own");
like($response, qr/"results":\[\{"rank":1,"id":$ids[0],/, 'an uploaded picture of an image finds that image first');
my $bomb = "\x89PNG\r\n\x1a\n" . pack('N', 13) . 'IHDR' . pack('NNCCCCC', 20000, 20000, 8, 0, 0, 0, 0) . pack('N', 0);
($status, $response) = raw("POST /api/similar-image?model=pixels&version=v1 HTTP/1.1\r\n"
	  . "Host: 127.0.0.1:$port\r\nContent-Type: image/png\r\nContent-Length: "
	  . length($bomb) . "\r\nConnection: close\r\n\r\n$bomb");
is($status, 400, 'a picture announcing 20 000 x 20 000 pixels is refused (400)');
like($response, qr/at most 4096 pixels on a side/, '... saying why');
($status) = raw("POST /api/similar-image?model=pixels&version=v1 HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
	  . "Content-Type: image/png\r\nContent-Length: 8388608\r\nConnection: close\r\n\r\n");
is($status, 413, 'an upload over 4 MB is refused before it is read (413)');
($status) = raw("POST /api/similar-image?model=pixels&version=v1 HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
	  . "Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi");
is($status, 415, 'an upload that is not image/* is refused (415)');

# Log lines cannot be forged; JSON stays JSON.
raw("GET /api/images?x%0A1970-01-01T00:00:00Z%20forged=1 HTTP/1.1\r\nHost: 127.0.0.1:$port\r\n"
	  . "Connection: close\r\n\r\n");
($status, $response) =
  raw("GET /api/similar?%ff%fe=1 HTTP/1.1\r\nHost: 127.0.0.1:$port\r\nConnection: close\r\n\r\n");
my ($body) = $response =~ /\r\n\r\n(.*)\z/s;
ok($status >= 400 && eval { decode_json($body); 1 },
	"invalid UTF-8 in a parameter name gets valid JSON back ($status)")
  or diag($body);
my $logged = slurp_file($log);
unlike($logged, qr/^1970-01-01T00:00:00Z forged/m, 'a %0A in a request does not forge a log line');
like($logged, qr/\\x0a1970-01-01/, '... it is logged escaped');

# A bounded log: past --log-max-bytes the file rotates to FILE.1.
my $bounded = "${PostgreSQL::Test::Utils::tmp_check}/bounded.log";
my ($app2, $url2) =
  benzer_start_app($repo, $conninfo, '--log-file', $bounded, '--log-max-bytes', '4096');
$http->get("$url2/api/images?limit=1&q=line$_") for 1 .. 100;
$app2->kill_kill;
ok(-s "$bounded.1" && -s "$bounded.1" < 4096 + 512 && (-s $bounded // 0) < 4096 + 512,
	'the log rotates at --log-max-bytes (' . (-s "$bounded.1" // 0) . ' + ' . (-s $bounded // 0) . ' bytes)');

# Health follows the database.
$node->stop('fast');
my $health = $http->get("$url/healthz");
is($health->{status}, 503, '/healthz says 503 while the database is down');
like($health->{content}, qr/"ok":false/, '... with ok false and the reason');
$node->start;
my $back = 0;
for (1 .. 50)
{
	$back = $http->get("$url/healthz")->{status} == 200 and last;
	sleep 1;
}
ok($back, '/healthz is ok again once the database is back');

$app->kill_kill;
$node->stop;
done_testing();
