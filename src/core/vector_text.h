// vector_text.h: the text form of a vector, "[1,2.5,-3e-2]".
//
// This is core code: no PostgreSQL headers, no exceptions, no allocation.
// The caller owns every buffer, so the PostgreSQL side can palloc them and a
// parse error can never leave a C++ object behind when it turns into ereport.
#pragma once

#include <cstddef>

namespace benzer {

// The largest dimension count a vector may have (the same as pgvector's).
constexpr int kMaxDimensions = 16000;

// What went wrong while parsing, if anything.
enum class ParseStatus {
    kOk,
    kMalformed,   // not of the form [x,y,...]
    kEmpty,       // "[]"
    kTooMany,     // more than the caller's capacity (or kMaxDimensions)
    kNotANumber,  // an element is NaN
    kInfinite,    // an element is +/-Infinity
    kOutOfRange,  // an element overflows float4
};

struct ParseResult {
    ParseStatus status;
    int dimensions;        // elements written to the output buffer
    std::size_t position;  // where the problem starts (for kOutOfRange, the
                           // offset of the offending number)
    std::size_t length;    // and its length in bytes
};

// An upper bound on the number of elements in text, cheap to compute: the
// number of commas plus one. Used to size the output buffer before parsing.
int count_elements_upper_bound(const char* text);

// Parses a NUL-terminated vector literal. Whitespace is allowed around the
// brackets and the numbers. Writes at most capacity floats to out.
ParseResult parse_vector(const char* text, float* out, int capacity) noexcept;

// The longest text format_float can produce, NUL included.
constexpr std::size_t kMaxFloatText = 20;

// Writes the shortest decimal text that reads back to exactly the same float
// (so text COPY and pg_dump round-trip bit for bit). Returns the number of
// characters written; the output is not NUL-terminated.
std::size_t format_float(float value, char* out) noexcept;

// Formats a whole vector as "[x,y,...]" plus a terminating NUL. out must hold
// at least format_vector_capacity(dimensions) bytes. Returns the length.
std::size_t format_vector(const float* values, int dimensions, char* out) noexcept;

// Bytes needed by format_vector for a vector of the given dimension count.
constexpr std::size_t format_vector_capacity(int dimensions) {
    return static_cast<std::size_t>(dimensions) * (kMaxFloatText + 1) + 3;
}

}  // namespace benzer
