# 005_concurrency.pl again, with benzer preloaded: the search service
# answers the Flat index's searches while pgbench clients insert, delete and
# search and another client runs VACUUM and merges (plain and compacting) in
# a loop. The service's copy of an index generation must never give an
# answer the backend's own search would not: every search still checks its
# top 10 against a sequential scan in the same snapshot, and a merge that
# replaces the lists under a request must only make the service decline
# (the backend then searches itself) or answer from the generation the
# request named.
use strict;
use warnings FATAL => 'all';
use FindBin;

# Loaded here, at compile time, so that their INIT blocks run for this
# script (they set up its tmp_check directory and port reservations).
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

$ENV{BENZER_TAP_SERVICE} = 1;
my $test = "$FindBin::Bin/005_concurrency.pl";
do $test;
die "could not run $test: $@" if $@;
