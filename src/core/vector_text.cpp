// vector_text.cpp: parsing and printing the "[1,2.5,-3e-2]" form.
//
// Numbers are read with std::from_chars, which ignores the locale and reads
// exactly what it is given; printing uses std::to_chars, whose default is the
// shortest decimal that reads back to the same float. Together they make the
// text form lossless, which is what pg_dump and text COPY rely on.
#include "vector_text.h"

#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace benzer {

namespace {

// The same characters PostgreSQL's scanner treats as whitespace.
bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

const char* skip_spaces(const char* p) {
    while (is_space(*p)) ++p;
    return p;
}

const char* find_end(const char* p) {
    while (*p != '\0') ++p;
    return p;
}

// For a number too large or too small even for a double: true when it is
// tiny (a negative exponent, or no non-zero digit before the point).
bool beyond_double_is_tiny(const char* begin, const char* end) {
    for (const char* q = begin; q < end; ++q)
        if (*q == 'e' || *q == 'E') return q + 1 < end && q[1] == '-';
    for (const char* q = begin; q < end && *q != '.'; ++q)
        if (*q >= '1' && *q <= '9') return false;
    return true;
}

// Reads one number at p. On success stores it in *value and returns the
// position after it; returns nullptr with *status set otherwise.
const char* read_number(const char* p, const char* end, float* value, ParseStatus* status) {
    // from_chars accepts a leading '-' but not '+'; strtof accepts both and
    // pgvector's input did too.
    bool negative = false;
    if (*p == '+' || *p == '-') {
        negative = (*p == '-');
        ++p;
        if (*p == '+' || *p == '-') {
            *status = ParseStatus::kMalformed;
            return nullptr;
        }
    }
    float parsed = 0.0f;
    auto result = std::from_chars(p, end, parsed, std::chars_format::general);
    if (result.ec == std::errc::invalid_argument || result.ptr == p) {
        *status = ParseStatus::kMalformed;
        return nullptr;
    }
    if (result.ec == std::errc::result_out_of_range) {
        // Overflow is an error; underflow becomes a denormal or zero, as with
        // strtof. Reading a double tells the two apart.
        double wide = 0.0;
        auto wide_result = std::from_chars(p, end, wide, std::chars_format::general);
        bool overflow = wide_result.ec == std::errc::result_out_of_range
                            ? !beyond_double_is_tiny(p, wide_result.ptr)
                            : std::fabs(wide) > static_cast<double>(FLT_MAX);
        if (overflow) {
            *status = ParseStatus::kOutOfRange;
            return nullptr;
        }
        parsed = static_cast<float>(wide);
    }
    if (std::isnan(parsed)) {
        *status = ParseStatus::kNotANumber;
        return nullptr;
    }
    if (std::isinf(parsed)) {
        *status = ParseStatus::kInfinite;
        return nullptr;
    }
    *value = negative ? -parsed : parsed;
    return result.ptr;
}

}  // namespace

int count_elements_upper_bound(const char* text) {
    int commas = 0;
    for (const char* p = text; *p != '\0'; ++p) {
        if (*p == ',') {
            ++commas;
            if (commas > kMaxDimensions) break;  // enough to know it is too many
        }
    }
    return commas + 1;
}

ParseResult parse_vector(const char* text, float* out, int capacity) noexcept {
    const char* end = find_end(text);
    const char* p = skip_spaces(text);
    ParseResult result{ParseStatus::kOk, 0, 0, 0};
    auto fail = [&](ParseStatus status, const char* at, std::size_t length) {
        result.status = status;
        result.position = static_cast<std::size_t>(at - text);
        result.length = length;
        return result;
    };
    if (*p != '[') return fail(ParseStatus::kMalformed, p, 0);
    p = skip_spaces(p + 1);
    if (*p == ']') {
        const char* rest = skip_spaces(p + 1);
        if (*rest != '\0') return fail(ParseStatus::kMalformed, rest, 0);
        return fail(ParseStatus::kEmpty, p, 0);
    }
    int count = 0;
    for (;;) {
        p = skip_spaces(p);
        const char* number_start = p;
        float value = 0.0f;
        ParseStatus status = ParseStatus::kOk;
        const char* after = read_number(p, end, &value, &status);
        if (after == nullptr) {
            // Report the extent of the offending token for range errors.
            const char* token_end = number_start;
            while (*token_end != '\0' && *token_end != ',' && *token_end != ']' &&
                   !is_space(*token_end))
                ++token_end;
            return fail(status, number_start, static_cast<std::size_t>(token_end - number_start));
        }
        if (count < capacity && count < kMaxDimensions) out[count] = value;
        ++count;
        p = skip_spaces(after);
        if (*p == ',') {
            ++p;
            continue;
        }
        if (*p == ']') {
            const char* rest = skip_spaces(p + 1);
            if (*rest != '\0') return fail(ParseStatus::kMalformed, rest, 0);
            break;
        }
        return fail(ParseStatus::kMalformed, p, 0);
    }
    result.dimensions = count;
    if (count > capacity || count > kMaxDimensions) result.status = ParseStatus::kTooMany;
    return result;
}

// The shortest round-trip digits come from to_chars in scientific form;
// the notation is then chosen as PostgreSQL's float4out (and so pgvector)
// chooses it: positional for decimal exponents -4..5, scientific otherwise.
// Texts are therefore identical to pgvector's, not only equivalent.
std::size_t format_float(float value, char* out) noexcept {
    char sci[kMaxFloatText + 8];  // room for the terminating NUL too
    auto result = std::to_chars(sci, sci + sizeof(sci), value, std::chars_format::scientific);
    std::size_t length = static_cast<std::size_t>(result.ptr - sci);
    *result.ptr = '\0';  // for atoi below
    // sci is "[-]d[.ddd]e[+-]XX"; NaN and infinity never reach here but are
    // passed through unchanged for safety.
    const char* e = static_cast<const char*>(std::memchr(sci, 'e', length));
    if (e == nullptr) {
        std::memcpy(out, sci, length);
        return length;
    }
    int exponent = std::atoi(e + 1);
    if (exponent < -4 || exponent >= 6) {
        std::memcpy(out, sci, length);
        return length;
    }
    // Collect the significant digits.
    char digits[12];
    int ndigits = 0;
    const char* p = sci;
    char* o = out;
    if (*p == '-') *o++ = *p++;
    for (; p < e; ++p)
        if (*p != '.') digits[ndigits++] = *p;
    if (exponent < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = -1; i > exponent; --i) *o++ = '0';
        for (int i = 0; i < ndigits; ++i) *o++ = digits[i];
    } else {
        int integer_digits = exponent + 1;
        for (int i = 0; i < integer_digits; ++i) *o++ = i < ndigits ? digits[i] : '0';
        if (ndigits > integer_digits) {
            *o++ = '.';
            for (int i = integer_digits; i < ndigits; ++i) *o++ = digits[i];
        }
    }
    return static_cast<std::size_t>(o - out);
}

std::size_t format_vector(const float* values, int dimensions, char* out) noexcept {
    char* p = out;
    *p++ = '[';
    for (int i = 0; i < dimensions; ++i) {
        if (i > 0) *p++ = ',';
        p += format_float(values[i], p);
    }
    *p++ = ']';
    *p = '\0';
    return static_cast<std::size_t>(p - out);
}

}  // namespace benzer
