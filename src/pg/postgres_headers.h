// postgres_headers.h: PostgreSQL's C headers, included from C++.
//
// Every PostgreSQL include in benzer goes through this file so that the
// extern "C" wrapping and the few C/C++ incompatibilities are handled once.
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
}

// Declares a SQL-callable function with C linkage.
#define BENZER_FUNCTION(name)  \
    extern "C" {               \
    PG_FUNCTION_INFO_V1(name); \
    }                          \
    extern "C" Datum name(PG_FUNCTION_ARGS)
