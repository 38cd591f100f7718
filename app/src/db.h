// libpq access for the app: a fixed pool of connections, each with the app's
// statements prepared once. Every query is a prepared statement executed
// with parameters (PQexecPrepared); no SQL text is ever built from request
// values.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace benzer_app {

using Param = std::optional<std::string>;  // nullopt = SQL NULL
using Params = std::vector<Param>;

// A failed query or connection. sqlstate is empty for connection failures.
class DbError : public std::runtime_error {
  public:
    DbError(const std::string& msg, std::string sqlstate, bool connection)
        : std::runtime_error(msg), sqlstate_(std::move(sqlstate)), connection_(connection) {}
    const std::string& sqlstate() const { return sqlstate_; }
    bool connection_failure() const { return connection_; }

  private:
    std::string sqlstate_;
    bool connection_;
};

// Owns a PGresult.
class Result {
  public:
    explicit Result(PGresult* r = nullptr) : r_(r) {}
    Result(Result&& o) noexcept : r_(o.r_) { o.r_ = nullptr; }
    Result& operator=(Result&& o) noexcept {
        if (this != &o) {
            reset();
            r_ = o.r_;
            o.r_ = nullptr;
        }
        return *this;
    }
    Result(const Result&) = delete;
    Result& operator=(const Result&) = delete;
    ~Result() { reset(); }

    int rows() const { return PQntuples(r_); }
    bool is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
    std::string text(int row, int col) const {
        return std::string(PQgetvalue(r_, row, col), PQgetlength(r_, row, col));
    }
    const char* raw(int row, int col) const { return PQgetvalue(r_, row, col); }
    int length(int row, int col) const { return PQgetlength(r_, row, col); }
    long long integer(int row, int col) const { return std::stoll(text(row, col)); }
    double number(int row, int col) const { return std::stod(text(row, col)); }
    bool boolean(int row, int col) const { return text(row, col) == "t"; }

  private:
    void reset() {
        if (r_) PQclear(r_);
        r_ = nullptr;
    }
    PGresult* r_;
};

// What the database offers; the statements are built from this once, when
// the pool opens (restart the app after creating the optional tables).
struct Capabilities {
    bool clusters = false;           // table clusters(image_id, model, version, cluster)
    bool feedback = false;           // table feedback with user_id (demo/app.sql)
    bool users = false;              // tables app_users and app_sessions (demo/app.sql)
    bool rocchio = false;            // rocchio(vector, vector[], vector[], ...)
    bool cosine_similarity = false;  // cosine_similarity(vector, vector)
    bool euclidean_similarity = false;
    bool l2_normalize = false;
    std::string extension_version;
};

struct Statement {
    std::string name;
    std::string sql;
};

class Connection {
  public:
    Connection(std::string conninfo, const std::vector<Statement>* statements)
        : conninfo_(std::move(conninfo)), statements_(statements) {}
    ~Connection() {
        if (pg_) PQfinish(pg_);
    }
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Connects (if needed), sets the session up and prepares the statements.
    void open();
    // Executes a prepared statement; reconnects and retries once when the
    // connection was lost. result_format 1 returns binary values.
    Result exec(const std::string& name, const Params& params, int result_format = 0);
    // A parameterised, unprepared query (PQexecParams) with a fixed text.
    Result exec_params(const std::string& sql, const Params& params);

  private:
    Result check(PGresult* r);
    // The result of the query just sent, waiting for it while polling the
    // client-gone check (and cancelling the query when it fires).
    PGresult* wait_result();
    std::string conninfo_;
    const std::vector<Statement>* statements_;
    PGconn* pg_ = nullptr;
};

// While a thread serves a request, a check that is true once the request's
// client has gone away; queries the thread runs then poll it while they
// wait, and cancel themselves (PQcancel) when it turns true, so that an
// abandoned search does not keep a pooled connection busy. Empty: none.
void set_client_gone_check(std::function<bool()> check);

class Pool;

// A connection borrowed from the pool; returned when destroyed.
class Lease {
  public:
    Lease(Pool* pool, Connection* c) : pool_(pool), c_(c) {}
    Lease(Lease&& o) noexcept : pool_(o.pool_), c_(o.c_) { o.c_ = nullptr; }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    Connection* operator->() { return c_; }

  private:
    Pool* pool_;
    Connection* c_;
};

class Pool {
  public:
    // Connects once to read the capabilities, builds the statements with
    // `build`, then opens `size` connections.
    Pool(const std::string& conninfo, int size,
         std::vector<Statement> (*build)(const Capabilities&));
    const Capabilities& capabilities() const { return caps_; }
    // Waits up to `timeout` for a free connection; throws DbError (sqlstate
    // "pool") when none frees up.
    Lease acquire(std::chrono::milliseconds timeout);
    int size() const { return static_cast<int>(all_.size()); }

  private:
    friend class Lease;
    void release(Connection* c);
    Capabilities caps_;
    std::vector<Statement> statements_;
    std::vector<std::unique_ptr<Connection>> all_;
    std::vector<Connection*> free_;
    std::mutex mu_;
    std::condition_variable cv_;
};

// Builds a PostgreSQL array literal ({"a","b"}) from values, quoting each.
std::string pg_text_array(const std::vector<std::string>& values);

}  // namespace benzer_app
