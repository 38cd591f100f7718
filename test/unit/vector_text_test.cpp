// vector_text_test.cpp: parse_vector, format_float, format_vector and
// count_elements_upper_bound.
#include "core/vector_text.h"

#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

using benzer::ParseResult;
using benzer::ParseStatus;

const char* status_name(ParseStatus s) {
    switch (s) {
        case ParseStatus::kOk:
            return "kOk";
        case ParseStatus::kMalformed:
            return "kMalformed";
        case ParseStatus::kEmpty:
            return "kEmpty";
        case ParseStatus::kTooMany:
            return "kTooMany";
        case ParseStatus::kNotANumber:
            return "kNotANumber";
        case ParseStatus::kInfinite:
            return "kInfinite";
        case ParseStatus::kOutOfRange:
            return "kOutOfRange";
    }
    return "?";
}

std::uint32_t bits_of(float f) {
    std::uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

float float_of(std::uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

// Parses text into a vector sized the way vector_in sizes it.
struct Parsed {
    ParseResult result;
    std::vector<float> values;
};

Parsed parse(const std::string& text, int capacity = -1) {
    if (capacity < 0) capacity = benzer::count_elements_upper_bound(text.c_str());
    Parsed p;
    p.values.assign(static_cast<std::size_t>(capacity), 0.0f);
    p.result = benzer::parse_vector(text.c_str(), p.values.data(), capacity);
    if (p.result.status == ParseStatus::kOk)
        p.values.resize(static_cast<std::size_t>(p.result.dimensions));
    return p;
}

ParseStatus status_of(const std::string& text) { return parse(text).result.status; }

std::string format_one(float f) {
    char buf[benzer::kMaxFloatText];
    std::size_t n = benzer::format_float(f, buf);
    EXPECT_LT(n, benzer::kMaxFloatText);
    return std::string(buf, n);
}

std::string format_all(const std::vector<float>& v) {
    std::vector<char> buf(benzer::format_vector_capacity(static_cast<int>(v.size())));
    std::size_t n = benzer::format_vector(v.data(), static_cast<int>(v.size()), buf.data());
    EXPECT_LT(n, buf.size());
    EXPECT_EQ(buf[n], '\0');
    EXPECT_EQ(std::strlen(buf.data()), n);
    return std::string(buf.data(), n);
}

#define EXPECT_STATUS(expected, text)                                                       \
    do {                                                                                    \
        ParseStatus actual_ = status_of(text);                                              \
        EXPECT_EQ(actual_, expected)                                                        \
            << "input: \"" << (text) << "\" gave " << status_name(actual_) << ", expected " \
            << status_name(expected);                                                       \
    } while (0)

// ---------------------------------------------------------------------------
// Valid input

TEST(ParseVector, Simple) {
    Parsed p = parse("[1,2.5,-3e-2]");
    ASSERT_EQ(p.result.status, ParseStatus::kOk);
    ASSERT_EQ(p.result.dimensions, 3);
    EXPECT_EQ(p.values[0], 1.0f);
    EXPECT_EQ(p.values[1], 2.5f);
    EXPECT_EQ(p.values[2], -3e-2f);
}

TEST(ParseVector, SingleElement) {
    Parsed p = parse("[42]");
    ASSERT_EQ(p.result.status, ParseStatus::kOk);
    ASSERT_EQ(p.result.dimensions, 1);
    EXPECT_EQ(p.values[0], 42.0f);
}

TEST(ParseVector, WhitespaceEverywhereAllowed) {
    const char* ws = " \t\n\r\v\f";
    std::string text = std::string(ws) + "[" + ws + "1" + ws + "," + ws + "-2.5" + ws + "," + ws +
                       "+3e1" + ws + "]" + ws;
    Parsed p = parse(text);
    ASSERT_EQ(p.result.status, ParseStatus::kOk) << status_name(p.result.status);
    ASSERT_EQ(p.result.dimensions, 3);
    EXPECT_EQ(p.values[0], 1.0f);
    EXPECT_EQ(p.values[1], -2.5f);
    EXPECT_EQ(p.values[2], 30.0f);

    for (const char* t : {"[1,2]", " [1,2]", "[1,2] ", "[ 1,2]", "[1 ,2]", "[1, 2]", "[1,2 ]",
                          "\t[\t1\t,\t2\t]\t", "\n[\n1\n,\n2\n]\n", "  [  1  ,  2  ]  "}) {
        Parsed q = parse(t);
        ASSERT_EQ(q.result.status, ParseStatus::kOk) << "input: \"" << t << "\"";
        ASSERT_EQ(q.result.dimensions, 2) << t;
        EXPECT_EQ(q.values[0], 1.0f) << t;
        EXPECT_EQ(q.values[1], 2.0f) << t;
    }
}

TEST(ParseVector, Signs) {
    Parsed p = parse("[+1,-1,+0,-0,+1.5e+2,-1.5e-2]");
    ASSERT_EQ(p.result.status, ParseStatus::kOk);
    ASSERT_EQ(p.result.dimensions, 6);
    EXPECT_EQ(p.values[0], 1.0f);
    EXPECT_EQ(p.values[1], -1.0f);
    EXPECT_EQ(bits_of(p.values[2]), bits_of(0.0f));
    EXPECT_EQ(bits_of(p.values[3]), bits_of(-0.0f));  // the sign of zero survives
    EXPECT_EQ(p.values[4], 150.0f);
    EXPECT_EQ(p.values[5], -1.5e-2f);
}

TEST(ParseVector, NumberForms) {
    struct Case {
        const char* text;
        float value;
    };
    const Case cases[] = {
        {"[0]", 0.0f},
        {"[1.]", 1.0f},
        {"[.5]", 0.5f},
        {"[-.5]", -0.5f},
        {"[1e3]", 1000.0f},
        {"[1E3]", 1000.0f},
        {"[1e+3]", 1000.0f},
        {"[1e-3]", 1e-3f},
        {"[1.5E-3]", 1.5e-3f},
        {"[007]", 7.0f},
        {"[0.1]", 0.1f},
        {"[123456789]", 123456789.0f},
        {"[3.4028235e38]", FLT_MAX},
        {"[-3.4028235e38]", -FLT_MAX},
        {"[1.17549435e-38]", FLT_MIN},
        {"[1e-45]", float_of(1)},
        {"[1.4e-45]", float_of(1)},
        {"[0.000001]", 1e-6f},
        {"[100000000000000000000]", 1e20f},
    };
    for (const Case& c : cases) {
        Parsed p = parse(c.text);
        ASSERT_EQ(p.result.status, ParseStatus::kOk)
            << "input: " << c.text << " gave " << status_name(p.result.status);
        ASSERT_EQ(p.result.dimensions, 1) << c.text;
        EXPECT_EQ(bits_of(p.values[0]), bits_of(c.value)) << c.text;
    }
}

TEST(ParseVector, ManyDigitsRoundCorrectly) {
    // More digits than a float needs; the result must still be the nearest
    // float (from_chars rounds correctly).
    Parsed p = parse("[0.100000001490116119384765625,3.14159265358979323846264338327950288]");
    ASSERT_EQ(p.result.status, ParseStatus::kOk);
    EXPECT_EQ(p.values[0], 0.1f);
    EXPECT_EQ(p.values[1], static_cast<float>(3.14159265358979323846));
}

TEST(ParseVector, UnderflowBecomesZeroOrDenormal) {
    Parsed p = parse("[1e-50,-1e-50,1e-40,1e-1000]");
    ASSERT_EQ(p.result.status, ParseStatus::kOk) << status_name(p.result.status);
    ASSERT_EQ(p.result.dimensions, 4);
    EXPECT_EQ(bits_of(p.values[0]), bits_of(0.0f));
    EXPECT_EQ(bits_of(p.values[1]), bits_of(-0.0f));
    EXPECT_EQ(p.values[2], 1e-40f);
    EXPECT_EQ(std::fpclassify(p.values[2]), FP_SUBNORMAL);
    EXPECT_EQ(bits_of(p.values[3]), bits_of(0.0f));
}

TEST(ParseVector, ResultFieldsOnSuccess) {
    Parsed p = parse("[1,2,3]");
    EXPECT_EQ(p.result.status, ParseStatus::kOk);
    EXPECT_EQ(p.result.dimensions, 3);
    EXPECT_EQ(p.result.position, 0u);
    EXPECT_EQ(p.result.length, 0u);
}

TEST(ParseVector, DoesNotWriteBeyondDimensions) {
    float out[8];
    for (float& f : out) f = -7.0f;
    ParseResult r = benzer::parse_vector("[1,2,3]", out, 8);
    ASSERT_EQ(r.status, ParseStatus::kOk);
    EXPECT_EQ(out[2], 3.0f);
    for (int i = 3; i < 8; ++i) EXPECT_EQ(out[i], -7.0f) << i;
}

// ---------------------------------------------------------------------------
// Empty and malformed input

TEST(ParseVector, Empty) {
    EXPECT_STATUS(ParseStatus::kEmpty, "[]");
    EXPECT_STATUS(ParseStatus::kEmpty, "[ ]");
    EXPECT_STATUS(ParseStatus::kEmpty, " [ \t\n ] ");
    EXPECT_EQ(parse("[]").result.dimensions, 0);
    // Garbage after an empty vector is still malformed.
    EXPECT_STATUS(ParseStatus::kMalformed, "[]x");
    EXPECT_STATUS(ParseStatus::kMalformed, "[] ]");
    EXPECT_STATUS(ParseStatus::kMalformed, "[][]");
}

TEST(ParseVector, Malformed) {
    const char* cases[] = {
        "",             // empty string
        " ",            // only whitespace
        "1,2",          // no brackets
        "1,2]",         // no opening bracket
        "[1,2",         // no closing bracket
        "[1,2,",        // truncated
        "[",            // truncated
        "]",            // only a closing bracket
        "(1,2)",        // wrong brackets
        "{1,2}",        // array syntax
        "[1,2]x",       // trailing garbage
        "[1,2] x",      // trailing garbage after whitespace
        "[1,2],",       // trailing comma
        "[1,2]]",       // extra bracket
        "[[1,2]]",      // nested
        "x[1,2]",       // leading garbage
        "[1,,2]",       // empty element
        "[,1]",         // leading comma
        "[1,]",         // trailing comma inside
        "[,]",          // only a comma
        "[1 2]",        // missing comma
        "[1;2]",        // wrong separator
        "[1.2.3]",      // two decimal points
        "[1e]",         // exponent without digits
        "[1e+]",        // exponent sign without digits
        "[e5]",         // exponent without mantissa
        "[.]",          // a lone point
        "[+]",          // a lone sign
        "[-]",          // a lone sign
        "[--1]",        // two signs
        "[+-1]",        // two signs
        "[-+1]",        // two signs
        "[++1]",        // two signs
        "[- 1]",        // space after the sign
        "[0x10]",       // hex
        "[0x1p3]",      // hex float
        "[0X1A]",       // hex
        "[1f]",         // C suffix
        "[1,2a]",       // letters
        "[abc]",        // letters
        "[1_000]",      // digit separators
        "[1'000]",      // digit separators
        "[\"1\"]",      // quoted
        "[1\xc2\xa0]",  // non-breaking space is not whitespace
    };
    for (const char* text : cases) EXPECT_STATUS(ParseStatus::kMalformed, text);
}

TEST(ParseVector, MalformedPositionPointsAtTheProblem) {
    ParseResult r;
    float out[4];
    r = benzer::parse_vector("1,2", out, 4);
    EXPECT_EQ(r.status, ParseStatus::kMalformed);
    EXPECT_EQ(r.position, 0u);

    r = benzer::parse_vector("  x", out, 4);
    EXPECT_EQ(r.status, ParseStatus::kMalformed);
    EXPECT_EQ(r.position, 2u);

    r = benzer::parse_vector("[1,,2]", out, 4);
    EXPECT_EQ(r.status, ParseStatus::kMalformed);
    EXPECT_EQ(r.position, 3u);

    r = benzer::parse_vector("[1 2]", out, 4);
    EXPECT_EQ(r.status, ParseStatus::kMalformed);
    EXPECT_EQ(r.position, 3u);

    r = benzer::parse_vector("[1,2] x", out, 4);
    EXPECT_EQ(r.status, ParseStatus::kMalformed);
    EXPECT_EQ(r.position, 6u);

    r = benzer::parse_vector("[1,2", out, 4);
    EXPECT_EQ(r.status, ParseStatus::kMalformed);
    EXPECT_EQ(r.position, 4u);  // the end of the string
}

// ---------------------------------------------------------------------------
// NaN, infinity, out of range

TEST(ParseVector, NotANumber) {
    for (const char* text : {"[NaN]", "[nan]", "[NAN]", "[-nan]", "[+nan]", "[1,NaN]", "[ nan ]"})
        EXPECT_STATUS(ParseStatus::kNotANumber, text);
}

TEST(ParseVector, NotANumberPosition) {
    float out[4];
    ParseResult r = benzer::parse_vector("[1, NaN ,2]", out, 4);
    ASSERT_EQ(r.status, ParseStatus::kNotANumber);
    EXPECT_EQ(r.position, 4u);
    EXPECT_EQ(r.length, 3u);
}

TEST(ParseVector, Infinite) {
    for (const char* text : {"[inf]", "[Inf]", "[INF]", "[-inf]", "[+inf]", "[Infinity]",
                             "[infinity]", "[-Infinity]", "[1,-Infinity,2]"})
        EXPECT_STATUS(ParseStatus::kInfinite, text);
}

TEST(ParseVector, OutOfRange) {
    for (const char* text :
         {"[1e39]", "[-1e39]", "[+1e39]", "[3.5e38]", "[3.4028236e38]", "[1e400]", "[1e99999999]",
          "[1,2,1e39]", "[340282356779733661637539395458142568448]"})
        EXPECT_STATUS(ParseStatus::kOutOfRange, text);
    // The largest float and values that round down to it are fine.
    EXPECT_STATUS(ParseStatus::kOk, "[3.4028235e38]");
    EXPECT_STATUS(ParseStatus::kOk, "[3.40282356e38]");
    EXPECT_STATUS(ParseStatus::kOk, "[-3.40282356e38]");
}

TEST(ParseVector, OutOfRangePositionAndLength) {
    float out[8];
    ParseResult r = benzer::parse_vector("[1,1e39,2]", out, 8);
    ASSERT_EQ(r.status, ParseStatus::kOutOfRange);
    EXPECT_EQ(r.position, 3u);
    EXPECT_EQ(r.length, 4u);

    r = benzer::parse_vector("[1, -1.5e39 ]", out, 8);
    ASSERT_EQ(r.status, ParseStatus::kOutOfRange);
    EXPECT_EQ(r.position, 4u);  // the sign is part of the number
    EXPECT_EQ(r.length, 7u);

    r = benzer::parse_vector("[1e39]", out, 8);
    ASSERT_EQ(r.status, ParseStatus::kOutOfRange);
    EXPECT_EQ(r.position, 1u);
    EXPECT_EQ(r.length, 4u);

    const char* text = "  [ 0.5 ,\t+12e38]";
    r = benzer::parse_vector(text, out, 8);
    ASSERT_EQ(r.status, ParseStatus::kOutOfRange);
    EXPECT_EQ(std::string(text + r.position, r.length), "+12e38");
}

TEST(ParseVector, FirstErrorWins) {
    EXPECT_STATUS(ParseStatus::kOutOfRange, "[1e39,nan]");
    EXPECT_STATUS(ParseStatus::kNotANumber, "[nan,1e39]");
    EXPECT_STATUS(ParseStatus::kInfinite, "[inf,x]");
    EXPECT_STATUS(ParseStatus::kMalformed, "[x,inf]");
}

// ---------------------------------------------------------------------------
// Too many elements

std::string ones(int n) {
    std::string s = "[";
    for (int i = 0; i < n; ++i) {
        if (i > 0) s += ',';
        s += '1';
    }
    s += ']';
    return s;
}

TEST(ParseVector, MaxDimensionsAccepted) {
    std::string text = ones(benzer::kMaxDimensions);
    Parsed p = parse(text);
    ASSERT_EQ(p.result.status, ParseStatus::kOk);
    EXPECT_EQ(p.result.dimensions, benzer::kMaxDimensions);
}

TEST(ParseVector, MoreThanMaxDimensions) {
    std::string text = ones(benzer::kMaxDimensions + 1);
    // As vector_in sizes it: the bound, capped at the maximum.
    int capacity = benzer::count_elements_upper_bound(text.c_str());
    EXPECT_GT(capacity, benzer::kMaxDimensions);
    if (capacity > benzer::kMaxDimensions) capacity = benzer::kMaxDimensions;
    std::vector<float> out(static_cast<std::size_t>(capacity) + 16, -7.0f);
    ParseResult r = benzer::parse_vector(text.c_str(), out.data(), capacity);
    EXPECT_EQ(r.status, ParseStatus::kTooMany);
    for (std::size_t i = static_cast<std::size_t>(capacity); i < out.size(); ++i)
        ASSERT_EQ(out[i], -7.0f) << "wrote past capacity at " << i;

    // Even with a larger buffer, more than kMaxDimensions is too many.
    std::vector<float> big(20000, -7.0f);
    r = benzer::parse_vector(text.c_str(), big.data(), 20000);
    EXPECT_EQ(r.status, ParseStatus::kTooMany);
    for (std::size_t i = benzer::kMaxDimensions; i < big.size(); ++i)
        ASSERT_EQ(big[i], -7.0f) << "wrote past kMaxDimensions at " << i;
}

TEST(ParseVector, MoreThanCapacity) {
    float out[4] = {-7.0f, -7.0f, -7.0f, -7.0f};
    ParseResult r = benzer::parse_vector("[1,2,3,4]", out, 3);
    EXPECT_EQ(r.status, ParseStatus::kTooMany);
    EXPECT_EQ(out[0], 1.0f);
    EXPECT_EQ(out[2], 3.0f);
    EXPECT_EQ(out[3], -7.0f);

    r = benzer::parse_vector("[1]", out, 0);
    EXPECT_EQ(r.status, ParseStatus::kTooMany);

    r = benzer::parse_vector("[1,2,3]", out, 3);
    EXPECT_EQ(r.status, ParseStatus::kOk);
}

TEST(ParseVector, MalformedAfterTooManyIsStillReported) {
    // Parsing continues past the capacity, so a later syntax error is found.
    float out[2];
    ParseResult r = benzer::parse_vector("[1,2,3,x]", out, 2);
    EXPECT_EQ(r.status, ParseStatus::kMalformed);
}

TEST(CountElementsUpperBound, Counts) {
    EXPECT_EQ(benzer::count_elements_upper_bound(""), 1);
    EXPECT_EQ(benzer::count_elements_upper_bound("[]"), 1);
    EXPECT_EQ(benzer::count_elements_upper_bound("[1]"), 1);
    EXPECT_EQ(benzer::count_elements_upper_bound("[1,2,3]"), 3);
    EXPECT_EQ(benzer::count_elements_upper_bound("[1,,2]"), 3);
    EXPECT_EQ(benzer::count_elements_upper_bound(",,,,"), 5);
}

TEST(CountElementsUpperBound, IsAnUpperBoundForValidInput) {
    for (int n : {1, 2, 17, 1000, benzer::kMaxDimensions}) {
        std::string text = ones(n);
        Parsed p = parse(text);
        ASSERT_EQ(p.result.status, ParseStatus::kOk);
        EXPECT_GE(benzer::count_elements_upper_bound(text.c_str()), p.result.dimensions);
    }
}

TEST(CountElementsUpperBound, StopsEarlyButStillExceedsTheMaximum) {
    std::string text(100000, ',');
    int bound = benzer::count_elements_upper_bound(text.c_str());
    EXPECT_GT(bound, benzer::kMaxDimensions);
    EXPECT_LE(bound, 100001);
}

// ---------------------------------------------------------------------------
// Printing

TEST(FormatFloat, Shortest) {
    EXPECT_EQ(format_one(0.1f), "0.1");
    EXPECT_EQ(format_one(100.0f), "100");
    EXPECT_EQ(format_one(1e-5f), "1e-05");
    EXPECT_EQ(format_one(1.0f), "1");
    EXPECT_EQ(format_one(-1.0f), "-1");
    EXPECT_EQ(format_one(0.0f), "0");
    EXPECT_EQ(format_one(-0.0f), "-0");
    EXPECT_EQ(format_one(2.5f), "2.5");
    EXPECT_EQ(format_one(-3e-2f), "-0.03");
    EXPECT_EQ(format_one(0.3f), "0.3");
    EXPECT_EQ(format_one(1.0f / 3.0f), "0.33333334");
    EXPECT_EQ(format_one(1e6f), "1e+06");
    EXPECT_EQ(format_one(0.00012f), "0.00012");
    EXPECT_EQ(format_one(1e20f), "1e+20");
    EXPECT_EQ(format_one(FLT_MAX), "3.4028235e+38");
    EXPECT_EQ(format_one(FLT_MIN), "1.1754944e-38");
    EXPECT_EQ(format_one(float_of(1)), "1e-45");  // the smallest denormal
}

// What PostgreSQL's float4out and pgvector's vector_out print (checked with
// PostgreSQL 15: SELECT 123456789::float4 etc.). They use Ryu with fixed
// notation exactly when the decimal exponent is in [-4, 6). benzer prints
// the same text, so dumps are byte-identical across the two extensions.
TEST(FormatFloat, SameNotationAsPgvector) {
    EXPECT_EQ(format_one(123456789.0f), "1.2345679e+08");
    EXPECT_EQ(format_one(1234567.0f), "1.234567e+06");
    EXPECT_EQ(format_one(2218989191168.0f), "2.2189892e+12");
    EXPECT_EQ(format_one(0.0001f), "0.0001");
    EXPECT_EQ(format_one(1e-5f), "1e-05");
    EXPECT_EQ(format_one(100000.0f), "100000");
    EXPECT_EQ(format_one(1e6f), "1e+06");
    EXPECT_EQ(format_one(0.00012f), "0.00012");
}

TEST(FormatFloat, LengthWithinBound) {
    const float values[] = {
        -FLT_MAX,         -FLT_MIN,         -float_of(1), -float_of(0x007fffff), -1.17549421e-38f,
        -1.23456789e-10f, -0.000123456789f, -1234567.89f, -0.33333334f};
    for (float v : values) {
        std::string s = format_one(v);
        EXPECT_LE(s.size() + 1, benzer::kMaxFloatText) << s;
    }
}

TEST(FormatVector, Basic) {
    EXPECT_EQ(format_all({1.0f, 2.5f, -3e-2f}), "[1,2.5,-0.03]");
    EXPECT_EQ(format_all({0.1f}), "[0.1]");
    EXPECT_EQ(format_all({}), "[]");
    EXPECT_EQ(format_all({-0.0f, 1e-5f, 100.0f}), "[-0,1e-05,100]");
}

TEST(FormatVector, CapacityIsEnoughForTheLongestElements) {
    // The longest texts format_float produces, many of them.
    std::vector<float> v(benzer::kMaxDimensions, -1.17549421e-38f);
    std::vector<char> buf(benzer::format_vector_capacity(benzer::kMaxDimensions) + 64, '\x7f');
    std::size_t n = benzer::format_vector(v.data(), static_cast<int>(v.size()), buf.data());
    EXPECT_LT(n, benzer::format_vector_capacity(benzer::kMaxDimensions));
    for (std::size_t i = benzer::format_vector_capacity(benzer::kMaxDimensions); i < buf.size();
         ++i)
        ASSERT_EQ(buf[i], '\x7f');
}

TEST(FormatVector, ParsesBack) {
    std::vector<float> v = {1.0f, -0.0f, FLT_MAX, -FLT_MIN, float_of(1), 0.1f, 1e-5f};
    Parsed p = parse(format_all(v));
    ASSERT_EQ(p.result.status, ParseStatus::kOk);
    ASSERT_EQ(p.values.size(), v.size());
    for (std::size_t i = 0; i < v.size(); ++i) EXPECT_EQ(bits_of(p.values[i]), bits_of(v[i])) << i;
}

// ---------------------------------------------------------------------------
// Round trip: format then parse gives the same bits.

// A random bit pattern that is not NaN or infinity.
float random_finite(std::mt19937& rng) {
    for (;;) {
        float f = float_of(static_cast<std::uint32_t>(rng()));
        if (std::isfinite(f)) return f;
    }
}

void expect_round_trip(float f) {
    char text[benzer::kMaxFloatText + 2];
    text[0] = '[';
    std::size_t n = benzer::format_float(f, text + 1);
    ASSERT_LT(n, benzer::kMaxFloatText);
    text[n + 1] = ']';
    text[n + 2] = '\0';
    float back = 0.0f;
    ParseResult r = benzer::parse_vector(text, &back, 1);
    ASSERT_EQ(r.status, ParseStatus::kOk) << text << " gave " << status_name(r.status);
    ASSERT_EQ(r.dimensions, 1);
    ASSERT_EQ(bits_of(back), bits_of(f)) << text;
}

TEST(RoundTrip, EdgeValues) {
    const float values[] = {
        0.0f,
        -0.0f,
        FLT_MIN,
        -FLT_MIN,
        FLT_MAX,
        -FLT_MAX,
        float_of(1),  // 1.4e-45, the smallest denormal
        float_of(2),
        float_of(0x007fffff),  // the largest denormal
        float_of(0x00400000),
        std::nextafter(FLT_MIN, 0.0f),
        std::nextafter(FLT_MAX, 0.0f),
        std::nextafter(1.0f, 2.0f),
        std::nextafter(1.0f, 0.0f),
        0.1f,
        0.2f,
        0.3f,
        1.0f / 3.0f,
        1e-5f,
        1e-10f,
        1e10f,
        16777216.0f,
        16777217.0f,
        3.14159265f,
        2.71828183f,
        -1.17549421e-38f,
    };
    for (float f : values) {
        SCOPED_TRACE(f);
        expect_round_trip(f);
        expect_round_trip(-f);
    }
}

TEST(RoundTrip, AllPowersOfTwo) {
    for (int e = -149; e <= 127; ++e) {
        float f = std::ldexp(1.0f, e);
        expect_round_trip(f);
        expect_round_trip(std::nextafter(f, 0.0f));
        expect_round_trip(std::nextafter(f, FLT_MAX));
    }
}

TEST(RoundTrip, RandomBitPatterns) {
    // About two million random finite floats, a whole vector at a time
    // through format_vector and parse_vector, the path COPY takes.
    constexpr int kDim = 1000;
    constexpr int kVectors = 2000;
    std::mt19937 rng(20240611);
    std::vector<float> v(kDim);
    std::vector<float> back(kDim);
    std::vector<char> text(benzer::format_vector_capacity(kDim));
    long checked = 0;
    for (int k = 0; k < kVectors; ++k) {
        for (float& f : v) f = random_finite(rng);
        std::size_t n = benzer::format_vector(v.data(), kDim, text.data());
        ASSERT_LT(n, text.size());
        ParseResult r = benzer::parse_vector(text.data(), back.data(), kDim);
        ASSERT_EQ(r.status, ParseStatus::kOk) << status_name(r.status) << " at " << r.position;
        ASSERT_EQ(r.dimensions, kDim);
        for (int i = 0; i < kDim; ++i) {
            ASSERT_EQ(bits_of(back[i]), bits_of(v[i]))
                << "bits 0x" << std::hex << bits_of(v[i]) << " printed as " << format_one(v[i]);
        }
        checked += kDim;
    }
    EXPECT_EQ(checked, 2000000);
}

TEST(RoundTrip, RandomDenormals) {
    std::mt19937 rng(7);
    for (int k = 0; k < 100000; ++k) {
        std::uint32_t bits = static_cast<std::uint32_t>(rng()) & 0x807fffffu;
        expect_round_trip(float_of(bits));
    }
}

TEST(RoundTrip, ShortestDigitsAreShortest) {
    // Spot check: printing with one significant digit fewer than
    // format_float does not read back to the same float. Integers printed in
    // fixed notation may show trailing zeros and
    // are skipped.
    std::mt19937 rng(99);
    for (int k = 0; k < 20000; ++k) {
        float f = random_finite(rng);
        if (f == 0.0f) continue;
        std::string s = format_one(f);
        // Count significant digits in s.
        int digits = 0;
        bool leading = true;
        for (char c : s) {
            if (c == 'e') break;
            if (c < '0' || c > '9') continue;
            if (leading && c == '0') continue;
            leading = false;
            ++digits;
        }
        if (s.find('.') == std::string::npos && s.find('e') == std::string::npos) continue;
        if (digits <= 1) continue;
        char shorter[64];
        std::snprintf(shorter, sizeof shorter, "%.*e", digits - 2, static_cast<double>(f));
        float back = std::strtof(shorter, nullptr);
        EXPECT_NE(bits_of(back), bits_of(f))
            << format_one(f) << " is not the shortest: " << shorter << " reads back the same";
    }
}

}  // namespace
