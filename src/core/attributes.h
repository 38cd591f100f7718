// attributes.h: the filter columns stored beside a Faiss index.
//
// A faiss index can carry further columns after the vector (season,
// quality, tags, ...). Their values are kept here, column by column, one
// entry per label, so that the conditions of a query (=, IN, && and @>)
// become a bitmap of the labels that match, which the engine then passes to
// Faiss as a selector. The search itself therefore only ever returns
// matching rows.
//
// Layout: integers (int2/int4/int8/bool) are int64; text is dictionary
// encoded (one id per row, the strings once); arrays are a list of such
// values per row (offsets + values). Evaluating a condition is one pass over
// a compact array, a few microseconds per thousand rows.
//
// Core code: no PostgreSQL headers. Methods may throw (std::bad_alloc,
// benzer::Error on malformed serialised data).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace benzer {

enum class AttributeKind : std::uint8_t {
    kInteger = 1,       // int2, int4, int8, bool
    kText = 2,          // text, varchar
    kIntegerArray = 3,  // int4[] (and other integer arrays)
    kTextArray = 4,     // text[]
};

// One row's value of one column, as the caller hands it over. Only the
// fields of the column's kind are read. Array elements that are NULL are
// left out by the caller (they can never match).
struct AttributeValue {
    bool is_null = true;
    std::int64_t integer = 0;
    std::string_view text;
    const std::int64_t* integers = nullptr;   // kIntegerArray
    const std::string_view* texts = nullptr;  // kTextArray
    std::uint32_t count = 0;                  // elements of an array
};

enum class ConditionOp : std::uint8_t {
    kEqualsAny = 1,  // column = v, column IN (v1, v2, ...): one of the operands
    kOverlaps = 2,   // array column && operands: shares an element
    kContains = 3,   // array column @> operands: has every operand
    kNever = 4,      // a condition that no row satisfies (e.g. = NULL)
};

// A condition on one column; operands are integers or texts by the
// column's kind (element kind for arrays).
struct Condition {
    int column = 0;
    ConditionOp op = ConditionOp::kEqualsAny;
    const std::int64_t* integers = nullptr;
    const std::string_view* texts = nullptr;
    std::uint32_t count = 0;
};

// Set bits in bytes bytes of a bitmap (64 bits at a time).
std::int64_t count_bits(const std::uint8_t* bitmap, std::size_t bytes);

class AttributeStore {
  public:
    explicit AttributeStore(std::vector<AttributeKind> kinds);
    ~AttributeStore();
    AttributeStore(const AttributeStore&) = delete;
    AttributeStore& operator=(const AttributeStore&) = delete;

    int columns() const { return static_cast<int>(kinds_.size()); }
    AttributeKind kind(int column) const { return kinds_[static_cast<size_t>(column)]; }
    std::int64_t rows() const { return rows_; }

    // Appends one row: values[c] for every column c.
    void append(const AttributeValue* values);

    // Appends row `row` of other (same kinds), for merges and compaction.
    void append_from(const AttributeStore& other, std::int64_t row);

    // One row in a compact self-contained form (pending rows store it),
    // and back.
    static std::vector<std::uint8_t> encode_row(const std::vector<AttributeKind>& kinds,
                                                const AttributeValue* values);
    // The same without allocating: the size, then the bytes into out.
    static std::size_t encoded_row_size(const AttributeKind* kinds, int count,
                                        const AttributeValue* values);
    static void encode_row_into(const AttributeKind* kinds, int count, const AttributeValue* values,
                                std::uint8_t* out, std::size_t size);
    void append_encoded(const std::uint8_t* data, std::size_t size);
    // Whether one encoded row satisfies every condition (what filter()
    // decides for a stored row), without storing it: for rows judged one
    // at a time as they are read (rows inserted into list tails).
    static bool encoded_row_matches(const AttributeKind* kinds, int count, const std::uint8_t* data,
                                    std::size_t size, const Condition* conditions, int nconditions);

    // Clears in bitmap (one bit per row, LSB first) the rows that fail any
    // of the conditions (they are ANDed). Rows past rows() are cleared.
    void filter(const Condition* conditions, int count, std::uint8_t* bitmap,
                std::int64_t bitmap_rows) const;

    // Bitmaps (over rows()) of up to max_filters conditions "column = v" on
    // the scalar columns, for values that keep between min_rows and
    // max_fraction of the rows: per column the most common such value and
    // one near the median count. The search tuner measures recall under
    // them (core/tuning.h).
    std::vector<std::vector<std::uint8_t>> sample_filters(int max_filters, std::int64_t min_rows,
                                                          double max_fraction) const;

    std::size_t serialized_size() const;
    void serialize(std::uint8_t* out, std::size_t size) const;
    static AttributeStore* deserialize(const std::uint8_t* data, std::size_t size);

    std::size_t memory_bytes() const;

  private:
    struct Column;
    const std::vector<std::uint8_t>& matches_of(const Condition& condition) const;
    const std::vector<std::uint8_t>& remember(std::string key,
                                              std::vector<std::uint8_t> result) const;
    template <typename ForEachSet, typename Clear, typename InSet>
    void evaluate(const Condition& condition, const Column& column,
                  const std::vector<std::int64_t>& set, std::uint32_t missing,
                  ForEachSet& for_each_set, Clear& clear, InSet& in_set) const;

    std::vector<AttributeKind> kinds_;
    std::vector<std::unique_ptr<Column>> columns_;
    std::int64_t rows_ = 0;
    // Bitmaps of recently evaluated conditions (key: the condition
    // encoded), most recent first; cleared when rows are appended.
    static constexpr std::size_t kMemoEntries = 16;
    static constexpr std::size_t kMemoBytes = 32u << 20;
    mutable std::vector<std::pair<std::string, std::vector<std::uint8_t>>> memo_;
};

}  // namespace benzer
