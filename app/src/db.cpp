#include "db.h"

#include <poll.h>

namespace benzer_app {

namespace {

thread_local std::function<bool()> t_client_gone;

// How often a waiting query checks whether its client is still there.
constexpr int kClientCheckMs = 10;

std::string trim_message(const char* m) {
    std::string s = m ? m : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

}  // namespace

void set_client_gone_check(std::function<bool()> check) { t_client_gone = std::move(check); }

PGresult* Connection::wait_result() {
    bool cancelled = false;
    for (;;) {
        if (!PQconsumeInput(pg_)) return nullptr;
        if (!PQisBusy(pg_)) break;
        pollfd p{PQsocket(pg_), POLLIN, 0};
        int ready = poll(&p, 1, kClientCheckMs);
        if (ready == 0 && !cancelled && t_client_gone && t_client_gone()) {
            // The client left: stop the query; its error result follows.
            if (PGcancel* cancel = PQgetCancel(pg_)) {
                char error[256];
                PQcancel(cancel, error, sizeof(error));
                PQfreeCancel(cancel);
            }
            cancelled = true;
        }
    }
    // The last result, or the first error.
    PGresult* kept = nullptr;
    while (PGresult* r = PQgetResult(pg_)) {
        if (kept && PQresultStatus(kept) == PGRES_FATAL_ERROR) {
            PQclear(r);
            continue;
        }
        if (kept) PQclear(kept);
        kept = r;
    }
    return kept;
}

void Connection::open() {
    if (pg_ && PQstatus(pg_) == CONNECTION_OK) return;
    if (pg_) {
        PQfinish(pg_);
        pg_ = nullptr;
    }
    pg_ = PQconnectdb(conninfo_.c_str());
    if (PQstatus(pg_) != CONNECTION_OK) {
        std::string msg = trim_message(PQerrorMessage(pg_));
        PQfinish(pg_);
        pg_ = nullptr;
        throw DbError("cannot connect to the database: " + msg, "", true);
    }
    // Custom plans for every execution: the statements filter on
    // model = $2 AND version = $3, and only with the values known at plan
    // time can the planner match the partial faiss index of that model
    // (WHERE model = 'pixels' AND version = 'v1') and fold the optional
    // filters ($5 IS NULL OR design = ANY ($5)) into index conditions.
    const char* setup =
        "SET plan_cache_mode = force_custom_plan;"
        "SET statement_timeout = '30s';"
        "SET application_name = 'benzer-app';"
        "SET client_min_messages = warning";
    check(PQexec(pg_, setup));
    if (statements_) {
        for (const auto& s : *statements_) {
            check(PQprepare(pg_, s.name.c_str(), s.sql.c_str(), 0, nullptr));
        }
    }
}

Result Connection::check(PGresult* r) {
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Result(r);
    std::string msg = trim_message(r ? PQresultErrorMessage(r) : PQerrorMessage(pg_));
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    std::string sqlstate = state ? state : "";
    if (r) PQclear(r);
    bool lost = PQstatus(pg_) != CONNECTION_OK;
    throw DbError(msg, sqlstate, lost);
}

Result Connection::exec(const std::string& name, const Params& params, int result_format) {
    std::vector<const char*> values(params.size());
    for (size_t i = 0; i < params.size(); i++) values[i] = params[i] ? params[i]->c_str() : nullptr;
    for (int attempt = 0;; attempt++) {
        open();
        try {
            if (!t_client_gone)
                return check(PQexecPrepared(pg_, name.c_str(), static_cast<int>(params.size()),
                                            values.data(), nullptr, nullptr, result_format));
            if (!PQsendQueryPrepared(pg_, name.c_str(), static_cast<int>(params.size()),
                                     values.data(), nullptr, nullptr, result_format))
                return check(nullptr);
            return check(wait_result());
        } catch (const DbError& e) {
            if (!e.connection_failure() || attempt > 0) throw;
            // The server closed the connection (restart, terminated backend):
            // reconnect, prepare again and retry once.
        }
    }
}

Result Connection::exec_params(const std::string& sql, const Params& params) {
    std::vector<const char*> values(params.size());
    for (size_t i = 0; i < params.size(); i++) values[i] = params[i] ? params[i]->c_str() : nullptr;
    for (int attempt = 0;; attempt++) {
        open();
        try {
            return check(PQexecParams(pg_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                                      values.data(), nullptr, nullptr, 0));
        } catch (const DbError& e) {
            // As exec(): a connection the server closed is opened again once.
            if (!e.connection_failure() || attempt > 0) throw;
        }
    }
}

Lease::~Lease() {
    if (c_) pool_->release(c_);
}

Pool::Pool(const std::string& conninfo, int size,
           std::vector<Statement> (*build)(const Capabilities&)) {
    {
        Connection probe(conninfo, nullptr);
        Result r = probe.exec_params(
            "SELECT to_regclass('clusters') IS NOT NULL,"
            "       to_regclass('feedback') IS NOT NULL AND to_regclass('app_users') IS NOT NULL"
            "       AND to_regclass('app_sessions') IS NOT NULL AND EXISTS (SELECT FROM "
            "pg_attribute"
            "           WHERE attrelid = to_regclass('feedback') AND attname = 'user_id'),"
            "       to_regprocedure('rocchio(vector, vector[], vector[], double precision,"
            "                                double precision, double precision)') IS NOT NULL,"
            "       to_regprocedure('cosine_similarity(vector, vector)') IS NOT NULL,"
            "       to_regprocedure('euclidean_similarity(vector, vector)') IS NOT NULL,"
            "       to_regprocedure('l2_normalize(vector)') IS NOT NULL,"
            "       (SELECT extversion FROM pg_extension WHERE extname = 'benzer'),"
            "       to_regclass('images') IS NOT NULL AND to_regclass('features') IS NOT NULL",
            {});
        if (r.is_null(0, 6))
            throw DbError("the benzer extension is not installed in this database", "", false);
        if (!r.boolean(0, 7))
            throw DbError("the tables images and features are missing (demo/schema.sql)", "",
                          false);
        caps_.clusters = r.boolean(0, 0);
        caps_.feedback = r.boolean(0, 1);
        caps_.users = caps_.feedback;
        caps_.rocchio = r.boolean(0, 2);
        caps_.cosine_similarity = r.boolean(0, 3);
        caps_.euclidean_similarity = r.boolean(0, 4);
        caps_.l2_normalize = r.boolean(0, 5);
        caps_.extension_version = r.text(0, 6);
    }
    statements_ = build(caps_);
    for (int i = 0; i < size; i++) {
        all_.push_back(std::make_unique<Connection>(conninfo, &statements_));
        all_.back()->open();
        free_.push_back(all_.back().get());
    }
}

Lease Pool::acquire(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::unique_lock<std::mutex> lock(mu_);
    // While it waits its turn, a request whose client left gives up.
    while (!cv_.wait_for(lock, std::chrono::milliseconds(kClientCheckMs),
                         [this] { return !free_.empty(); })) {
        if (std::chrono::steady_clock::now() >= deadline)
            throw DbError("all database connections are busy", "pool", false);
        if (t_client_gone) {
            lock.unlock();
            bool gone = t_client_gone();
            lock.lock();
            if (gone && free_.empty())
                throw DbError("the client went away while waiting for a connection", "57014",
                              false);
        }
    }
    Connection* c = free_.back();
    free_.pop_back();
    return Lease(this, c);
}

void Pool::release(Connection* c) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        free_.push_back(c);
    }
    cv_.notify_one();
}

std::string pg_text_array(const std::vector<std::string>& values) {
    std::string out = "{";
    for (size_t i = 0; i < values.size(); i++) {
        if (i) out.push_back(',');
        out.push_back('"');
        for (char c : values[i]) {
            if (c == '"' || c == '\\') out.push_back('\\');
            out.push_back(c);
        }
        out.push_back('"');
    }
    out.push_back('}');
    return out;
}

}  // namespace benzer_app
