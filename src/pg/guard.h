// guard.h: the one place where C++ exceptions become PostgreSQL errors.
//
// PostgreSQL reports errors with longjmp. A longjmp over a C++ frame skips
// its destructors (leaking memory, leaving locks and Faiss objects behind),
// and a C++ exception that unwinds into PostgreSQL's C frames terminates the
// backend. So every call from PostgreSQL code into code that may throw goes
// through run_guarded():
//
//     GuardedError error;
//     bool ok = run_guarded(error, [&] { ...C++ work, no PostgreSQL calls... });
//     if (!ok) raise_guarded_error(error);   // ereport(ERROR), after the catch
//
// The lambda must not call PostgreSQL functions that can ereport (palloc,
// CHECK_FOR_INTERRUPTS, ...); allocate before or after. The exception's
// message is copied into a fixed buffer, the catch block is left, all C++
// objects are destroyed, and only then does raise_guarded_error() longjmp.
#pragma once

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>

#include "core/error.h"

namespace benzer {

struct GuardedError {
    ErrorKind kind = ErrorKind::kNone;
    char message[1024] = {0};

    void set(ErrorKind k, const char* text) noexcept {
        kind = k;
        snprintf(message, sizeof(message), "%s", text ? text : "unknown error");
    }
};

// Faiss's messages start "Error in <function> at <file>:<line>: ": the
// build machine's source paths mean nothing to a user. Returns the text
// after that prefix (what itself when there is none).
inline const char* without_source_location(const char* what) noexcept {
    if (what == nullptr || std::strncmp(what, "Error in ", 9) != 0) return what;
    for (const char* at = std::strstr(what, " at "); at != nullptr;
         at = std::strstr(at + 1, " at ")) {
        const char* colon = std::strstr(at + 4, ": ");
        if (colon == nullptr) break;
        const char* digits = colon;
        while (digits > at && digits[-1] >= '0' && digits[-1] <= '9') digits--;
        if (digits < colon && digits > at && digits[-1] == ':') {
            const char* rest = colon + 2;
            // Faiss's asserts add "Error: " before the failed condition.
            if (std::strncmp(rest, "Error: ", 7) == 0) rest += 7;
            return rest;
        }
    }
    return what;
}

// Runs fn; converts any exception into error and returns false.
template <typename Fn>
bool run_guarded(GuardedError& error, Fn&& fn) noexcept {
    try {
        fn();
        return true;
    } catch (const Error& e) {
        error.set(e.kind(), e.what());
    } catch (const std::bad_alloc&) {
        error.set(ErrorKind::kOutOfMemory, "out of memory in benzer");
    } catch (const std::invalid_argument& e) {
        error.set(ErrorKind::kInvalidParameter, e.what());
    } catch (const std::exception& e) {
        // Faiss reports an InterruptCallback stop as a plain exception.
        bool interrupted = std::strstr(e.what(), "computation interrupted") != nullptr;
        error.set(interrupted ? ErrorKind::kCanceled : ErrorKind::kInternal,
                  without_source_location(e.what()));
    } catch (...) {
        error.set(ErrorKind::kInternal, "unknown C++ exception");
    }
    return false;
}

}  // namespace benzer

// Raises the error as ereport(ERROR). Defined in module.cpp, the only
// translation unit that needs to know how error kinds map to SQLSTATEs.
// context is prefixed to the message ("could not build index: ...").
[[noreturn]] void raise_guarded_error(const benzer::GuardedError& error, const char* context);
