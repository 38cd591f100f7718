// shard_direct.cpp: one statement per shard on benzer's own connections.
//
// See shard_direct.h for when this replaces postgres_fdw's remote
// transaction. The connections are opened from the same foreign server
// and user mapping options, with the same checks and session settings as
// postgres_fdw's (connection.c: connect_pg_server, check_conn_params,
// configure_remote_session), because the SQL they run is the SQL
// postgres_fdw deparsed for its own sessions (every name qualified for a
// search_path of pg_catalog). They live as long as the backend, one per
// user mapping, and are opened again when the options they were opened
// with change or the connection is found broken.
//
// Nothing here throws: this is C-style code between PostgreSQL calls, and
// the one PG_TRY block closes every connection an ERROR would leave
// mid-query (cancelling its query first), so the next statement starts
// from idle connections.
#include "pg/shard_direct.h"

extern "C" {
#include "access/xact.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"
}

namespace {

const char kPostgresFdwLibrary[] = "$libdir/postgres_fdw";

using ExtractOptionsFn = int (*)(List*, const char**, const char**);
using ProcessAppnameFn = char* (*)(const char*);

// A connection of benzer's to one shard, for one user mapping.
struct ShardConnection {
    Oid user_mapping;
    char* options;  // the connection options it was opened with, one string
    PGconn* conn;
    // The value of each search setting last set on the connection, or
    // nullptr while it has the shard's default.
    char* settings[kShardSearchSettingCount];
    bool in_use;  // a statement of the running call is on it
    // What waits for its answers: the socket, the latch, the postmaster's
    // death (made once, not an epoll set per wait).
    WaitEventSet* waits;
    // The SQL of the statements prepared on it, statement i named
    // benzer_shard_<i> (in TopMemoryContext).
    List* prepared;
};

// At most this many statements are prepared on a connection (WHERE
// constants are part of the SQL, so each filter value has its own); the
// rest are sent unprepared.
constexpr int kMaxPrepared = 64;

// The open connections (in TopMemoryContext).
List* connections = NIL;

// A function of postgres_fdw's library; an ERROR when it lacks it.
void* required_function(const char* name) {
    void* function = postgres_fdw_function(name);
    if (function == nullptr)
        ereport(ERROR,
                (errcode(ERRCODE_FDW_ERROR),
                 errmsg("postgres_fdw lacks the function \"%s\" benzer's shard merge calls", name),
                 errhint("Turn benzer.shard_pushdown off.")));
    return function;
}

// True when the user mapping says password_required (its default).
bool password_required(UserMapping* user) {
    ListCell* cell;
    foreach (cell, user->options) {
        DefElem* option = static_cast<DefElem*>(lfirst(cell));
        if (strcmp(option->defname, "password_required") == 0) return defGetBoolean(option);
    }
    return true;
}

// Closes a connection (cancelling a query in progress) and forgets the
// settings it had.
void close_connection(ShardConnection* shard) {
    if (shard->conn == nullptr) return;
    if (PQtransactionStatus(shard->conn) == PQTRANS_ACTIVE) {
        PGcancel* cancel = PQgetCancel(shard->conn);
        char error[256];
        if (cancel != nullptr) {
            PQcancel(cancel, error, sizeof(error));
            PQfreeCancel(cancel);
        }
    }
    PQfinish(shard->conn);
    ReleaseExternalFD();
    shard->conn = nullptr;
    if (shard->waits != nullptr) FreeWaitEventSet(shard->waits);
    shard->waits = nullptr;
    list_free_deep(shard->prepared);
    shard->prepared = NIL;
    for (char*& setting : shard->settings) {
        if (setting != nullptr) pfree(setting);
        setting = nullptr;
    }
}

// Opens the connection to server for user, as postgres_fdw would.
PGconn* open_connection(ForeignServer* server, UserMapping* user, const char** keywords,
                        const char** values) {
    if (!superuser_arg(user->userid)) {
        bool has_password = false;
        for (int i = 0; keywords[i] != nullptr; i++)
            if (strcmp(keywords[i], "password") == 0 && values[i][0] != '\0') has_password = true;
        if (!has_password && password_required(user))
            ereport(ERROR, (errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
                            errmsg("password is required"),
                            errdetail("Non-superusers must provide a password in the user "
                                      "mapping.")));
    }
    if (!AcquireExternalFD())
        ereport(ERROR, (errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
                        errmsg("could not connect to server \"%s\"", server->servername),
                        errdetail("There are too many open files on the local server."),
                        errhint("Raise the server's max_files_per_process and/or \"ulimit -n\" "
                                "limits.")));
    PGconn* conn = PQconnectdbParams(keywords, values, false);
    const char* failure = nullptr;
    int code = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
    if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
        failure = conn != nullptr ? pchomp(PQerrorMessage(conn)) : "out of memory";
    } else if (!superuser_arg(user->userid) && password_required(user) &&
               !PQconnectionUsedPassword(conn)) {
        failure = "Non-superuser cannot connect if the server does not request a password.";
        code = ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED;
    } else {
        PGresult* result = PQexec(conn,
                                  "SET search_path = pg_catalog; SET timezone = 'GMT'; "
                                  "SET datestyle = ISO; SET intervalstyle = postgres; "
                                  "SET extra_float_digits = 3");
        if (PQresultStatus(result) != PGRES_COMMAND_OK) failure = pchomp(PQerrorMessage(conn));
        PQclear(result);
    }
    if (failure != nullptr) {
        PQfinish(conn);
        ReleaseExternalFD();
        if (code == ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED)
            ereport(ERROR, (errcode(code), errmsg("password is required"), errdetail("%s", failure),
                            errhint("Target server's authentication method must be changed or "
                                    "password_required=false set in the user mapping "
                                    "attributes.")));
        ereport(ERROR,
                (errcode(code), errmsg("could not connect to server \"%s\"", server->servername),
                 errdetail_internal("%s", failure)));
    }
    return conn;
}

// The connection to server for user: the open one when its options are
// unchanged and it is idle and sound, else a new one (*reused false). One
// a statement of the running call is on is returned as it is.
ShardConnection* shard_connection(Oid server_id, Oid user_id, bool* reused) {
    ForeignServer* server = GetForeignServer(server_id);
    UserMapping* user = GetUserMapping(user_id, server_id);

    int size = list_length(server->options) + list_length(user->options) + 4;
    const char** keywords = static_cast<const char**>(palloc(size * sizeof(char*)));
    const char** values = static_cast<const char**>(palloc(size * sizeof(char*)));
    auto extract =
        reinterpret_cast<ExtractOptionsFn>(required_function("ExtractConnectionOptions"));
    int n = extract(server->options, keywords, values);
    n += extract(user->options, keywords + n, values + n);
    const char* application_name = GetConfigOption("postgres_fdw.application_name", true, false);
    if (application_name != nullptr && application_name[0] != '\0') {
        keywords[n] = "application_name";
        values[n++] = application_name;
    }
    auto process_appname =
        reinterpret_cast<ProcessAppnameFn>(required_function("process_pgfdw_appname"));
    for (int i = n - 1; i >= 0; i--) {
        if (strcmp(keywords[i], "application_name") != 0 || values[i][0] == '\0') continue;
        char* name = process_appname(values[i]);
        if (name[0] != '\0') {
            values[i] = name;
            break;
        }
        values[i] = nullptr;
    }
    keywords[n] = "fallback_application_name";
    values[n++] = "postgres_fdw";
    keywords[n] = "client_encoding";
    values[n++] = GetDatabaseEncodingName();
    keywords[n] = values[n] = nullptr;

    StringInfoData options;
    initStringInfo(&options);
    for (int i = 0; i < n; i++)
        if (values[i] != nullptr) appendStringInfo(&options, "%s=%s\n", keywords[i], values[i]);

    ShardConnection* shard = nullptr;
    ListCell* cell;
    foreach (cell, connections) {
        auto* candidate = static_cast<ShardConnection*>(lfirst(cell));
        if (candidate->user_mapping == user->umid) shard = candidate;
    }
    if (shard == nullptr) {
        shard = static_cast<ShardConnection*>(
            MemoryContextAllocZero(TopMemoryContext, sizeof(ShardConnection)));
        shard->user_mapping = user->umid;
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        connections = lappend(connections, shard);
        MemoryContextSwitchTo(old);
    }
    *reused = shard->conn != nullptr;
    if (shard->in_use) return shard;
    if (shard->conn != nullptr &&
        (strcmp(shard->options, options.data) != 0 || PQstatus(shard->conn) != CONNECTION_OK ||
         PQtransactionStatus(shard->conn) != PQTRANS_IDLE))
        close_connection(shard);
    if (shard->conn == nullptr) {
        *reused = false;
        shard->conn = open_connection(server, user, keywords, values);
        shard->waits = CreateWaitEventSet(TopMemoryContext, 3);
        AddWaitEventToSet(shard->waits, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, nullptr);
        AddWaitEventToSet(shard->waits, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, nullptr, nullptr);
        AddWaitEventToSet(shard->waits, WL_SOCKET_READABLE, PQsocket(shard->conn), nullptr,
                          nullptr);
        if (shard->options != nullptr) pfree(shard->options);
        shard->options = MemoryContextStrdup(TopMemoryContext, options.data);
    }
    return shard;
}

// Raises a shard's error, as postgres_fdw words it, naming the shard.
void report_shard_error(PGresult* result, PGconn* conn, Oid server, const char* sql) {
    const char* sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
    const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL);
    const char* hint = PQresultErrorField(result, PG_DIAG_MESSAGE_HINT);
    const char* context = PQresultErrorField(result, PG_DIAG_CONTEXT);
    int code = sqlstate != nullptr
                   ? MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4])
                   : ERRCODE_CONNECTION_FAILURE;
    if (primary == nullptr) primary = pchomp(PQerrorMessage(conn));
    primary = pstrdup(primary[0] != '\0' ? primary : "could not obtain message string");
    detail = detail != nullptr ? pstrdup(detail) : nullptr;
    hint = hint != nullptr ? pstrdup(hint) : nullptr;
    context = context != nullptr ? pstrdup(context) : nullptr;
    PQclear(result);
    ereport(ERROR, (errcode(code), errmsg_internal("%s", primary),
                    detail != nullptr ? errdetail_internal("%s", detail) : 0,
                    hint != nullptr ? errhint("%s", hint) : 0,
                    context != nullptr ? errcontext("%s", context) : 0,
                    errcontext("remote SQL command on server \"%s\": %s",
                               GetForeignServer(server)->servername, sql)));
}

// Waits until the connection has a whole result ready, answering
// interrupts. False when the connection failed.
bool wait_for_result(ShardConnection* shard) {
    for (;;) {
        if (!PQconsumeInput(shard->conn)) return false;
        if (!PQisBusy(shard->conn)) return true;
        WaitEvent event;
        WaitEventSetWait(shard->waits, -1L, &event, 1, PG_WAIT_EXTENSION);
        if (event.events & WL_LATCH_SET) ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
}

// The last result of the statement sent on the connection (nullptr when
// the connection failed before one came), reading up to the end.
PGresult* read_result(ShardConnection* shard) {
    PGresult* last = nullptr;
    for (;;) {
        if (!wait_for_result(shard)) break;
        PGresult* result = PQgetResult(shard->conn);
        if (result == nullptr) break;
        if (last != nullptr) {
            // Keep an error over a later result.
            if (PQresultStatus(last) == PGRES_FATAL_ERROR) {
                PQclear(result);
                continue;
            }
            PQclear(last);
        }
        last = result;
    }
    return last;
}

// The statement that brings a connection's search settings to the
// session's, or nullptr when they are already there.
char* settings_statement(ShardConnection* shard) {
    StringInfoData sql;
    initStringInfo(&sql);
    for (int i = 0; i < kShardSearchSettingCount; i++) {
        const char* wanted = shard_search_setting(i);
        const char* has = shard->settings[i];
        if (wanted == nullptr ? has == nullptr : (has != nullptr && strcmp(wanted, has) == 0))
            continue;
        if (wanted == nullptr)
            appendStringInfo(&sql, "RESET %s; ", kShardSearchSettings[i]);
        else
            appendStringInfo(&sql, "SET %s = %s; ", kShardSearchSettings[i],
                             quote_literal_cstr(wanted));
    }
    return sql.len > 0 ? sql.data : nullptr;
}

// Records that the connection now has the session's search settings.
void settings_set(ShardConnection* shard) {
    for (int i = 0; i < kShardSearchSettingCount; i++) {
        const char* wanted = shard_search_setting(i);
        if (shard->settings[i] != nullptr) pfree(shard->settings[i]);
        shard->settings[i] =
            wanted != nullptr ? MemoryContextStrdup(TopMemoryContext, wanted) : nullptr;
    }
}

// What one statement's shard is doing while shard_run_statements runs.
struct Attempt {
    ShardConnection* shard;
    bool sent;      // its SQL went out
    bool reused;    // its connection was open before this statement
    bool prepared;  // it was sent as a prepared statement
};

// Brings the connection's search settings to the session's when they
// differ: a round trip, only after the session changed one.
void send_settings(const ShardStatement* statement, ShardConnection* shard) {
    char* sql = settings_statement(shard);
    if (sql == nullptr) return;
    PGresult* result = PQexec(shard->conn, sql);
    if (PQresultStatus(result) != PGRES_COMMAND_OK)
        report_shard_error(result, shard->conn, statement->server, sql);
    PQclear(result);
    settings_set(shard);
}

// The number of the statement prepared with statement's SQL on shard's
// connection, preparing it there (one round trip, the first time only)
// while there is room; -1 when it is to be sent unprepared. The shard then
// parses and plans the SQL once, not for every query.
int prepared_number(const ShardStatement* statement, ShardConnection* shard) {
    int number = 0;
    ListCell* cell;
    foreach (cell, shard->prepared) {
        if (strcmp(static_cast<char*>(lfirst(cell)), statement->sql) == 0) return number;
        number++;
    }
    if (number >= kMaxPrepared) return -1;
    char name[32];
    snprintf(name, sizeof(name), "benzer_shard_%d", number);
    PGresult* result = PQprepare(shard->conn, name, statement->sql, 0, nullptr);
    if (PQresultStatus(result) != PGRES_COMMAND_OK)
        report_shard_error(result, shard->conn, statement->server, statement->sql);
    PQclear(result);
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    shard->prepared = lappend(shard->prepared, pstrdup(statement->sql));
    MemoryContextSwitchTo(old);
    return number;
}

// Sends statement on its shard's connection (opened when needed, its
// settings brought up to date), unless another statement of this call is
// using that connection; false then.
bool send_statement(const ShardStatement* statement, Attempt* attempt) {
    ShardConnection* shard = shard_connection(statement->server, statement->user, &attempt->reused);
    if (shard->in_use) return false;
    attempt->shard = shard;
    shard->in_use = true;
    send_settings(statement, shard);
    int number = prepared_number(statement, shard);
    attempt->prepared = number >= 0;
    char name[32];
    snprintf(name, sizeof(name), "benzer_shard_%d", number);
    int sent = number >= 0 ? PQsendQueryPrepared(shard->conn, name, statement->param_count,
                                                 statement->params, nullptr, nullptr, 0)
                           : PQsendQueryParams(shard->conn, statement->sql, statement->param_count,
                                               nullptr, statement->params, nullptr, nullptr, 0);
    if (!sent) report_shard_error(nullptr, shard->conn, statement->server, statement->sql);
    attempt->sent = true;
    return true;
}

// Raises the error of a prepared statement, closing its connection: the
// statement may fail for good (a shard table changed its columns), and a
// new connection prepares it again.
void report_prepared_error(PGresult* result, const ShardStatement* statement,
                           ShardConnection* shard) {
    PG_TRY();
    { report_shard_error(result, shard->conn, statement->server, statement->sql); }
    PG_FINALLY();
    { close_connection(shard); }
    PG_END_TRY();
}

// Reads the rows of a sent statement; a connection the shard closed since
// its last statement (a restart) fails at once, and is opened again and
// the statement sent again, once (a SELECT is safe to repeat).
PGresult* read_statement(const ShardStatement* statement, Attempt* attempt) {
    PGresult* result = read_result(attempt->shard);
    if (PQresultStatus(result) != PGRES_TUPLES_OK && attempt->reused &&
        PQstatus(attempt->shard->conn) == CONNECTION_BAD) {
        PQclear(result);
        close_connection(attempt->shard);
        attempt->shard->in_use = false;
        send_statement(statement, attempt);
        result = read_result(attempt->shard);
    }
    attempt->shard->in_use = false;
    if (PQresultStatus(result) != PGRES_TUPLES_OK && attempt->prepared)
        report_prepared_error(result, statement, attempt->shard);
    if (PQresultStatus(result) != PGRES_TUPLES_OK)
        report_shard_error(result, attempt->shard->conn, statement->server, statement->sql);
    return result;
}

}  // namespace

void* postgres_fdw_function(const char* name) {
    // Looked up once: load_external_function checks the library's file
    // each time, a measurable share of a 1 ms query.
    struct Known {
        const char* name;
        void* function;
    };
    static Known known[16];
    static int count = 0;
    for (int i = 0; i < count; i++)
        if (strcmp(known[i].name, name) == 0) return known[i].function;
    void* function =
        reinterpret_cast<void*>(load_external_function(kPostgresFdwLibrary, name, false, nullptr));
    if (function != nullptr && count < static_cast<int>(lengthof(known)))
        known[count++] = {MemoryContextStrdup(TopMemoryContext, name), function};
    return function;
}

const char* shard_search_setting(int i) {
    // Found once: the settings' records live as long as the backend.
    static struct config_generic* settings[kShardSearchSettingCount];
    static bool found = false;
    if (!found) {
        struct config_generic** variables = get_guc_variables();
        int count = GetNumConfigOptions();
        for (int v = 0; v < count; v++)
            for (int j = 0; j < kShardSearchSettingCount; j++)
                if (strcmp(variables[v]->name, kShardSearchSettings[j]) == 0)
                    settings[j] = variables[v];
        found = true;
    }
    if (settings[i] == nullptr || settings[i]->source == PGC_S_DEFAULT) return nullptr;
    return GetConfigOption(kShardSearchSettings[i], true, false);
}

bool shard_direct_possible(void) {
    return !IsTransactionBlock() && GetCurrentCommandId(false) == FirstCommandId;
}

void shard_run_statements(const ShardStatement* statements, int count, PGresult** results) {
    auto* attempts = static_cast<Attempt*>(palloc0(count * sizeof(Attempt)));
    for (int i = 0; i < count; i++) results[i] = nullptr;
    PG_TRY();
    {
        // Every shard's SQL at once; statements that share a connection
        // (partitions on one server) go in later rounds.
        int done = 0;
        while (done < count) {
            for (int i = 0; i < count; i++)
                if (!attempts[i].sent) send_statement(&statements[i], &attempts[i]);
            for (int i = 0; i < count; i++) {
                if (!attempts[i].sent || results[i] != nullptr) continue;
                results[i] = read_statement(&statements[i], &attempts[i]);
                done++;
            }
        }
    }
    PG_CATCH();
    {
        for (int i = 0; i < count; i++) {
            if (results[i] != nullptr) PQclear(results[i]);
            results[i] = nullptr;
        }
        ListCell* cell;
        foreach (cell, connections) {
            auto* shard = static_cast<ShardConnection*>(lfirst(cell));
            shard->in_use = false;
            if (shard->conn != nullptr && (PQstatus(shard->conn) != CONNECTION_OK ||
                                           PQtransactionStatus(shard->conn) != PQTRANS_IDLE))
                close_connection(shard);
        }
        PG_RE_THROW();
    }
    PG_END_TRY();
    pfree(attempts);
}
