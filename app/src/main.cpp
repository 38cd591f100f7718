// benzer-app: the "Benzer Desen" pattern-search web app on benzer.
//
// Serves one page (app/static) and a JSON API over the demo's tables
// (demo/schema.sql, demo/app.sql): click an image, get its top N similar
// images from a faiss index, with filters, a metric, feedback thumbs and a
// Rocchio refinement. See app/README.md for the API.
//
//   benzer-app --db "host=/var/tmp/benzer-demo/run port=5499 user=postgres dbname=benzer_demo"
//              [--listen 127.0.0.1] [--port 8080] [--static app/static]
//              [--pool 4] [--threads 16] [--pid-file FILE]
//
// One log line per request goes to stdout.

#include <arpa/inet.h>
#include <dirent.h>
#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "db.h"
#include "features.h"
#include "json.h"
#include "png.h"
#include "users.h"

using namespace benzer_app;
using Clock = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------
// Errors a handler reports to the client.

struct ApiError {
    int status;
    std::string message;
};

[[noreturn]] void bad_request(const std::string& m) { throw ApiError{400, m}; }
[[noreturn]] void not_found(const std::string& m) { throw ApiError{404, m}; }

std::string error_json(int status, const std::string& message) {
    JsonWriter j;
    j.begin_object().key("error").value(message).key("status").value(status).end_object();
    return j.str();
}

// ---------------------------------------------------------------------------
// Per-request log line. The pre-routing handler stamps the start time and
// the handler may add a note (the plan used, the query time); the logger,
// called on the same thread after the response is written, prints them.

thread_local Clock::time_point t_request_start;
thread_local bool t_request_started = false;
thread_local std::string t_note;
std::mutex log_mu;
// --log-file: the log's file (else stdout), its size, and the size at which
// it rotates (--log-max-bytes).
FILE* g_log_file = nullptr;
std::string g_log_path;
long long g_log_bytes = 0;
long long g_log_max_bytes = 100LL << 20;

std::string utc_now() {
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    long ms = static_cast<long>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000);
    std::tm tm;
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    return buf;
}

// A request's text as it may go into a log line: control characters,
// backslashes and bytes outside ASCII as \xNN, so a request can neither
// forge a line nor write raw bytes into the log.
std::string log_safe(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text) {
        if (c < 0x20 || c >= 0x7f || c == '\\') {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out.push_back(static_cast<char>(c));
        }
    }
    return out;
}

void log_line(const std::string& line) {
    std::lock_guard<std::mutex> lock(log_mu);
    FILE* out = g_log_file ? g_log_file : stdout;
    std::fwrite(line.data(), 1, line.size(), out);
    std::fputc('\n', out);
    std::fflush(out);
    if (!g_log_file) return;
    // Bounded: past --log-max-bytes the file becomes FILE.1 (replacing the
    // previous one) and a new FILE starts, so the log never holds more
    // than twice the limit.
    g_log_bytes += line.size() + 1;
    if (g_log_bytes < g_log_max_bytes) return;
    std::fclose(g_log_file);
    std::rename(g_log_path.c_str(), (g_log_path + ".1").c_str());
    g_log_file = std::fopen(g_log_path.c_str(), "a");
    g_log_bytes = 0;
}

double ms_since(Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string fmt_ms(double ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fms", ms);
    return buf;
}

// ---------------------------------------------------------------------------
// PostgreSQL text arrays ({a,"b c"}) into strings (NULL elements dropped).

std::vector<std::string> parse_pg_array(const std::string& s) {
    std::vector<std::string> out;
    size_t i = 0;
    if (s.empty() || s[0] != '{') return out;
    i = 1;
    while (i < s.size() && s[i] != '}') {
        std::string v;
        bool quoted = false;
        if (s[i] == '"') {
            quoted = true;
            i++;
            while (i < s.size() && s[i] != '"') {
                if (s[i] == '\\' && i + 1 < s.size()) i++;
                v.push_back(s[i++]);
            }
            i++;  // closing quote
        } else {
            while (i < s.size() && s[i] != ',' && s[i] != '}') v.push_back(s[i++]);
        }
        if (quoted || v != "NULL") out.push_back(v);
        if (i < s.size() && s[i] == ',') i++;
    }
    return out;
}

// ---------------------------------------------------------------------------
// Statements. Only these fixed texts are ever sent; request values travel as
// parameters.

const char* kMetrics[] = {"cosine", "euclidean"};

// Rows a cluster-filtered index scan may read before the app switches to
// reading the selected clusters (handle_similar).
constexpr int kClusterScanBudget = 2000;

const char* metric_operator(const std::string& metric) {
    return metric == "cosine" ? "<=>" : "<->";
}

// The query vector, as a scalar subquery so that the planner computes it
// once before the scan and can hand it to a faiss index (ORDER BY
// embedding <op> (SELECT ...)). With refine it reads the Rocchio vector
// from the CTE refine_cte() defines.
std::string query_vector_sql(bool refine) {
    if (refine) return "(SELECT v FROM qv)";
    return "(SELECT q.embedding FROM features q"
           " WHERE q.image_id = $1::int AND q.model = $2::text AND q.version = $3::text)";
}

// With refine, Rocchio moves the query vector towards the results the user
// liked for this query image (mean of their vectors) and away from the
// disliked ones; for cosine on unit vectors. Rocchio's weights (1, 0.75,
// 0.15) are divided by their sum over the terms present, so that the refined
// vector stays on the scale of the query vector: for L2 a longer vector
// would otherwise favour bright images. The CTEs are computed once, and the
// scalar subqueries (SELECT v FROM qv) are still parameters for the index.
std::string refine_cte(const Capabilities& caps, const std::string& metric) {
    bool norm = metric == "cosine" && caps.l2_normalize;
    auto n = [&](const std::string& e) { return norm ? "l2_normalize(" + e + ")" : e; };
    return "WITH fb AS MATERIALIZED ("
           "SELECT array_agg(" +
           n("e.embedding") +
           " ORDER BY fb.result_id) FILTER (WHERE fb.vote > 0) AS liked,"
           " array_agg(" +
           n("e.embedding") +
           " ORDER BY fb.result_id) FILTER (WHERE fb.vote < 0) AS disliked"
           " FROM feedback fb JOIN features e"
           " ON e.image_id = fb.result_id AND e.model = fb.model AND e.version = fb.version"
           " WHERE fb.query_id = $1::int AND fb.model = $2::text AND fb.version = $3::text"
           " AND fb.user_id = $11::int),"
           " qv AS MATERIALIZED ("
           "SELECT rocchio(" +
           n("q.embedding") +
           ", fb.liked, fb.disliked, 1.0 / w.s, 0.75 / w.s, 0.15 / w.s) AS v"
           " FROM features q, fb,"
           " LATERAL (SELECT (1 + CASE WHEN fb.liked IS NULL THEN 0 ELSE 0.75 END"
           " - CASE WHEN fb.disliked IS NULL THEN 0 ELSE 0.15 END)::float8 AS s) w"
           " WHERE q.image_id = $1::int AND q.model = $2::text AND q.version = $3::text) ";
}

// by_vector: the query vector is $1 itself (an uploaded picture's), not a
// stored image's.
std::string similar_sql(const Capabilities& caps, const std::string& metric, bool refine,
                        bool by_vector = false) {
    const std::string op = metric_operator(metric);
    const std::string qv = by_vector ? "$1::vector" : query_vector_sql(refine);
    std::string score;
    if (metric == "cosine")
        score = caps.cosine_similarity ? "cosine_similarity(f.embedding, " + qv + ")"
                                       : "1 - (f.embedding <=> " + qv + ")";
    else
        score = caps.euclidean_similarity ? "euclidean_similarity(f.embedding, " + qv + ")"
                                          : "1 / (1 + (f.embedding <-> " + qv + "))";
    std::string sql = refine ? refine_cte(caps, metric) : "";
    sql +=
        "SELECT f.image_id, i.filename, f.design, f.season, f.quality,"
        " array_to_json(f.tags)::text, ";
    sql += caps.clusters ? "c.cluster" : "NULL::int";
    // i.pixels: the result's picture goes inline in the answer (a search
    // would otherwise make 100 thumbnail requests, each a database query).
    sql += ", f.embedding " + op + " " + qv + " AS distance, " + score +
           " AS score, i.pixels"
           " FROM features f JOIN images i ON i.image_id = f.image_id";
    if (caps.clusters)
        sql +=
            " LEFT JOIN clusters c"
            " ON c.image_id = f.image_id AND c.model = f.model AND c.version = f.version";
    // The filters are on features' own copies of the metadata, which the
    // faiss index carries as filter columns: with a custom plan, a NULL
    // parameter folds the condition away and a value makes it an index
    // condition applied inside the search.
    sql += " WHERE f.model = $2::text AND f.version = $3::text AND " +
           std::string(by_vector ? "$1::vector IS NOT NULL" : "f.image_id <> $1::int") +
           " AND ($5::text[] IS NULL OR f.design = ANY ($5::text[]))"
           " AND ($6::text[] IS NULL OR f.season = ANY ($6::text[]))"
           " AND ($7::text[] IS NULL OR f.quality = ANY ($7::text[]))"
           " AND ($8::text[] IS NULL OR f.tags && $8::text[])"
           " AND ($9::text[] IS NULL OR f.tags @> $9::text[])";
    if (caps.clusters)
        sql += " AND ($10::int[] IS NULL OR c.cluster = ANY ($10::int[]))";
    else
        sql += " AND ($10::int[] IS NULL)";
    sql += " ORDER BY distance LIMIT $4::int";
    return sql;
}

std::string similar_name(const std::string& metric, bool refine, bool by_cluster = false) {
    return "similar_" + metric + (refine ? "_refine" : "") + (by_cluster ? "_by_cluster" : "");
}

std::string similar_vector_name(const std::string& metric) {
    return "similar_" + metric + "_vector";
}

// A cluster filter is a join, applied to the rows the index scan returns.
// When the query image lies in one of the selected clusters its nearest
// neighbours mostly do too, and the index scan stops early (a few ms). When
// it lies in another cluster, the scan can read tens of thousands of rows
// before it finds N in the selected ones (measured on the demo: median
// 110 ms, up to 450 ms). This variant reads the selected clusters' members
// instead (clusters_model_version_cluster, demo/app.sql) and computes their
// exact distances: about 60 ms for a 9 000-image cluster, and exact. Ordering
// by a column of a subquery keeps the planner from using the faiss index.
std::string similar_by_cluster_sql(const Capabilities& caps, const std::string& metric,
                                   bool refine) {
    const std::string op = metric_operator(metric);
    const std::string qv = query_vector_sql(refine);
    std::string score =
        metric == "cosine"
            ? (caps.cosine_similarity ? "cosine_similarity(f.embedding, " + qv + ")"
                                      : "1 - (f.embedding <=> " + qv + ")")
            : (caps.euclidean_similarity ? "euclidean_similarity(f.embedding, " + qv + ")"
                                         : "1 / (1 + (f.embedding <-> " + qv + "))");
    std::string sql = refine ? refine_cte(caps, metric) : "";
    // Innermost: the members' distances and scores, each computed once
    // (OFFSET 0 keeps the subquery as it is), without the vectors; then the
    // top N; only those N are joined with images.
    sql +=
        "SELECT s.image_id, i.filename, s.design, s.season, s.quality, "
        "array_to_json(s.tags)::text, s.cluster,"
        " s.distance, s.score, i.pixels"
        " FROM (SELECT x.* FROM (SELECT f.image_id, f.design, f.season, f.quality, f.tags, "
        "c.cluster,"
        " f.embedding " +
        op + " " + qv + " AS distance, " + score +
        " AS score"
        " FROM clusters c"
        " JOIN features f ON f.image_id = c.image_id AND f.model = c.model AND f.version = "
        "c.version"
        " WHERE c.model = $2::text AND c.version = $3::text AND c.cluster = ANY ($10::int[])"
        " AND f.image_id <> $1::int"
        " AND ($5::text[] IS NULL OR f.design = ANY ($5::text[]))"
        " AND ($6::text[] IS NULL OR f.season = ANY ($6::text[]))"
        " AND ($7::text[] IS NULL OR f.quality = ANY ($7::text[]))"
        " AND ($8::text[] IS NULL OR f.tags && $8::text[])"
        " AND ($9::text[] IS NULL OR f.tags @> $9::text[])"
        " OFFSET 0) x ORDER BY x.distance, x.image_id LIMIT $4::int) s"
        " JOIN images i ON i.image_id = s.image_id"
        " ORDER BY s.distance, s.image_id";
    return sql;
}

std::map<std::string, std::string> g_statement_sql;  // name -> text (for EXPLAIN)

std::vector<Statement> build_statements(const Capabilities& caps) {
    std::vector<Statement> s;
    s.push_back({"meta_models",
                 "SELECT m.model, m.version, m.n,"
                 "       (SELECT vector_dims(f.embedding) FROM features f"
                 "        WHERE f.model = m.model AND f.version = m.version LIMIT 1),"
                 "       m.first_id"
                 " FROM (SELECT model, version, count(*) AS n, min(image_id) AS first_id"
                 "       FROM features GROUP BY model, version) m"
                 " ORDER BY m.model, m.version"});
    // The typical distance between two images of a model version, per
    // metric: the median over 200 fixed pairs (the first 400 vectors by
    // image id, the i-th with the (i+200)-th). Similarity percentages are
    // measured against it.
    s.push_back({"meta_typical_distance",
                 "WITH s AS (SELECT embedding, row_number() OVER (ORDER BY image_id) AS i"
                 "           FROM (SELECT image_id, embedding FROM features"
                 "                 WHERE model = $1::text AND version = $2::text"
                 "                 ORDER BY image_id LIMIT 400) x)"
                 " SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a.embedding <-> b.embedding),"
                 "        percentile_cont(0.5) WITHIN GROUP (ORDER BY a.embedding <=> b.embedding)"
                 " FROM s a JOIN s b ON b.i = a.i + 200"});
    s.push_back({"meta_values",
                 "SELECT array_agg(DISTINCT design ORDER BY design),"
                 "       array_agg(DISTINCT season ORDER BY season),"
                 "       array_agg(DISTINCT quality ORDER BY quality),"
                 "       (SELECT array_agg(DISTINCT t ORDER BY t) FROM images, unnest(tags) t),"
                 "       count(*)"
                 " FROM images"});
    s.push_back({"meta_clusters",
                 caps.clusters
                     ? "SELECT model, version, max(cluster) + 1, count(*) FROM clusters"
                       " GROUP BY model, version"
                     : "SELECT NULL::text, NULL::text, NULL::int, NULL::bigint WHERE false"});
    s.push_back({"faiss_indexes",
                 "SELECT c.relname FROM pg_class c JOIN pg_am a ON a.oid = c.relam"
                 " WHERE a.amname = 'faiss'"});
    const char* image_where =
        " WHERE ($1::text IS NULL OR strpos(lower(filename), lower($1::text)) > 0)"
        " AND ($2::text[] IS NULL OR design = ANY ($2::text[]))"
        " AND ($3::text[] IS NULL OR season = ANY ($3::text[]))"
        " AND ($4::text[] IS NULL OR quality = ANY ($4::text[]))"
        " AND ($5::text[] IS NULL OR tags && $5::text[])"
        " AND ($6::text[] IS NULL OR tags @> $6::text[])";
    s.push_back({"images_page", std::string("SELECT image_id, filename, design, season, quality,"
                                            " array_to_json(tags)::text FROM images") +
                                    image_where +
                                    " AND ($9::int IS NULL OR image_id > $9::int)"
                                    " ORDER BY image_id LIMIT $7::int OFFSET $8::int"});
    s.push_back({"images_count", std::string("SELECT count(*) FROM images") + image_where});
    s.push_back({"image_pixels", "SELECT pixels FROM images WHERE image_id = $1::int"});
    s.push_back({"begin", "BEGIN"});
    s.push_back({"commit", "COMMIT"});
    s.push_back({"rollback", "ROLLBACK"});
    s.push_back({"scan_budget", "SELECT set_config('benzer.max_scan_tuples', $1::text, true)"});
    s.push_back(
        {"query_image",
         std::string("SELECT i.image_id, i.filename, i.design, i.season, i.quality,"
                     " array_to_json(i.tags)::text, ") +
             (caps.clusters ? "(SELECT c.cluster FROM clusters c WHERE c.image_id = i.image_id"
                              " AND c.model = $2::text AND c.version = $3::text)"
                            : "NULL::int") +
             ", EXISTS (SELECT FROM features f WHERE f.image_id = i.image_id"
             " AND f.model = $2::text AND f.version = $3::text)"
             " FROM images i WHERE i.image_id = $1::int"});
    for (const char* m : kMetrics) {
        for (bool refine : {false, true}) {
            if (refine && !(caps.rocchio && caps.feedback)) continue;
            s.push_back({similar_name(m, refine), similar_sql(caps, m, refine)});
            if (!refine) s.push_back({similar_vector_name(m), similar_sql(caps, m, false, true)});
            if (caps.clusters)
                s.push_back(
                    {similar_name(m, refine, true), similar_by_cluster_sql(caps, m, refine)});
        }
    }
    if (caps.users) {
        s.push_back({"session_user",
                     "SELECT u.user_id, u.name, s.csrf_token, u.is_admin FROM app_sessions s"
                     " JOIN app_users u ON u.user_id = s.user_id"
                     " WHERE s.token_sha256 = $1::text AND s.expires_at > now()"});
        s.push_back({"user_password",
                     "SELECT user_id, password_hash FROM app_users WHERE name = $1::text"});
        s.push_back(
            {"session_create",
             "INSERT INTO app_sessions (token_sha256, user_id, csrf_token, expires_at)"
             " VALUES ($1::text, $2::int, $3::text, now() + make_interval(hours => $4::int))"});
        s.push_back({"session_delete", "DELETE FROM app_sessions WHERE token_sha256 = $1::text"});
        s.push_back({"sessions_expire", "DELETE FROM app_sessions WHERE expires_at < now()"});
        s.push_back({"user_add",
                     "INSERT INTO app_users (name, password_hash, is_admin)"
                     " VALUES ($1::text, $2::text, $3::bool) ON CONFLICT (name) DO UPDATE"
                     " SET password_hash = EXCLUDED.password_hash, is_admin = EXCLUDED.is_admin"
                     " RETURNING user_id"});
    }
    if (caps.feedback) {
        s.push_back({"feedback_votes",
                     "SELECT result_id, vote FROM feedback"
                     " WHERE query_id = $1::int AND model = $2::text AND version = $3::text"
                     " AND user_id = $4::int"});
        s.push_back({"feedback_check",
                     "SELECT count(*) FROM features WHERE model = $3::text AND version = $4::text"
                     " AND image_id IN ($1::int, $2::int)"});
        s.push_back({"feedback_upsert",
                     "INSERT INTO feedback (query_id, result_id, model, version, vote, user_id)"
                     " VALUES ($1::int, $2::int, $3::text, $4::text, $5::smallint, $6::int)"
                     " ON CONFLICT (user_id, query_id, model, version, result_id)"
                     " DO UPDATE SET vote = EXCLUDED.vote, updated_at = now()"});
        s.push_back({"feedback_delete",
                     "DELETE FROM feedback WHERE query_id = $1::int AND result_id = $2::int"
                     " AND model = $3::text AND version = $4::text AND user_id = $5::int"});
    }
    for (const auto& st : s) g_statement_sql[st.name] = st.sql;
    return s;
}

// ---------------------------------------------------------------------------
// Metadata for the controls and for validating parameters. Loaded at start,
// on /api/meta?refresh=1 and on SIGHUP.

using ModelVersion = std::pair<std::string, std::string>;

struct Meta {
    std::vector<ModelVersion> model_versions;
    std::map<ModelVersion, long long> rows;
    std::map<ModelVersion, int> dims;
    std::map<ModelVersion, long long> first_id;  // an image with a vector (for warm-up)
    std::map<ModelVersion, int> cluster_k;       // clusters 0..k-1
    std::vector<std::string> models;             // in order
    std::map<std::string, std::vector<std::string>> versions;
    std::vector<std::string> designs, seasons, qualities, tags;
    long long images = 0;
    // (model, version, metric) -> the faiss index the planner picks for the
    // unfiltered query; "" when it would scan exactly (no index for that
    // metric).
    std::map<std::tuple<std::string, std::string, std::string>, std::string> index_for;
    // (model, version, metric) -> the median distance between two of its
    // images (meta_typical_distance); absent when too few rows.
    std::map<std::tuple<std::string, std::string, std::string>, double> typical_distance;
    std::string loaded_at;
    double load_ms = 0;
};

std::unique_ptr<Pool> g_pool;
// --read-db: the connections searches go to (a standby, or several hosts
// with target_session_attrs); null: everything uses g_pool.
std::unique_ptr<Pool> g_read_pool;
std::shared_ptr<const Meta> g_meta;
std::mutex g_meta_mu;

std::shared_ptr<const Meta> meta() {
    std::lock_guard<std::mutex> lock(g_meta_mu);
    return g_meta;
}

std::shared_ptr<const Meta> load_meta() {
    auto t0 = Clock::now();
    auto m = std::make_shared<Meta>();
    Lease c = g_pool->acquire(std::chrono::seconds(30));
    {
        Result r = c->exec("meta_models", {});
        for (int i = 0; i < r.rows(); i++) {
            ModelVersion mv{r.text(i, 0), r.text(i, 1)};
            m->model_versions.push_back(mv);
            m->rows[mv] = r.integer(i, 2);
            m->dims[mv] = r.is_null(i, 3) ? 0 : static_cast<int>(r.integer(i, 3));
            m->first_id[mv] = r.integer(i, 4);
            if (!m->versions.count(mv.first)) m->models.push_back(mv.first);
            m->versions[mv.first].push_back(mv.second);
        }
    }
    for (const auto& mv : m->model_versions) {
        Result r = c->exec("meta_typical_distance", {mv.first, mv.second});
        if (r.rows() == 1 && !r.is_null(0, 0) && r.number(0, 0) > 0)
            m->typical_distance[{mv.first, mv.second, "euclidean"}] = r.number(0, 0);
        if (r.rows() == 1 && !r.is_null(0, 1) && r.number(0, 1) > 0)
            m->typical_distance[{mv.first, mv.second, "cosine"}] = r.number(0, 1);
    }
    {
        Result r = c->exec("meta_values", {});
        m->designs = parse_pg_array(r.text(0, 0));
        m->seasons = parse_pg_array(r.text(0, 1));
        m->qualities = parse_pg_array(r.text(0, 2));
        m->tags = parse_pg_array(r.text(0, 3));
        m->images = r.integer(0, 4);
        // Seasons in calendar order when they are the demo's four.
        static const std::vector<std::string> order = {"winter", "spring", "summer", "autumn"};
        std::stable_sort(m->seasons.begin(), m->seasons.end(),
                         [](const std::string& a, const std::string& b) {
                             auto pa = std::find(order.begin(), order.end(), a) - order.begin();
                             auto pb = std::find(order.begin(), order.end(), b) - order.begin();
                             return pa < pb;
                         });
    }
    {
        Result r = c->exec("meta_clusters", {});
        for (int i = 0; i < r.rows(); i++)
            m->cluster_k[{r.text(i, 0), r.text(i, 1)}] = static_cast<int>(r.integer(i, 2));
    }
    std::set<std::string> faiss;
    {
        Result r = c->exec("faiss_indexes", {});
        for (int i = 0; i < r.rows(); i++) faiss.insert(r.text(i, 0));
    }
    // Which index the planner uses, per model, version and metric: EXPLAIN of
    // the app's own statement with those values (the query image does not
    // matter to the plan).
    for (const auto& mv : m->model_versions) {
        for (const char* metric : kMetrics) {
            std::string idx;
            Result r = c->exec_params(
                "EXPLAIN (COSTS OFF) " + g_statement_sql.at(similar_name(metric, false)),
                {std::string("1"), mv.first, mv.second, std::string("100"), std::nullopt,
                 std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt});
            for (int i = 0; i < r.rows() && idx.empty(); i++) {
                std::string line = r.text(i, 0);
                size_t at = line.find("Index Scan using ");
                if (at == std::string::npos) continue;
                at += std::strlen("Index Scan using ");
                size_t end = line.find(' ', at);
                std::string name =
                    line.substr(at, end == std::string::npos ? std::string::npos : end - at);
                if (faiss.count(name) && line.find(" on features f") != std::string::npos)
                    idx = name;
            }
            m->index_for[{mv.first, mv.second, metric}] = idx;
        }
    }
    m->loaded_at = utc_now();
    m->load_ms = ms_since(t0);
    return m;
}

void reload_meta() {
    auto m = load_meta();
    std::string summary;
    for (const auto& e : m->index_for) {
        summary += " " + std::get<0>(e.first) + "/" + std::get<1>(e.first) + "/" +
                   std::get<2>(e.first) + "=" + (e.second.empty() ? "exact-scan" : e.second);
    }
    {
        std::lock_guard<std::mutex> lock(g_meta_mu);
        g_meta = m;
    }
    log_line(utc_now() + " meta loaded in " + fmt_ms(m->load_ms) + ": " +
             std::to_string(m->images) + " images, " + std::to_string(m->model_versions.size()) +
             " model versions;" + summary);
}

// ---------------------------------------------------------------------------
// Parameter parsing. Every parameter is checked; anything unexpected is a
// 400 with a message naming it.

void check_known_params(const httplib::Request& req, std::initializer_list<const char*> known) {
    for (const auto& p : req.params) {
        bool ok = false;
        for (const char* k : known) ok = ok || p.first == k;
        if (!ok) bad_request("unknown parameter '" + p.first + "'");
    }
}

// The single value of a parameter, or nullopt if absent; a repeated
// parameter is an error.
std::optional<std::string> single(const httplib::Request& req, const std::string& name) {
    size_t n = req.get_param_value_count(name);
    if (n == 0) return std::nullopt;
    if (n > 1) bad_request("parameter '" + name + "' given more than once");
    return req.get_param_value(name);
}

long long parse_int(const std::string& name, const std::string& v, long long lo, long long hi) {
    if (v.empty() || v.size() > 12) bad_request("parameter '" + name + "' must be an integer");
    size_t i = 0;
    bool neg = false;
    if (v[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i >= v.size()) bad_request("parameter '" + name + "' must be an integer");
    long long x = 0;
    for (; i < v.size(); i++) {
        if (v[i] < '0' || v[i] > '9')
            bad_request("parameter '" + name + "' must be an integer, not '" + v + "'");
        x = x * 10 + (v[i] - '0');
    }
    if (neg) x = -x;
    if (x < lo || x > hi)
        bad_request("parameter '" + name + "' must be between " + std::to_string(lo) + " and " +
                    std::to_string(hi) + ", not " + v);
    return x;
}

long long int_param(const httplib::Request& req, const std::string& name, long long def,
                    long long lo, long long hi) {
    auto v = single(req, name);
    if (!v) return def;
    return parse_int(name, *v, lo, hi);
}

bool bool_param(const httplib::Request& req, const std::string& name) {
    auto v = single(req, name);
    if (!v || *v == "0" || *v == "false") return false;
    if (*v == "1" || *v == "true") return true;
    bad_request("parameter '" + name + "' must be 0 or 1");
}

std::string truncate_for_message(const std::string& s) {
    return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}

// A list filter: name=a,b or name=a&name=b. Every value must be one of
// `allowed`. An empty parameter (name=) means no filter.
std::optional<std::vector<std::string>> list_param(const httplib::Request& req,
                                                   const std::string& name,
                                                   const std::vector<std::string>& allowed) {
    size_t n = req.get_param_value_count(name);
    if (n == 0) return std::nullopt;
    std::vector<std::string> out;
    for (size_t k = 0; k < n; k++) {
        std::string v = req.get_param_value(name, k);
        if (v.empty() && n == 1) return std::nullopt;
        size_t start = 0;
        for (;;) {
            size_t comma = v.find(',', start);
            std::string item =
                v.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
            if (item.empty())
                bad_request("malformed filter '" + name + "': empty value in '" +
                            truncate_for_message(v) + "'");
            if (std::find(allowed.begin(), allowed.end(), item) == allowed.end()) {
                std::string opts;
                for (size_t i = 0; i < allowed.size() && i < 20; i++)
                    opts += (i ? ", " : "") + allowed[i];
                bad_request("unknown " + name + " '" + truncate_for_message(item) +
                            "' (one of: " + opts + ")");
            }
            if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(item);
            if (out.size() > 100) bad_request("too many values for '" + name + "'");
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    return out;
}

Param to_param(const std::optional<std::vector<std::string>>& v) {
    if (!v) return std::nullopt;
    return pg_text_array(*v);
}

struct ModelChoice {
    std::string model, version;
};

ModelChoice model_params(const httplib::Request& req, const Meta& m) {
    if (m.models.empty()) bad_request("the features table holds no vectors");
    std::string model = single(req, "model").value_or(m.models.front());
    if (!m.versions.count(model)) {
        std::string opts;
        for (const auto& x : m.models) opts += (opts.empty() ? "" : ", ") + x;
        bad_request("unknown model '" + truncate_for_message(model) + "' (one of: " + opts + ")");
    }
    const auto& vs = m.versions.at(model);
    std::string version = single(req, "version").value_or(vs.back());
    if (std::find(vs.begin(), vs.end(), version) == vs.end()) {
        std::string opts;
        for (const auto& x : vs) opts += (opts.empty() ? "" : ", ") + x;
        bad_request("unknown version '" + truncate_for_message(version) + "' of model " + model +
                    " (one of: " + opts + ")");
    }
    return {model, version};
}

// A picture from images.pixels as text (bytea hex, "\x0a1b...") made into
// a data: URI of its PNG, for an <img> without another request.
std::string png_data_uri(const std::string& hex) {
    if (hex.size() < 2 || hex[0] != '\\' || hex[1] != 'x') return "";
    std::string px;
    px.reserve((hex.size() - 2) / 2);
    auto nibble = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    for (size_t k = 2; k + 1 < hex.size(); k += 2)
        px.push_back(static_cast<char>(nibble(hex[k]) << 4 | nibble(hex[k + 1])));
    size_t side = 0;
    while ((side + 1) * (side + 1) <= px.size()) side++;
    if (side == 0 || side * side != px.size()) return "";
    std::string png = encode_png_gray8(reinterpret_cast<const uint8_t*>(px.data()), side, side);
    static const char* digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out = "data:image/png;base64,";
    for (size_t k = 0; k < png.size(); k += 3) {
        unsigned v = static_cast<unsigned char>(png[k]) << 16;
        if (k + 1 < png.size()) v |= static_cast<unsigned char>(png[k + 1]) << 8;
        if (k + 2 < png.size()) v |= static_cast<unsigned char>(png[k + 2]);
        out.push_back(digits[v >> 18 & 63]);
        out.push_back(digits[v >> 12 & 63]);
        out.push_back(k + 1 < png.size() ? digits[v >> 6 & 63] : '=');
        out.push_back(k + 2 < png.size() ? digits[v & 63] : '=');
    }
    return out;
}

// A 0-100 % similarity people can read and compare: 100 % is the query
// image itself (distance 0), 0 % is as far as two images of the collection
// typically are (the median distance of the model version under this
// metric) or farther. Raw scores are not comparable: cosine similarities
// crowd near 1, 1 / (1 + L2) on pixel vectors is near 0.
double similarity_percent(double distance, double typical) {
    double p = 100.0 * (1.0 - distance / typical);
    return p < 0 ? 0 : (p > 100 ? 100 : p);
}

// The metric with an index for this model version (cosine first), else cosine.
std::string default_metric(const Meta& m, const ModelChoice& mc) {
    for (const char* metric : kMetrics) {
        auto it = m.index_for.find({mc.model, mc.version, metric});
        if (it != m.index_for.end() && !it->second.empty()) return metric;
    }
    return "cosine";
}

// ---------------------------------------------------------------------------
// Responses.

void send_json(httplib::Response& res, const std::string& body, int status = 200) {
    res.status = status;
    res.set_header("Cache-Control", "no-store");
    res.set_content(
        body,
        "application/json");  // exactly this type: httplib gzips it for clients that accept gzip
}

// Drops "br" from the request's Accept-Encoding. httplib compresses with
// brotli when a browser offers it, at brotli's slowest quality: 200 ms for a
// 100-result answer (gzip: 4 ms), most of what a user waited for. The
// request object is httplib's own (not const) and is read after routing.
void prefer_gzip(const httplib::Request& req) {
    auto& headers = const_cast<httplib::Request&>(req).headers;
    auto it = headers.find("Accept-Encoding");
    if (it == headers.end() || it->second.find("br") == std::string::npos) return;
    std::string kept;
    std::stringstream tokens(it->second);
    for (std::string token; std::getline(tokens, token, ',');) {
        size_t b = token.find_first_not_of(' ');
        if (b == std::string::npos || token.compare(b, 2, "br") == 0) continue;
        kept += (kept.empty() ? "" : ", ") + token.substr(b);
    }
    it->second = kept;
}

// Headers on every response: the page loads only its own scripts, styles
// and images, may not be framed (clickjacking) and no response is sniffed
// into another type.
void set_security_headers(httplib::Response& res) {
    res.set_header("Content-Security-Policy",
                   "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                   "base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
    res.set_header("X-Frame-Options", "DENY");
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
}

// The host name of a Host header ("name", "name:port", "[v6]:port").
std::string host_name(const std::string& host) {
    if (!host.empty() && host[0] == '[') {
        size_t end = host.find(']');
        return end == std::string::npos ? host : host.substr(0, end + 1);
    }
    size_t colon = host.find(':');
    return colon == std::string::npos ? host : host.substr(0, colon);
}

// The largest request body (the API's bodies are a few hundred bytes).
constexpr unsigned long long kMaxBodyBytes = 64 * 1024;
// The largest uploaded picture (POST /api/similar-image).
constexpr unsigned long long kMaxUploadBytes = 4 * 1024 * 1024;

// True for "192.0.2.1" and "[2001:db8::1]": a request addressed by an IP
// address cannot come from a page that rebinds a DNS name.
bool is_ip_literal(const std::string& name) {
    if (name.size() > 2 && name.front() == '[' && name.back() == ']') return true;
    in_addr v4;
    return inet_pton(AF_INET, name.c_str(), &v4) == 1;
}

// 0 when a request may proceed, else the status to refuse it with (and
// *why). A Host outside the allow-list is a page on another site that
// reached the app through DNS rebinding: 421. A request that changes
// state must be same-origin JSON: a page on another site can send a POST
// without asking (a form, fetch with mode no-cors), but only with a
// simple content type, and its browser names its Origin.
int check_request_origin(const httplib::Request& req, const std::vector<std::string>& allowed,
                         std::string* why) {
    std::string host = req.get_header_value("Host");
    if (!host.empty()) {
        std::string name = host_name(host);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!is_ip_literal(name) &&
            std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
            *why = "host not allowed: " + name + " (start the app with --allow-host " + name + ")";
            return 421;
        }
    }
    // Several ranges of one file multiply the response (7.8 kB of
    // "bytes=0-,0-,..." asked for 286 MB); the app serves small files.
    if (req.get_header_value("Range").find(',') != std::string::npos) {
        *why = "only one byte range per request";
        return 416;
    }
    // POST is the only method that changes state (others get 405).
    if (req.method != "POST") return 0;
    bool upload = req.path == "/api/similar-image";
    // Refused before the body is read (this runs first): a chunked body
    // would be read whole before any limit applied.
    if (req.has_header("Transfer-Encoding")) {
        *why = "a POST must send Content-Length, not a chunked body";
        return 411;
    }
    unsigned long long limit = upload ? kMaxUploadBytes : kMaxBodyBytes;
    if (std::strtoull(req.get_header_value("Content-Length").c_str(), nullptr, 10) > limit) {
        *why = "request body larger than " + std::to_string(limit) + " bytes";
        return 413;
    }
    // An uploaded picture is the one body that is not JSON (a page on
    // another site cannot send an image/* body without asking either).
    std::string type = req.get_header_value("Content-Type");
    if (upload ? type.compare(0, 6, "image/") != 0 : type.compare(0, 16, "application/json") != 0) {
        *why = "a " + req.method + " request to " + req.path + " must send " +
               (upload ? "an image/* body" : "application/json");
        return 415;
    }
    std::string origin = req.get_header_value("Origin");
    if (!origin.empty() && origin != "http://" + host && origin != "https://" + host) {
        *why = "cross-origin request refused (Origin " + origin + ")";
        return 403;
    }
    if (req.get_header_value("Sec-Fetch-Site") == "cross-site") {
        *why = "cross-site request refused";
        return 403;
    }
    return 0;
}

// Why the database cannot answer now (empty when it can).
std::string database_problem() {
    try {
        Lease c = g_pool->acquire(std::chrono::seconds(2));
        c->exec_params("SELECT 1", {});
        return "";
    } catch (const std::exception& e) {
        return e.what();
    }
}

void send_error(httplib::Response& res, int status, const std::string& message) {
    send_json(res, error_json(status, message), status);
    t_note = "error: " + message;
}

int g_port = 0;               // the port the app listens on
bool g_behind_proxy = false;  // --behind-proxy: the client is X-Real-IP

// The client's address: the proxy's X-Real-IP with --behind-proxy (the
// proxy is then the only peer), else the peer's.
std::string client_address(const httplib::Request& req) {
    if (g_behind_proxy) {
        std::string real = req.get_header_value("X-Real-IP");
        if (!real.empty()) return real;
    }
    return req.remote_addr;
}

// The socket of the connection serving req, found by its peer's address
// and our port (cpp-httplib 0.11 does not hand it to handlers); -1 if none.
int client_socket(const httplib::Request& req) {
    DIR* fds = opendir("/proc/self/fd");
    if (!fds) return -1;
    int found = -1;
    while (dirent* entry = readdir(fds)) {
        int fd = std::atoi(entry->d_name);
        if (fd <= 2) continue;
        sockaddr_storage peer{}, local{};
        socklen_t peer_len = sizeof(peer), local_len = sizeof(local);
        if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0 ||
            getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0)
            continue;
        char host[INET6_ADDRSTRLEN] = "";
        int peer_port = 0, local_port = 0;
        if (peer.ss_family == AF_INET) {
            auto* in = reinterpret_cast<sockaddr_in*>(&peer);
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            peer_port = ntohs(in->sin_port);
            local_port = ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
        } else if (peer.ss_family == AF_INET6) {
            auto* in = reinterpret_cast<sockaddr_in6*>(&peer);
            inet_ntop(AF_INET6, &in->sin6_addr, host, sizeof(host));
            peer_port = ntohs(in->sin6_port);
            local_port = ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
        } else {
            continue;
        }
        if (peer_port == req.remote_port && local_port == g_port && req.remote_addr == host) {
            found = fd;
            break;
        }
    }
    closedir(fds);
    return found;
}

// True when the client closed its side of the connection (or it broke).
// Data waiting (a pipelined request) is not a departure.
bool client_left(int fd) {
    char byte;
    ssize_t n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

// While it lives, the queries of this thread's request are cancelled when
// its client goes away (db.h, set_client_gone_check): a search the user
// abandoned (a new click, a closed tab, a proxy's timeout) frees its
// pooled connection at once instead of running to its end.
class ClientWatch {
  public:
    explicit ClientWatch(const httplib::Request& req) {
        set_client_gone_check([&req, fd = -2]() mutable {
            if (fd == -2) fd = client_socket(req);  // looked up once, when a query is slow
            return fd >= 0 && client_left(fd);
        });
    }
    ~ClientWatch() { set_client_gone_check(nullptr); }
    ClientWatch(const ClientWatch&) = delete;
    ClientWatch& operator=(const ClientWatch&) = delete;
};

// Runs a handler, turning ApiError and database errors into JSON.
template <typename F>
httplib::Server::Handler api(F f) {
    return [f](const httplib::Request& req, httplib::Response& res) {
        ClientWatch watch(req);
        try {
            f(req, res);
        } catch (const ApiError& e) {
            send_error(res, e.status, e.message);
        } catch (const DbError& e) {
            int status = 500;
            if (e.sqlstate() == "pool" || e.connection_failure())
                status = 503;
            else if (e.sqlstate() == "57014")
                status = 504;  // statement_timeout
            send_error(res, status, std::string("database: ") + e.what());
        } catch (const std::exception& e) {
            send_error(res, 500, std::string("internal error: ") + e.what());
        }
    };
}

Lease connection() { return g_pool->acquire(std::chrono::seconds(10)); }

// A connection for what only reads (searches, the image list, thumbnails):
// from --read-db's pool when there is one. Writes (feedback) and what must
// see them at once (a refine with the votes just cast) use connection().
Lease read_connection() {
    return (g_read_pool ? g_read_pool : g_pool)->acquire(std::chrono::seconds(10));
}

// ---------------------------------------------------------------------------
// Users and sessions (users.h, demo/app.sql).

// Who a request comes from: its session cookie's user.
struct User {
    long long id = 0;
    std::string name;
    std::string csrf;
    bool admin = false;
};

// Sessions checked in the last kSessionCacheSeconds, by their token's
// digest, so that a search does not ask the primary for its session each
// time. A logout in another app process reaches this one within that time.
constexpr int kSessionCacheSeconds = 30;
struct CachedSession {
    User user;
    Clock::time_point checked;
};
std::mutex g_sessions_mu;
std::map<std::string, CachedSession> g_sessions;
bool g_secure_cookies = false;  // --secure-cookies: the app is behind HTTPS
bool g_require_login = false;   // --require-login: searches need a user too

// The user of the request's session cookie, if it names a live session.
std::optional<User> current_user(const httplib::Request& req) {
    if (!g_pool->capabilities().users) return std::nullopt;
    std::string token = session_cookie(req.get_header_value("Cookie"));
    if (token.size() != 43) return std::nullopt;
    std::string digest = token_digest(token);
    {
        std::lock_guard<std::mutex> lock(g_sessions_mu);
        auto it = g_sessions.find(digest);
        if (it != g_sessions.end()) {
            if (Clock::now() - it->second.checked < std::chrono::seconds(kSessionCacheSeconds))
                return it->second.user;
            g_sessions.erase(it);
        }
    }
    Result r = connection()->exec("session_user", {digest});
    if (r.rows() == 0) return std::nullopt;
    User user{r.integer(0, 0), r.text(0, 1), r.text(0, 2), r.boolean(0, 3)};
    std::lock_guard<std::mutex> lock(g_sessions_mu);
    if (g_sessions.size() > 10000) g_sessions.clear();  // bounded memory
    g_sessions[digest] = {user, Clock::now()};
    return user;
}

// The request's user; 401 without one. A request that changes state must
// also carry its session's CSRF token in X-CSRF-Token (403 otherwise): a
// page on another site can make the browser send the cookie, but cannot
// read the token (/api/me answers only same-origin scripts).
User require_user(const httplib::Request& req, bool changes_state) {
    std::optional<User> user = current_user(req);
    if (!user) throw ApiError{401, "log in first"};
    if (changes_state && !same_secret(req.get_header_value("X-CSRF-Token"), user->csrf))
        throw ApiError{403, "missing or wrong CSRF token (X-CSRF-Token)"};
    return *user;
}

// The Set-Cookie value for the session cookie (an empty value and max_age
// 0 remove it).
std::string session_cookie_header(const std::string& value, int max_age) {
    return std::string(kSessionCookie) + "=" + value +
           "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age) +
           (g_secure_cookies ? "; Secure" : "");
}

// Password guessing: 60 attempts a minute per address (an office behind
// one NAT address), 10 per user name
// (from any address); each attempt costs an Argon2id computation anyway.
RateLimit g_login_by_address(60);
RateLimit g_login_by_name(10);

// An Argon2id string to check when the user does not exist, so that an
// unknown name takes as long as a wrong password.
const std::string& unknown_user_hash() {
    static const std::string hash = hash_password(random_token());
    return hash;
}

// POST /api/login {"name": ..., "password": ...}: a session cookie and the
// session's CSRF token, or 401.
void handle_login(const httplib::Request& req, httplib::Response& res) {
    if (!g_pool->capabilities().users)
        throw ApiError{404, "users are not available: no app_users table (run demo/app.sql)"};
    res.set_header("Cache-Control", "no-store");
    if (!g_login_by_address.allow(client_address(req))) {
        res.set_header("Retry-After", "60");
        throw ApiError{429, "too many login attempts from this address: wait a minute"};
    }
    if (req.body.size() > 4096) bad_request("request body too large");
    std::map<std::string, JsonScalar> body;
    std::string err;
    if (!parse_flat_json_object(req.body, body, err)) bad_request("malformed JSON body: " + err);
    auto text = [&](const char* name) {
        auto it = body.find(name);
        if (it == body.end() || it->second.kind != JsonScalar::String)
            bad_request(std::string("field '") + name + "' must be a string");
        return it->second.text;
    };
    std::string name = text("name");
    std::string password = text("password");
    if (!valid_user_name(name)) throw ApiError{401, "wrong user name or password"};
    if (!g_login_by_name.allow(name)) {
        res.set_header("Retry-After", "60");
        throw ApiError{429, "too many login attempts for this user: wait a minute"};
    }
    long long id = 0;
    std::string stored;
    {
        Result r = connection()->exec("user_password", {name});
        if (r.rows() > 0) {
            id = r.integer(0, 0);
            stored = r.text(0, 1);
        }
    }
    // No pooled connection is held while Argon2id runs (tens of ms).
    bool ok = stored.empty() ? (password_matches(unknown_user_hash(), password), false)
                             : password_matches(stored, password);
    if (!ok) {
        t_note = "login refused for " + name;
        throw ApiError{401, "wrong user name or password"};
    }
    std::string token = random_token();
    std::string csrf = random_token();
    {
        Lease c = connection();
        c->exec("sessions_expire", {});
        c->exec("session_create",
                {token_digest(token), std::to_string(id), csrf, std::to_string(kSessionHours)});
    }
    res.set_header("Set-Cookie", session_cookie_header(token, kSessionHours * 3600));
    JsonWriter j;
    j.begin_object().key("ok").value(true).key("user").value(name).key("csrf").value(csrf);
    j.end_object();
    t_note = "login " + name;
    send_json(res, j.str());
}

// POST /api/logout: ends the session (its row and its cookie).
void handle_logout(const httplib::Request& req, httplib::Response& res) {
    User user = require_user(req, true);
    std::string digest = token_digest(session_cookie(req.get_header_value("Cookie")));
    connection()->exec("session_delete", {digest});
    {
        std::lock_guard<std::mutex> lock(g_sessions_mu);
        g_sessions.erase(digest);
    }
    res.set_header("Set-Cookie", session_cookie_header("", 0));
    res.set_header("Cache-Control", "no-store");
    t_note = "logout " + user.name;
    send_json(res, "{\"ok\":true}");
}

// GET /api/me: who is logged in, with the session's CSRF token for the
// page's scripts (a page on another site cannot read this answer).
void handle_me(const httplib::Request& req, httplib::Response& res) {
    std::optional<User> user = current_user(req);
    JsonWriter j;
    j.begin_object().key("users").value(g_pool->capabilities().users);
    j.key("login_required").value(g_require_login).key("user");
    if (user) {
        j.value(user->name).key("csrf").value(user->csrf).key("admin").value(user->admin);
    } else {
        j.null();
    }
    j.end_object();
    res.set_header("Cache-Control", "no-store");
    send_json(res, j.str());
}

// True for what --require-login keeps from anonymous requests: the API
// and the pictures, but not the page, the login and /healthz.
bool needs_login(const std::string& path) {
    if (path == "/api/login" || path == "/api/me") return false;
    return path.compare(0, 5, "/api/") == 0 || path.compare(0, 5, "/img/") == 0;
}

// ---------------------------------------------------------------------------
// Handlers.

constexpr int kMetaRefreshSeconds = 10;

void handle_meta(const httplib::Request& req, httplib::Response& res) {
    check_known_params(req, {"refresh"});
    if (bool_param(req, "refresh")) {
        // A reload costs up to a second of database time; anyone may ask,
        // so at most one per kMetaRefreshSeconds (SIGHUP always reloads).
        static std::atomic<long long> last_refresh{0};
        long long now =
            std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch())
                .count();
        long long last = last_refresh.load();
        if (now - last >= kMetaRefreshSeconds && last_refresh.compare_exchange_strong(last, now)) {
            reload_meta();
            t_note = "metadata reloaded";
        } else {
            t_note = "refresh skipped (one per " + std::to_string(kMetaRefreshSeconds) + " s)";
        }
    }
    auto m = meta();
    const Capabilities& caps = g_pool->capabilities();
    JsonWriter j;
    j.begin_object();
    j.key("models").begin_array();
    for (const auto& model : m->models) {
        j.begin_object().key("model").value(model).key("versions").begin_array();
        for (const auto& v : m->versions.at(model)) {
            ModelVersion mv{model, v};
            j.begin_object().key("version").value(v).key("rows").value(m->rows.at(mv));
            j.key("dimensions").value(m->dims.at(mv));
            auto ck = m->cluster_k.find(mv);
            j.key("clusters");
            if (ck != m->cluster_k.end())
                j.value(ck->second);
            else
                j.null();
            j.key("metrics").begin_object();
            for (const char* metric : kMetrics) {
                const std::string& idx = m->index_for.at({model, v, metric});
                j.key(metric).begin_object().key("index");
                if (idx.empty())
                    j.null();
                else
                    j.value(idx);
                j.key("exact_scan").value(idx.empty()).end_object();
            }
            j.end_object();
            j.key("default_metric").value(default_metric(*m, {model, v}));
            j.end_object();
        }
        j.end_array().end_object();
    }
    j.end_array();
    j.key("designs").value(m->designs);
    j.key("seasons").value(m->seasons);
    j.key("qualities").value(m->qualities);
    j.key("tags").value(m->tags);
    j.key("images").value(m->images);
    j.key("features")
        .begin_object()
        .key("clusters")
        .value(caps.clusters)
        .key("feedback")
        .value(caps.feedback)
        .key("refine")
        .value(caps.feedback && caps.rocchio)
        .key("similarity_functions")
        .value(caps.cosine_similarity && caps.euclidean_similarity)
        .end_object();
    j.key("benzer_version").value(caps.extension_version);
    j.key("n_default").value(100).key("n_max").value(500);
    j.key("loaded_at").value(m->loaded_at);
    j.end_object();
    send_json(res, j.str());
}

// An image's design, season, quality and tags: columns 2 to 5 of row i of
// the images_page and similar_* statements.
void write_image_metadata(JsonWriter& j, Result& r, int i) {
    j.key("design")
        .value(r.text(i, 2))
        .key("season")
        .value(r.text(i, 3))
        .key("quality")
        .value(r.text(i, 4));
    j.key("tags").raw(r.text(i, 5));
}

void handle_images(const httplib::Request& req, httplib::Response& res) {
    check_known_params(
        req, {"q", "design", "season", "quality", "tags", "tags_mode", "offset", "limit", "after"});
    auto m = meta();
    long long offset = int_param(req, "offset", 0, 0, 10000000);
    // Keyset paging: the images after this id (an index lookup however far
    // down the list; OFFSET reads and skips every row before it).
    Param after;
    if (single(req, "after")) after = std::to_string(int_param(req, "after", 0, 0, INT_MAX));
    long long limit = int_param(req, "limit", 60, 1, 500);
    Param q;
    if (auto v = single(req, "q"); v && !v->empty()) {
        if (v->size() > 200) bad_request("parameter 'q' is longer than 200 characters");
        q = std::move(*v);
    }
    auto design = list_param(req, "design", m->designs);
    auto season = list_param(req, "season", m->seasons);
    auto quality = list_param(req, "quality", m->qualities);
    auto tags = list_param(req, "tags", m->tags);
    std::string tags_mode = single(req, "tags_mode").value_or("any");
    if (tags_mode != "any" && tags_mode != "all")
        bad_request("parameter 'tags_mode' must be any or all");
    Params p = {q,
                to_param(design),
                to_param(season),
                to_param(quality),
                tags_mode == "any" ? to_param(tags) : std::nullopt,
                tags_mode == "all" ? to_param(tags) : std::nullopt,
                std::to_string(limit + 1),
                std::to_string(offset),
                after};
    auto t0 = Clock::now();
    Lease c = read_connection();
    Result r = c->exec("images_page", p);
    long long total = -1;
    bool filtered = false;
    for (int i = 0; i < 6; i++) filtered = filtered || p[i].has_value();
    if (offset == 0 && !after && !filtered) {
        total = m->images;
    } else if (offset == 0 && !after) {
        Params pc(p.begin(), p.begin() + 6);
        Result rc = c->exec("images_count", pc);
        total = rc.integer(0, 0);
    }
    double q_ms = ms_since(t0);
    int n = std::min<int>(r.rows(), static_cast<int>(limit));
    JsonWriter j;
    j.begin_object().key("offset").value(offset).key("limit").value(limit);
    j.key("has_more").value(r.rows() > limit);
    j.key("total");
    if (total >= 0)
        j.value(total);
    else
        j.null();
    j.key("query_ms").value(q_ms, "%.3f");
    j.key("images").begin_array();
    for (int i = 0; i < n; i++) {
        j.begin_object().key("id").value(r.integer(i, 0)).key("filename").value(r.text(i, 1));
        write_image_metadata(j, r, i);
        j.key("url").value("/img/" + r.text(i, 0) + ".png");
        j.end_object();
    }
    j.end_array().end_object();
    send_json(res, j.str());
}

long long id_param(const httplib::Request& req, const std::string& name) {
    auto v = single(req, name);
    if (!v) bad_request("parameter '" + name + "' is required");
    return parse_int(name, *v, 1, INT_MAX);
}

// The query string of a search that both /api/similar and
// /api/similar-image take: model, version, metric, n and the filters.
struct SearchParams {
    ModelChoice mc;
    std::string metric;
    long long n = 100;
    std::optional<std::vector<std::string>> design, season, quality, tags;
    std::string tags_mode;
};

SearchParams search_params(const httplib::Request& req, const Meta& m) {
    SearchParams sp;
    sp.mc = model_params(req, m);
    sp.metric = single(req, "metric").value_or(default_metric(m, sp.mc));
    if (sp.metric != "cosine" && sp.metric != "euclidean")
        bad_request("parameter 'metric' must be cosine or euclidean, not '" +
                    truncate_for_message(sp.metric) + "'");
    sp.n = int_param(req, "n", 100, 1, 500);
    sp.design = list_param(req, "design", m.designs);
    sp.season = list_param(req, "season", m.seasons);
    sp.quality = list_param(req, "quality", m.qualities);
    sp.tags = list_param(req, "tags", m.tags);
    sp.tags_mode = single(req, "tags_mode").value_or("any");
    if (sp.tags_mode != "any" && sp.tags_mode != "all")
        bad_request("parameter 'tags_mode' must be any or all");
    return sp;
}

// The parameters of a similar_* statement: the query ($1: an image id, or
// a vector), then the search's model, version, n and filters.
Params statement_params(const std::string& query, const SearchParams& sp, const Param& cluster) {
    return {query,
            sp.mc.model,
            sp.mc.version,
            std::to_string(sp.n),
            to_param(sp.design),
            to_param(sp.season),
            to_param(sp.quality),
            sp.tags_mode == "any" ? to_param(sp.tags) : std::nullopt,
            sp.tags_mode == "all" ? to_param(sp.tags) : std::nullopt,
            cluster};
}

// The "results" array of a search answer: one object per row of a
// similar_* statement (id, filename, design, season, quality, tags,
// cluster, distance, score, pixels), with the user's vote on it and its
// similarity against the typical distance.
void write_results(JsonWriter& j, Result& r, const std::map<long long, int>& votes,
                   double typical) {
    j.key("results").begin_array();
    for (int i = 0; i < r.rows(); i++) {
        long long rid = r.integer(i, 0);
        j.begin_object()
            .key("rank")
            .value(i + 1)
            .key("id")
            .value(rid)
            .key("filename")
            .value(r.text(i, 1));
        write_image_metadata(j, r, i);
        j.key("cluster");
        if (r.is_null(i, 6))
            j.null();
        else
            j.value(r.integer(i, 6));
        j.key("distance");
        if (r.is_null(i, 7))
            j.null();
        else
            j.value(r.number(i, 7), "%.6g");
        j.key("score");
        if (r.is_null(i, 8))
            j.null();
        else
            j.value(r.number(i, 8), "%.6g");
        if (!r.is_null(i, 9)) j.key("thumb").value(png_data_uri(r.text(i, 9)));
        j.key("similarity");
        if (r.is_null(i, 7) || typical <= 0)
            j.null();
        else
            j.value(similarity_percent(r.number(i, 7), typical), "%.1f");
        auto vt = votes.find(rid);
        j.key("vote").value(vt == votes.end() ? 0 : vt->second);
        j.key("url").value("/img/" + std::to_string(rid) + ".png");
        j.end_object();
    }
    j.end_array();
}

void handle_similar(const httplib::Request& req, httplib::Response& res) {
    auto t_start = Clock::now();
    check_known_params(req, {"id", "model", "version", "metric", "n", "design", "season", "quality",
                             "tags", "tags_mode", "cluster", "refine"});
    auto m = meta();
    const Capabilities& caps = g_pool->capabilities();
    long long id = id_param(req, "id");
    SearchParams sp = search_params(req, *m);
    const ModelChoice& mc = sp.mc;
    const std::string& metric = sp.metric;
    long long n = sp.n;
    const auto &design = sp.design, &season = sp.season, &quality = sp.quality, &tags = sp.tags;
    const std::string& tags_mode = sp.tags_mode;
    Param cluster;
    std::vector<std::string> cluster_values;
    if (req.get_param_value_count("cluster") > 0) {
        auto ck = m->cluster_k.find({mc.model, mc.version});
        std::vector<std::string> allowed;
        if (ck != m->cluster_k.end())
            for (int k = 0; k < ck->second; k++) allowed.push_back(std::to_string(k));
        if (allowed.empty() &&
            !(req.get_param_value_count("cluster") == 1 && req.get_param_value("cluster").empty()))
            bad_request("no clusters for " + mc.model + "/" + mc.version +
                        " (clusters table empty or missing)");
        auto cl = list_param(req, "cluster", allowed);
        if (cl) {
            cluster_values = *cl;
            std::string arr = "{";
            for (size_t i = 0; i < cl->size(); i++) arr += (i ? "," : "") + (*cl)[i];
            cluster = arr + "}";
        }
    }
    bool refine = bool_param(req, "refine");
    if (refine && !(caps.rocchio && caps.feedback))
        bad_request(
            "refine is not available: it needs the feedback table (demo/app.sql) and rocchio()");
    // The votes shown and a refine's are the user's own.
    std::optional<User> user = caps.feedback ? current_user(req) : std::nullopt;
    if (refine && !user) throw ApiError{401, "log in to refine: a refine uses your votes"};

    const std::string& index = m->index_for.at({mc.model, mc.version, metric});
    // A refine reads the votes: from the primary, which has the latest.
    Lease c = refine ? connection() : read_connection();
    JsonWriter j;
    j.begin_object();
    std::string query_cluster;
    // The query image; 404 if it or its vector is missing.
    {
        Result r = c->exec("query_image", {std::to_string(id), mc.model, mc.version});
        if (r.rows() == 0) not_found("no image with id " + std::to_string(id));
        if (!r.boolean(0, 7))
            not_found("image " + std::to_string(id) + " has no " + mc.model + "/" + mc.version +
                      " features");
        j.key("query").begin_object().key("id").value(id).key("filename").value(r.text(0, 1));
        j.key("design")
            .value(r.text(0, 2))
            .key("season")
            .value(r.text(0, 3))
            .key("quality")
            .value(r.text(0, 4));
        j.key("tags").raw(r.text(0, 5)).key("cluster");
        if (r.is_null(0, 6))
            j.null();
        else
            j.value(r.integer(0, 6));
        j.key("url").value("/img/" + std::to_string(id) + ".png").end_object();
        if (!r.is_null(0, 6)) query_cluster = r.text(0, 6);
    }
    // A cluster filter that leaves out the query image's own cluster: read
    // the selected clusters instead of the index (see similar_by_cluster_sql).
    bool by_cluster = cluster.has_value() && std::find(cluster_values.begin(), cluster_values.end(),
                                                       query_cluster) == cluster_values.end();
    std::map<long long, int> votes;
    int liked = 0, disliked = 0;
    if (user) {
        Result r = c->exec("feedback_votes",
                           {std::to_string(id), mc.model, mc.version, std::to_string(user->id)});
        for (int i = 0; i < r.rows(); i++) {
            int v = static_cast<int>(r.integer(i, 1));
            votes[r.integer(i, 0)] = v;
            (v > 0 ? liked : disliked)++;
        }
    }
    Params p = statement_params(std::to_string(id), sp, cluster);
    if (refine) p.push_back(std::to_string(user->id));  // $11: whose votes
    auto t0 = Clock::now();
    Result r;
    bool fell_back = false;
    if (cluster && !by_cluster && !index.empty()) {
        // The query image's own cluster is selected: try the index, but let
        // it read at most kClusterScanBudget rows (SET LOCAL, in a
        // transaction). Other filters can make the cluster's matches sparse
        // near the query image; if the index has not found N rows by then,
        // the selected clusters' members are read instead, so a search
        // neither takes the index's whole max_scan_tuples nor comes back
        // short.
        c->exec("begin", {});
        try {
            c->exec("scan_budget", {std::to_string(kClusterScanBudget)});
            r = c->exec(similar_name(metric, refine, false), p);
            c->exec("commit", {});
        } catch (...) {
            try {
                c->exec("rollback", {});
            } catch (...) {
            }
            throw;
        }
        if (r.rows() < n) {
            by_cluster = fell_back = true;
            r = c->exec(similar_name(metric, refine, true), p);
        }
    } else {
        r = c->exec(similar_name(metric, refine, by_cluster), p);
    }
    double query_ms = ms_since(t0);

    j.key("model").value(mc.model).key("version").value(mc.version).key("metric").value(metric);
    j.key("n").value(n).key("refine").value(refine);
    // This query image's feedback (all of it, not only on these results);
    // a refine search used exactly these votes.
    j.key("feedback")
        .begin_object()
        .key("liked")
        .value(liked)
        .key("disliked")
        .value(disliked)
        .end_object();
    j.key("index");
    if (index.empty() || by_cluster)
        j.null();
    else
        j.value(index);
    j.key("exact_scan").value(index.empty() || by_cluster);
    j.key("plan").value(fell_back ? "exact distances over the selected clusters (the index found "
                                    "fewer than n matches within " +
                                        std::to_string(kClusterScanBudget) + " rows)"
                        : by_cluster    ? std::string("exact distances over the selected clusters "
                                                         "(the query image is in another cluster)")
                        : index.empty() ? "exact scan: no faiss index for " + mc.model + "/" +
                                              mc.version + " with " + metric + " distance"
                                        : "faiss index " + index);
    j.key("filters").begin_object();
    auto put_list = [&](const char* k, const std::optional<std::vector<std::string>>& v) {
        if (v) j.key(k).value(*v);
    };
    put_list("design", design);
    put_list("season", season);
    put_list("quality", quality);
    if (tags) {
        j.key("tags").value(*tags);
        j.key("tags_mode").value(tags_mode);
    }
    if (cluster) {
        j.key("cluster").begin_array();
        for (const auto& v : cluster_values) j.value(std::stoll(v));
        j.end_array();
    }
    j.end_object();
    j.key("count").value(r.rows());
    j.key("query_ms").value(query_ms, "%.3f");
    auto typical_it = m->typical_distance.find({mc.model, mc.version, metric});
    double typical = typical_it == m->typical_distance.end() ? 0 : typical_it->second;
    if (typical > 0) j.key("typical_distance").value(typical, "%.6g");
    write_results(j, r, votes, typical);
    j.key("server_ms").value(ms_since(t_start), "%.3f");
    j.end_object();
    res.set_header("Server-Timing", "db;dur=" + std::to_string(query_ms));
    t_note =
        mc.model + "/" + mc.version + " " + metric + (refine ? " refine" : "") +
        " n=" + std::to_string(n) + " rows=" + std::to_string(r.rows()) +
        " query=" + fmt_ms(query_ms) + " " +
        (fell_back
             ? "index then exact over the selected clusters (fewer than n within the scan budget)"
         : by_cluster
             ? "exact over the selected clusters (query image in cluster " + query_cluster + ")"
         : index.empty() ? "EXACT-SCAN (no faiss index for this metric)"
                         : "index=" + index);
    send_json(res, j.str());
}

// At most kVotesPerMinute votes a minute per client address and per user: a person
// clicks a few; a script that floods the feedback table (and the
// primary's WAL) gets 429.
constexpr int kVotesPerMinute = 120;

RateLimit g_votes(kVotesPerMinute);  // per address and per user

void handle_feedback(const httplib::Request& req, httplib::Response& res) {
    const Capabilities& caps = g_pool->capabilities();
    if (!caps.feedback)
        bad_request("feedback is not available: no feedback table (run demo/app.sql)");
    // A vote is its user's, sent by the page with the session's CSRF token.
    User user = require_user(req, true);
    if (!g_votes.allow(client_address(req)) || !g_votes.allow("user " + std::to_string(user.id))) {
        res.set_header("Retry-After", "60");
        throw ApiError{429, "too many votes from this address: at most " +
                                std::to_string(kVotesPerMinute) + " a minute"};
    }
    // Only the JSON body counts (a body sent as a form is read as JSON too).
    if (req.body.size() > 4096) bad_request("request body too large");
    std::map<std::string, JsonScalar> body;
    std::string err;
    if (!parse_flat_json_object(req.body, body, err)) bad_request("malformed JSON body: " + err);
    for (const auto& kv : body) {
        static const std::set<std::string> known = {"query_id", "result_id", "model", "version",
                                                    "vote"};
        if (!known.count(kv.first))
            bad_request("unknown field '" + truncate_for_message(kv.first) + "'");
    }
    auto field = [&](const char* name) -> const JsonScalar& {
        auto it = body.find(name);
        if (it == body.end() || it->second.kind == JsonScalar::Null)
            bad_request(std::string("field '") + name + "' is required");
        return it->second;
    };
    auto id_field = [&](const char* name) {
        const JsonScalar& v = field(name);
        if (v.kind != JsonScalar::Number && v.kind != JsonScalar::String)
            bad_request(std::string("field '") + name + "' must be an image id");
        return parse_int(name, v.text, 1, INT_MAX);
    };
    long long qid = id_field("query_id");
    long long rid = id_field("result_id");
    if (qid == rid) bad_request("query_id and result_id must differ");
    auto m = meta();
    const JsonScalar& model = field("model");
    const JsonScalar& version = field("version");
    if (model.kind != JsonScalar::String || version.kind != JsonScalar::String)
        bad_request("fields 'model' and 'version' must be strings");
    auto vs = m->versions.find(model.text);
    if (vs == m->versions.end())
        bad_request("unknown model '" + truncate_for_message(model.text) + "'");
    if (std::find(vs->second.begin(), vs->second.end(), version.text) == vs->second.end())
        bad_request("unknown version '" + truncate_for_message(version.text) + "' of model " +
                    model.text);
    const JsonScalar& vote_v = field("vote");
    int vote;
    if (vote_v.text == "up" || vote_v.text == "1")
        vote = 1;
    else if (vote_v.text == "down" || vote_v.text == "-1")
        vote = -1;
    else if (vote_v.text == "clear" || vote_v.text == "0")
        vote = 0;
    else
        bad_request("field 'vote' must be up, down or clear (or 1, -1, 0)");

    Lease c = connection();
    Params ids = {std::to_string(qid), std::to_string(rid), model.text, version.text};
    Result chk = c->exec("feedback_check", ids);
    if (chk.integer(0, 0) != 2)
        not_found("image " + std::to_string(qid) + " or " + std::to_string(rid) + " has no " +
                  model.text + "/" + version.text + " features");
    std::string user_id = std::to_string(user.id);
    if (vote == 0) {
        Params p = ids;
        p.push_back(user_id);
        c->exec("feedback_delete", p);
    } else {
        Params p = ids;
        p.push_back(std::to_string(vote));
        p.push_back(user_id);
        c->exec("feedback_upsert", p);
    }
    Result r = c->exec("feedback_votes", {std::to_string(qid), model.text, version.text, user_id});
    int liked = 0, disliked = 0;
    for (int i = 0; i < r.rows(); i++) (r.integer(i, 1) > 0 ? liked : disliked)++;
    JsonWriter j;
    j.begin_object().key("ok").value(true).key("query_id").value(qid).key("result_id").value(rid);
    j.key("model").value(model.text).key("version").value(version.text).key("vote").value(vote);
    j.key("liked").value(liked).key("disliked").value(disliked).end_object();
    t_note = "vote " + std::to_string(vote) + " " + std::to_string(qid) + "->" +
             std::to_string(rid) + " by " + user.name;
    send_json(res, j.str());
}

void handle_image(const httplib::Request& req, httplib::Response& res) {
    std::string ids = req.matches[1];
    if (ids.size() > 10) bad_request("bad image id");
    long long id = parse_int("id", ids, 1, INT_MAX);
    int scale = 1;
    bool invert = false;
    check_known_params(req, {"scale", "invert"});
    scale = static_cast<int>(int_param(req, "scale", 1, 1, 16));
    invert = bool_param(req, "invert");
    Result r;
    {
        Lease c = read_connection();
        r = c->exec("image_pixels", {std::to_string(id)}, 1);
    }
    if (r.rows() == 0) not_found("no image with id " + std::to_string(id));
    const uint8_t* px = reinterpret_cast<const uint8_t*>(r.raw(0, 0));
    size_t len = static_cast<size_t>(r.length(0, 0));
    size_t side = 0;
    while ((side + 1) * (side + 1) <= len) side++;
    if (side == 0 || side * side != len)
        throw std::runtime_error("image " + std::to_string(id) + " is not square");
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, px, static_cast<uInt>(len));
    char etag[64];
    std::snprintf(etag, sizeof etag, "\"%lld-%08lx-%d%s\"", id, static_cast<unsigned long>(crc),
                  scale, invert ? "i" : "");
    res.set_header("ETag", etag);
    res.set_header("Cache-Control", "public, max-age=31536000, immutable");
    if (req.get_header_value("If-None-Match") == etag) {
        res.status = 304;
        return;
    }
    res.set_content(encode_png_gray8(px, side, side, scale, invert), "image/png");
}

// POST /api/similar-image: the images most similar to an uploaded picture
// (the request body: PNG, JPEG, GIF or BMP), with the query string's model,
// version, metric, n and filters as for /api/similar (no cluster filter,
// no refine: both belong to a stored query image).
void handle_similar_image(const httplib::Request& req, httplib::Response& res) {
    auto t_start = Clock::now();
    check_known_params(req, {"model", "version", "metric", "n", "design", "season", "quality",
                             "tags", "tags_mode"});
    auto m = meta();
    SearchParams sp = search_params(req, *m);
    const ModelChoice& mc = sp.mc;
    const std::string& metric = sp.metric;
    long long n = sp.n;
    const FeatureExtractor* extractor = extractor_for(mc.model);
    if (!extractor)
        bad_request("no feature extractor for model '" + mc.model +
                    "' in this app: search from a stored image instead");
    GrayImage picture;
    try {
        picture = to_collection_format(decode_image(req.body));
    } catch (const std::invalid_argument& e) {
        bad_request(e.what());
    }
    std::vector<float> features = extractor->extract(picture);
    int dims = m->dims.count({mc.model, mc.version}) ? m->dims.at({mc.model, mc.version}) : 0;
    if (static_cast<int>(features.size()) != dims)
        bad_request(mc.model + "/" + mc.version + " has " + std::to_string(dims) +
                    "-dimensional vectors; its extractor made " + std::to_string(features.size()));
    std::string vector = "[";
    for (size_t i = 0; i < features.size(); i++) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%s%.9g", i ? "," : "", features[i]);
        vector += buf;
    }
    vector += "]";

    Params p = statement_params(vector, sp, std::nullopt);
    Lease c = read_connection();
    auto t0 = Clock::now();
    Result r = c->exec(similar_vector_name(metric), p);
    double query_ms = ms_since(t0);

    const std::string& index = m->index_for.at({mc.model, mc.version, metric});
    std::string hex = "\\x";
    for (uint8_t px : picture.pixels) {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%02x", px);
        hex += buf;
    }
    JsonWriter j;
    j.begin_object();
    j.key("query")
        .begin_object()
        .key("upload")
        .value(true)
        .key("filename")
        .value("uploaded picture")
        .key("url")
        .value(png_data_uri(hex))
        .end_object();
    j.key("model").value(mc.model).key("version").value(mc.version).key("metric").value(metric);
    j.key("n").value(n).key("count").value(r.rows());
    j.key("index");
    if (index.empty())
        j.null();
    else
        j.value(index);
    j.key("exact_scan").value(index.empty());
    j.key("query_ms").value(query_ms, "%.3f");
    auto typical_it = m->typical_distance.find({mc.model, mc.version, metric});
    double typical = typical_it == m->typical_distance.end() ? 0 : typical_it->second;
    if (typical > 0) j.key("typical_distance").value(typical, "%.6g");
    write_results(j, r, {}, typical);
    j.key("server_ms").value(ms_since(t_start), "%.3f");
    j.end_object();
    send_json(res, j.str());
    t_note = mc.model + "/" + mc.version + " " + metric + " upload " +
             std::to_string(req.body.size()) + "B n=" + std::to_string(n) +
             " rows=" + std::to_string(r.rows()) + " query=" + fmt_ms(query_ms);
}

// Every backend of the pool loads a faiss index into its own memory on its
// first search (a few hundred ms for the demo's 217 MB pixels index). Run one
// search per index on every connection at start, so that no user waits for it.
void warm_up(Pool* pool) {
    auto t0 = Clock::now();
    auto m = meta();
    std::vector<Lease> leases;
    for (int i = 0; i < pool->size(); i++)
        leases.push_back(pool->acquire(std::chrono::seconds(60)));
    std::vector<std::thread> threads;
    std::atomic<int> searches{0};
    for (auto& lease : leases) {
        threads.emplace_back([&lease, &m, &searches] {
            for (const auto& e : m->index_for) {
                if (e.second.empty()) continue;
                const auto& [model, version, metric] = e.first;
                try {
                    lease->exec(similar_name(metric, false),
                                {std::to_string(m->first_id.at({model, version})), model, version,
                                 std::string("1"), std::nullopt, std::nullopt, std::nullopt,
                                 std::nullopt, std::nullopt, std::nullopt});
                    searches++;
                } catch (const std::exception& ex) {
                    log_line(utc_now() + " warm-up search failed: " + ex.what());
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    log_line(utc_now() + " warm-up: " + std::to_string(searches.load()) + " searches on " +
             std::to_string(leases.size()) + " connections in " + fmt_ms(ms_since(t0)));
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// ---------------------------------------------------------------------------

struct Options {
    std::string listen = "127.0.0.1";
    int port = 8080;
    std::string db;
    std::string read_db;
    bool have_read_db = false;
    std::string static_dir;
    int pool = 4;
    int threads = 64;
    std::string pid_file;
    bool print_sql = false;
    std::vector<std::string> allow_hosts;  // besides localhost and --listen
    std::string log_file;
    long long log_max_bytes = 100LL << 20;
    bool behind_proxy = false;
    bool require_login = false;
    bool secure_cookies = false;
    std::string add_user;  // --add-user NAME: create the user (or set its password) and exit
    bool admin = false;
};

[[noreturn]] void usage(const char* argv0, int code) {
    std::fprintf(
        code ? stderr : stdout,
        "usage: %s --db CONNINFO [--read-db CONNINFO] [--listen ADDR] [--port N]\n"
        "          [--static DIR] [--pool N] [--threads N (64)] [--pid-file FILE] [--print-sql]\n"
        "          [--allow-host NAME ...] [--log-file FILE [--log-max-bytes N (100 MB)]]\n"
        "          [--require-login] [--secure-cookies] [--behind-proxy]\n"
        "          [--add-user NAME [--admin]]\n"
        "CONNINFO is a libpq connection string; empty means the PG* environment variables.\n"
        "--read-db sends searches, the image list and thumbnails to other servers (read\n"
        "replicas; several hosts with target_session_attrs=prefer-standby); feedback and\n"
        "refined searches stay on --db.\n"
        "--print-sql prints the prepared statements for this database and exits.\n"
        "--allow-host NAME accepts requests for the host name NAME (the Host header) besides\n"
        "localhost, the --listen name and IP addresses; other names get 421 (a page on\n"
        "another site reaching the app through DNS rebinding).\n"
        "--require-login: searches and pictures need a logged-in user too (votes always do).\n"
        "--secure-cookies: the session cookie is Secure (the app is reached over HTTPS).\n"
        "--behind-proxy: a reverse proxy on this machine is the only client; the client's\n"
        "address is its X-Real-IP header (for rate limits and the log).\n"
        "--add-user NAME [--admin]: create the user NAME, or set its password, and exit; the\n"
        "password is read from BENZER_APP_PASSWORD or the first line of standard input.\n",
        argv0);
    std::exit(code);
}

Options parse_args(int argc, char** argv) {
    Options o;
    // Default static dir: ../static next to the binary's build dir, or ./app/static.
    std::string exe = argv[0];
    size_t slash = exe.rfind('/');
    std::string dir = slash == std::string::npos ? "." : exe.substr(0, slash);
    o.static_dir = dir + "/../static";
    bool have_db = false;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) usage(argv[0], 2);
            return argv[++i];
        };
        auto num = [&](int lo, int hi) {
            std::string v = next();
            char* end = nullptr;
            long x = std::strtol(v.c_str(), &end, 10);
            if (v.empty() || *end || x < lo || x > hi) {
                std::fprintf(stderr, "%s: bad value for %s: %s\n", argv[0], a.c_str(), v.c_str());
                std::exit(2);
            }
            return static_cast<int>(x);
        };
        if (a == "--listen")
            o.listen = next();
        else if (a == "--port")
            o.port = num(1, 65535);
        else if (a == "--db") {
            o.db = next();
            have_db = true;
        } else if (a == "--read-db") {
            o.read_db = next();
            o.have_read_db = true;
        } else if (a == "--static")
            o.static_dir = next();
        else if (a == "--pool")
            o.pool = num(1, 64);
        else if (a == "--threads")
            o.threads = num(2, 256);
        else if (a == "--pid-file")
            o.pid_file = next();
        else if (a == "--print-sql")
            o.print_sql = true;
        else if (a == "--allow-host")
            o.allow_hosts.push_back(next());
        else if (a == "--log-file")
            o.log_file = next();
        else if (a == "--log-max-bytes")
            o.log_max_bytes = num(4096, INT_MAX);
        else if (a == "--require-login")
            o.require_login = true;
        else if (a == "--behind-proxy")
            o.behind_proxy = true;
        else if (a == "--secure-cookies")
            o.secure_cookies = true;
        else if (a == "--add-user")
            o.add_user = next();
        else if (a == "--admin")
            o.admin = true;
        else if (a == "-h" || a == "--help")
            usage(argv[0], 0);
        else {
            std::fprintf(stderr, "%s: unknown argument %s\n", argv[0], a.c_str());
            usage(argv[0], 2);
        }
    }
    if (!have_db) usage(argv[0], 2);
    return o;
}

// --add-user: creates the user opt.add_user (or sets its password) with
// the password from BENZER_APP_PASSWORD or standard input's first line.
int add_user(const Options& opt) {
    if (!g_pool->capabilities().users) {
        std::fprintf(stderr,
                     "benzer-app: no app_users table in this database (run demo/app.sql)\n");
        return 1;
    }
    if (!valid_user_name(opt.add_user)) {
        std::fprintf(stderr, "benzer-app: a user name is 1 to 64 letters, digits and . _ @ -\n");
        return 2;
    }
    std::string password;
    if (const char* env = std::getenv("BENZER_APP_PASSWORD"))
        password = env;
    else
        std::getline(std::cin, password);
    if (password.size() < 8) {
        std::fprintf(stderr, "benzer-app: a password has at least 8 characters\n");
        return 2;
    }
    Result r = g_pool->acquire(std::chrono::seconds(10))
                   ->exec("user_add",
                          {opt.add_user, hash_password(password), opt.admin ? "true" : "false"});
    std::printf("user %s (id %lld)%s\n", opt.add_user.c_str(), r.integer(0, 0),
                opt.admin ? ", admin" : "");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options opt = parse_args(argc, argv);
    if (!opt.log_file.empty()) {
        g_log_file = std::fopen(opt.log_file.c_str(), "a");
        if (!g_log_file) {
            std::fprintf(stderr, "benzer-app: cannot open the log %s: %s\n", opt.log_file.c_str(),
                         std::strerror(errno));
            return 1;
        }
        g_log_path = opt.log_file;
        g_log_bytes = std::ftell(g_log_file);
        g_log_max_bytes = opt.log_max_bytes;
    }
    std::signal(SIGPIPE, SIG_IGN);
    if (!crypto_ready()) {
        std::fprintf(stderr, "benzer-app: libsodium could not start\n");
        return 1;
    }
    g_require_login = opt.require_login;
    g_behind_proxy = opt.behind_proxy;
    g_port = opt.port;
    g_secure_cookies = opt.secure_cookies;

    // SIGINT/SIGTERM stop the server, SIGHUP reloads the metadata: blocked
    // here (so every thread inherits the mask) and taken by one thread.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    if (access((opt.static_dir + "/index.html").c_str(), R_OK) != 0) {
        std::fprintf(stderr, "benzer-app: %s/index.html not found (use --static DIR)\n",
                     opt.static_dir.c_str());
        return 1;
    }
    try {
        g_pool = std::make_unique<Pool>(opt.db, opt.print_sql ? 1 : opt.pool, build_statements);
        if (opt.have_read_db && !opt.print_sql)
            g_read_pool = std::make_unique<Pool>(opt.read_db, opt.pool, build_statements);
        if (opt.print_sql) {
            for (const auto& st : g_statement_sql)
                std::printf("-- %s\n%s;\n\n", st.first.c_str(), st.second.c_str());
            return 0;
        }
        if (!opt.add_user.empty()) return add_user(opt);
        reload_meta();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "benzer-app: %s\n", e.what());
        return 1;
    }
    const Capabilities& caps = g_pool->capabilities();
    log_line(utc_now() + " benzer " + caps.extension_version + "; clusters " +
             (caps.clusters ? "yes" : "no") + ", feedback " + (caps.feedback ? "yes" : "no") +
             ", rocchio " + (caps.rocchio ? "yes" : "no") + ", similarity functions " +
             (caps.cosine_similarity && caps.euclidean_similarity ? "yes" : "no") + "; pool of " +
             std::to_string(g_pool->size()) + " connections" +
             (g_read_pool
                  ? ", reads on " + std::to_string(g_read_pool->size()) + " more (--read-db)"
                  : std::string()));

    httplib::Server svr;
    int threads = opt.threads;
    svr.new_task_queue = [threads] {
        return new httplib::ThreadPool(static_cast<size_t>(threads));
    };
    svr.set_keep_alive_max_count(1000);
    svr.set_tcp_nodelay(true);  // headers and body are separate writes: no Nagle delay
    svr.set_keep_alive_timeout(5);
    // The pre-routing check holds other requests to kMaxBodyBytes.
    svr.set_payload_max_length(kMaxUploadBytes);

    std::vector<std::string> allowed_hosts = {"localhost"};
    allowed_hosts.push_back(opt.listen);  // a name; addresses are always allowed
    allowed_hosts.insert(allowed_hosts.end(), opt.allow_hosts.begin(), opt.allow_hosts.end());
    svr.set_pre_routing_handler(
        [allowed_hosts](const httplib::Request& req, httplib::Response& res) {
            t_request_start = Clock::now();
            t_request_started = true;
            t_note.clear();
            set_security_headers(res);
            prefer_gzip(req);
            std::string refusal;
            int status = check_request_origin(req, allowed_hosts, &refusal);
            if (status == 0 && g_require_login && needs_login(req.path)) {
                try {
                    if (!current_user(req)) {
                        status = 401;
                        refusal = "log in first (this app runs with --require-login)";
                    }
                } catch (const std::exception& e) {
                    status = 503;
                    refusal = std::string("database: ") + e.what();
                }
            }
            if (status == 0) return httplib::Server::HandlerResponse::Unhandled;
            // httplib cuts every response into the request's byte ranges,
            // this refusal too; the request object is httplib's own, not
            // const, and its ranges are dropped here.
            const_cast<httplib::Request&>(req).ranges.clear();
            send_json(res, error_json(status, refusal), status);
            // Any body was left unread: the connection cannot carry
            // another request.
            res.set_header("Connection", "close");
            t_note = "refused: " + refusal;
            return httplib::Server::HandlerResponse::Handled;
        });
    svr.set_logger([](const httplib::Request& req, const httplib::Response& res) {
        std::string line =
            utc_now() + " " + log_safe(client_address(req)) + " " + log_safe(req.method) + " " +
            log_safe(req.target.empty() ? req.path : req.target) + " " +
            std::to_string(res.status) + " " +
            (t_request_started ? fmt_ms(ms_since(t_request_start)) : std::string("-")) + " " +
            std::to_string(res.body.size()) + "B";
        if (!t_note.empty()) line += " " + log_safe(t_note);
        log_line(line);
        t_request_started = false;
        t_note.clear();
    });

    // The page: index.html at /, the other files under /static/ (no-cache, so
    // edits show up on reload; ETags are httplib's Last-Modified checks).
    std::string static_dir = opt.static_dir;
    svr.Get("/", [static_dir](const httplib::Request&, httplib::Response& res) {
        res.set_header("Cache-Control", "no-cache");
        res.set_content(read_file(static_dir + "/index.html"), "text/html; charset=utf-8");
    });
    svr.set_mount_point("/static", opt.static_dir, {{"Cache-Control", "no-cache"}});

    svr.Get("/api/meta", api(handle_meta));
    svr.Get("/api/images", api(handle_images));
    svr.Get("/api/similar", api(handle_similar));
    svr.Post("/api/feedback", api(handle_feedback));
    svr.Post("/api/login", api(handle_login));
    svr.Post("/api/logout", api(handle_logout));
    svr.Get("/api/me", api(handle_me));
    svr.Post("/api/similar-image", api(handle_similar_image));
    svr.Get(R"(/img/([0-9]+)\.png)", api(handle_image));
    // Healthy means the database answers, not just that the process runs.
    svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
        std::string problem = database_problem();
        if (problem.empty()) {
            send_json(res, "{\"ok\":true}");
            return;
        }
        JsonWriter j;
        j.begin_object().key("ok").value(false).key("error").value(problem).end_object();
        send_json(res, j.str(), 503);
    });

    // Unhandled for an error a handler already wrote: it goes out as is.
    svr.set_error_handler(httplib::Server::HandlerWithResponse(
        [](const httplib::Request& req, httplib::Response& res) {
            if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
            std::string msg = res.status == 404   ? "no such resource: " + req.path
                              : res.status == 405 ? "method not allowed"
                                                  : "request failed";
            send_json(res, error_json(res.status, msg), res.status);
            return httplib::Server::HandlerResponse::Handled;
        }));
    svr.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
            std::string what = "unknown";
            try {
                if (ep) std::rethrow_exception(ep);
            } catch (const std::exception& e) {
                what = e.what();
            } catch (...) {
            }
            send_json(res, error_json(500, "internal error: " + what), 500);
        });

    if (!svr.bind_to_port(opt.listen, opt.port)) {
        std::fprintf(stderr, "benzer-app: cannot listen on %s:%d: %s\n", opt.listen.c_str(),
                     opt.port, std::strerror(errno));
        return 1;
    }
    if (!opt.pid_file.empty()) {
        std::ofstream pf(opt.pid_file);
        pf << getpid() << "\n";
    }

    std::atomic<bool> stopping{false};
    std::thread signal_thread([&] {
        for (;;) {
            int sig = 0;
            if (sigwait(&sigs, &sig) != 0) continue;
            if (sig == SIGHUP) {
                try {
                    reload_meta();
                } catch (const std::exception& e) {
                    log_line(utc_now() + " meta reload failed: " + e.what());
                }
                continue;
            }
            if (stopping.exchange(true)) continue;
            log_line(utc_now() + " signal " + std::to_string(sig) + ": stopping");
            svr.stop();
            return;
        }
    });
    signal_thread.detach();

    std::thread([] {
        try {
            warm_up(g_pool.get());
            if (g_read_pool) warm_up(g_read_pool.get());
        } catch (const std::exception& e) {
            log_line(utc_now() + " warm-up failed: " + e.what());
        }
    }).detach();

    log_line(utc_now() + " listening on http://" + opt.listen + ":" + std::to_string(opt.port) +
             "/ (static " + opt.static_dir + ")");
    bool ok = svr.listen_after_bind();
    if (!opt.pid_file.empty()) unlink(opt.pid_file.c_str());
    log_line(utc_now() + " stopped");
    return ok || stopping ? 0 : 1;
}
