// module.cpp: the library's entry point and the C++-to-ereport mapping.
//
// _PG_init must stay cheap and must not start threads or touch OpenMP: the
// library may be preloaded into the postmaster, and a child forked after
// OpenMP has run hangs in libgomp.
#include "pg/faiss.h"
#include "pg/guard.h"
#include "pg/postgres_headers.h"
#include "pg/service.h"

extern "C" {
PG_MODULE_MAGIC;

void _PG_init(void);
}

// Registers settings, index options, the EXPLAIN hook and (when preloaded)
// the search service. Nothing here may start threads or touch Faiss.
void _PG_init(void) {
    // Before faiss_define_settings reserves the "benzer" prefix.
    service_init();
    shard_install_planner_hook();
    faiss_define_settings();
    faiss_install_explain_hook();
    faiss_install_planner_hook();
    faiss_install_limit_hook();
}

// Turns a caught C++ failure into ereport(ERROR) with a proper SQLSTATE.
void raise_guarded_error(const benzer::GuardedError& error, const char* context) {
    int sqlstate;
    switch (error.kind) {
        case benzer::ErrorKind::kInvalidParameter:
            sqlstate = ERRCODE_INVALID_PARAMETER_VALUE;
            break;
        case benzer::ErrorKind::kDataException:
            sqlstate = ERRCODE_DATA_EXCEPTION;
            break;
        case benzer::ErrorKind::kOutOfMemory:
            sqlstate = ERRCODE_OUT_OF_MEMORY;
            break;
        case benzer::ErrorKind::kCanceled:
            sqlstate = ERRCODE_QUERY_CANCELED;
            break;
        default:
            sqlstate = ERRCODE_INTERNAL_ERROR;
            break;
    }
    if (error.kind == benzer::ErrorKind::kCanceled)
        ereport(ERROR, (errcode(sqlstate), errmsg("canceling statement due to user request"),
                        errdetail("Faiss stopped in: %s.", context ? context : "a computation")));
    if (context != nullptr)
        ereport(ERROR, (errcode(sqlstate), errmsg("%s: %s", context, error.message)));
    ereport(ERROR, (errcode(sqlstate), errmsg("%s", error.message)));
    pg_unreachable();
}
