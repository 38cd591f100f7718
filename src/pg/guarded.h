// guarded.h: run C++ code and turn its failure into an ERROR, in one call.
//
//     guarded("could not train faiss index", [&] { engine->train(x, n); });
//
// The lambda follows guard.h's rules (no PostgreSQL calls inside). A Faiss
// "interrupted" exception means the user cancelled: CHECK_FOR_INTERRUPTS
// then raises the proper cancel error before the generic one.
#pragma once

#include "pg/guard.h"
#include "pg/postgres_headers.h"

template <typename Fn>
void guarded(const char* context, Fn&& fn) {
    benzer::GuardedError error;
    if (!benzer::run_guarded(error, fn)) {
        CHECK_FOR_INTERRUPTS();
        raise_guarded_error(error, context);
    }
}
