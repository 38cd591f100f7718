// shard_direct.h: one statement per shard on benzer's own connections.
//
// The shard merge (shard_merge.cpp) normally reads each shard through
// postgres_fdw, which wraps every query in a remote transaction and a
// cursor: START TRANSACTION, DECLARE, FETCH, CLOSE and COMMIT, the first
// two and CLOSE one shard after the other. For a statement that is the
// whole of its transaction (autocommit, the app's searches) none of that
// buys anything: a single SELECT sees one snapshot on each shard either
// way, and there are no earlier writes in the transaction that only the
// remote transaction could see. Such a statement sends every shard its
// SQL at once, as one plain statement, and waits for all of them.
#pragma once

#include "pg/postgres_headers.h"

extern "C" {
#include "libpq-fe.h"
}

// A function of postgres_fdw's library, looked up once per backend;
// nullptr when the library lacks it.
void* postgres_fdw_function(const char* name);

// The settings that change what a faiss index scan returns; a shard runs
// its part of a query with the coordinator session's values.
inline const char* const kShardSearchSettings[] = {
    "benzer.recall",    "benzer.nprobe",          "benzer.ef_search",          "benzer.k_factor",
    "benzer.scan_rows", "benzer.max_scan_tuples", "benzer.exact_filter_limit",
};
constexpr int kShardSearchSettingCount =
    static_cast<int>(sizeof(kShardSearchSettings) / sizeof(kShardSearchSettings[0]));

// The coordinator session's value of kShardSearchSettings[i] when it was
// set (SET, ALTER ROLE / DATABASE, the configuration file), or nullptr when
// it is at benzer's built-in default and the shard's own default applies.
const char* shard_search_setting(int i);

// One shard's part of a query: its server, the user whose mapping opens
// the connection, its SQL and its parameters as text (nullptr for NULL).
struct ShardStatement {
    Oid server;
    Oid user;
    const char* sql;
    int param_count;
    const char* const* params;
};

// Runs statements[0 .. count) on their shards, all at once, each as one
// statement of its own, after bringing each connection's search settings
// to the session's. results[i] receives statement i's rows (to be freed
// with PQclear). A shard that cannot be reached or fails raises an ERROR
// naming it; its connection and those still busy are closed first, with
// their queries cancelled. A connection found broken before its statement
// is sent (the shard restarted) is opened again once.
void shard_run_statements(const ShardStatement* statements, int count, PGresult** results);

// True when the statement now starting is the whole of its transaction,
// so that a plain statement on each shard answers what a remote
// transaction would: not in a transaction block, and nothing earlier in
// this transaction wrote (the command counter is still at its start).
bool shard_direct_possible(void);
