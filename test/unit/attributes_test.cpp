// attributes_test.cpp: AttributeStore (the filter columns of a faiss index):
// appending rows of every kind, filter() against a straightforward reference
// evaluation, serialisation (round trip, truncated and corrupt input), the
// encoded row form and append_from.
#include "core/attributes.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"

namespace {

using benzer::AttributeKind;
using benzer::AttributeStore;
using benzer::AttributeValue;
using benzer::Condition;
using benzer::ConditionOp;
using benzer::Error;
using benzer::ErrorKind;

using Bytes = std::vector<std::uint8_t>;

const std::vector<AttributeKind> kAllKinds = {AttributeKind::kInteger, AttributeKind::kText,
                                              AttributeKind::kIntegerArray,
                                              AttributeKind::kTextArray};

// ---------------------------------------------------------------------------
// The model: rows as plain C++ values, and the AttributeValues pointing into
// them.

struct Cell {
    bool null = true;
    std::int64_t integer = 0;
    std::string text;
    std::vector<std::int64_t> integers;
    std::vector<std::string> texts;
};

using Row = std::vector<Cell>;

Cell null_cell() { return Cell{}; }
Cell int_cell(std::int64_t v) {
    Cell c;
    c.null = false;
    c.integer = v;
    return c;
}
Cell text_cell(std::string v) {
    Cell c;
    c.null = false;
    c.text = std::move(v);
    return c;
}
Cell ints_cell(std::vector<std::int64_t> v) {
    Cell c;
    c.null = false;
    c.integers = std::move(v);
    return c;
}
Cell texts_cell(std::vector<std::string> v) {
    Cell c;
    c.null = false;
    c.texts = std::move(v);
    return c;
}

// Like the PostgreSQL side (faiss_attributes.cpp allocates Max(n, 1)
// elements), empty arrays get a valid pointer; a null one is tested apart.
const std::int64_t kNoIntegers[1] = {0};
const std::string_view kNoTexts[1] = {};

// AttributeValues for one row; keeps the string_views they point to alive.
struct Values {
    std::vector<AttributeValue> values;
    std::vector<std::vector<std::string_view>> views;

    Values(const std::vector<AttributeKind>& kinds, const Row& row)
        : values(kinds.size()), views(kinds.size()) {
        for (std::size_t c = 0; c < kinds.size(); c++) {
            const Cell& cell = row[c];
            AttributeValue& v = values[c];
            v.is_null = cell.null;
            if (cell.null) continue;
            switch (kinds[c]) {
                case AttributeKind::kInteger:
                    v.integer = cell.integer;
                    break;
                case AttributeKind::kText:
                    v.text = cell.text;
                    break;
                case AttributeKind::kIntegerArray:
                    v.integers = cell.integers.empty() ? kNoIntegers : cell.integers.data();
                    v.count = static_cast<std::uint32_t>(cell.integers.size());
                    break;
                case AttributeKind::kTextArray:
                    for (const std::string& s : cell.texts) views[c].emplace_back(s);
                    v.texts = views[c].empty() ? kNoTexts : views[c].data();
                    v.count = static_cast<std::uint32_t>(views[c].size());
                    break;
            }
        }
    }
    const AttributeValue* data() const { return values.data(); }
};

void append_row(AttributeStore& store, const std::vector<AttributeKind>& kinds, const Row& row) {
    Values v(kinds, row);
    store.append(v.data());
}

// A condition with its operands.
struct Cond {
    int column = 0;
    ConditionOp op = ConditionOp::kEqualsAny;
    std::vector<std::int64_t> integers;
    std::vector<std::string> texts;
    std::vector<std::string_view> views;

    Condition get() {
        views.assign(texts.begin(), texts.end());
        Condition c;
        c.column = column;
        c.op = op;
        if (!integers.empty()) c.integers = integers.data();
        if (!views.empty()) c.texts = views.data();
        c.count = static_cast<std::uint32_t>(integers.empty() ? views.size() : integers.size());
        return c;
    }
};

Cond int_cond(int column, ConditionOp op, std::vector<std::int64_t> operands) {
    Cond c;
    c.column = column;
    c.op = op;
    c.integers = std::move(operands);
    return c;
}

Cond text_cond(int column, ConditionOp op, std::vector<std::string> operands) {
    Cond c;
    c.column = column;
    c.op = op;
    c.texts = std::move(operands);
    return c;
}

bool is_text_kind(AttributeKind k) {
    return k == AttributeKind::kText || k == AttributeKind::kTextArray;
}

// The reference: SQL semantics of =/IN, &&, @> and a never-true condition
// (NULL never matches).
bool matches(const std::vector<AttributeKind>& kinds, const Row& row, const Cond& cond) {
    if (cond.op == ConditionOp::kNever) return false;
    const Cell& cell = row[static_cast<std::size_t>(cond.column)];
    if (cell.null) return false;
    AttributeKind kind = kinds[static_cast<std::size_t>(cond.column)];
    bool text = is_text_kind(kind);
    std::size_t n = text ? cond.texts.size() : cond.integers.size();
    auto operand_in_cell = [&](std::size_t k) {
        if (kind == AttributeKind::kIntegerArray) {
            for (std::int64_t e : cell.integers)
                if (e == cond.integers[k]) return true;
            return false;
        }
        for (const std::string& e : cell.texts)
            if (e == cond.texts[k]) return true;
        return false;
    };
    switch (cond.op) {
        case ConditionOp::kEqualsAny:
            for (std::size_t k = 0; k < n; k++)
                if (text ? cell.text == cond.texts[k] : cell.integer == cond.integers[k])
                    return true;
            return false;
        case ConditionOp::kOverlaps:
            for (std::size_t k = 0; k < n; k++)
                if (operand_in_cell(k)) return true;
            return false;
        case ConditionOp::kContains:
            for (std::size_t k = 0; k < n; k++)
                if (!operand_in_cell(k)) return false;
            return true;
        case ConditionOp::kNever:
            return false;
    }
    return false;
}

bool bit(const Bytes& bitmap, std::int64_t row) { return (bitmap[row >> 3] >> (row & 7)) & 1; }

void set_bit(Bytes& bitmap, std::int64_t row, bool value) {
    if (value)
        bitmap[row >> 3] |= static_cast<std::uint8_t>(1u << (row & 7));
    else
        bitmap[row >> 3] &= static_cast<std::uint8_t>(~(1u << (row & 7)));
}

Bytes all_set(std::int64_t rows) { return Bytes(static_cast<std::size_t>((rows + 7) / 8), 0xff); }

// filter() with every row of a bitmap of bitmap_rows rows initially set;
// returns the rows left set.
std::vector<std::int64_t> run_filter(const AttributeStore& store, std::vector<Cond>& conds,
                                     std::int64_t bitmap_rows) {
    std::vector<Condition> c;
    for (Cond& cond : conds) c.push_back(cond.get());
    Bytes bitmap = all_set(bitmap_rows);
    store.filter(c.data(), static_cast<int>(c.size()), bitmap.data(), bitmap_rows);
    std::vector<std::int64_t> rows;
    for (std::int64_t r = 0; r < bitmap_rows; r++)
        if (bit(bitmap, r)) rows.push_back(r);
    return rows;
}

std::vector<std::int64_t> run_filter(const AttributeStore& store, Cond cond) {
    std::vector<Cond> conds{std::move(cond)};
    return run_filter(store, conds, store.rows());
}

std::vector<std::int64_t> reference(const std::vector<AttributeKind>& kinds,
                                    const std::vector<Row>& rows, const std::vector<Cond>& conds) {
    std::vector<std::int64_t> out;
    for (std::size_t r = 0; r < rows.size(); r++) {
        bool ok = true;
        for (const Cond& c : conds) ok = ok && matches(kinds, rows[r], c);
        if (ok) out.push_back(static_cast<std::int64_t>(r));
    }
    return out;
}

Bytes serialize(const AttributeStore& store) {
    Bytes out(store.serialized_size());
    store.serialize(out.data(), out.size());
    return out;
}

std::unique_ptr<AttributeStore> deserialize(const Bytes& data) {
    return std::unique_ptr<AttributeStore>(AttributeStore::deserialize(data.data(), data.size()));
}

// ---------------------------------------------------------------------------
// A small hand-written store with all four kinds:
//
//   row  integer  text     int[]       text[]
//   0    1        "red"    {1,2,3}     {"a","b"}
//   1    2        "green"  {}          {}
//   2    NULL     NULL     NULL        NULL
//   3    1        ""       {3,3}       {"b","b","c"}
//   4    -7       "blue"   {2}         {""}
//   5    INT64MAX "red"    {INT64MIN}  {"a"}

const std::int64_t kMax = std::numeric_limits<std::int64_t>::max();
const std::int64_t kMin = std::numeric_limits<std::int64_t>::min();

std::vector<Row> small_rows() {
    return {
        {int_cell(1), text_cell("red"), ints_cell({1, 2, 3}), texts_cell({"a", "b"})},
        {int_cell(2), text_cell("green"), ints_cell({}), texts_cell({})},
        {null_cell(), null_cell(), null_cell(), null_cell()},
        {int_cell(1), text_cell(""), ints_cell({3, 3}), texts_cell({"b", "b", "c"})},
        {int_cell(-7), text_cell("blue"), ints_cell({2}), texts_cell({""})},
        {int_cell(kMax), text_cell("red"), ints_cell({kMin}), texts_cell({"a"})},
    };
}

std::unique_ptr<AttributeStore> build(const std::vector<AttributeKind>& kinds,
                                      const std::vector<Row>& rows) {
    auto store = std::make_unique<AttributeStore>(kinds);
    for (const Row& row : rows) append_row(*store, kinds, row);
    return store;
}

using Rows = std::vector<std::int64_t>;

TEST(AttributeStore, EmptyStore) {
    AttributeStore store(kAllKinds);
    EXPECT_EQ(store.columns(), 4);
    EXPECT_EQ(store.rows(), 0);
    for (int c = 0; c < 4; c++) EXPECT_EQ(store.kind(c), kAllKinds[static_cast<size_t>(c)]);
    // Every row of a bitmap is past rows(): all cleared, conditions or not.
    Bytes bitmap = all_set(20);
    store.filter(nullptr, 0, bitmap.data(), 20);
    for (std::int64_t r = 0; r < 20; r++) EXPECT_FALSE(bit(bitmap, r)) << r;

    AttributeStore none({});
    EXPECT_EQ(none.columns(), 0);
    AttributeValue dummy;
    none.append(&dummy);  // a row with no columns
    EXPECT_EQ(none.rows(), 1);
}

TEST(AttributeStore, AppendAllKinds) {
    auto store = build(kAllKinds, small_rows());
    EXPECT_EQ(store->rows(), 6);
    EXPECT_EQ(store->columns(), 4);
    EXPECT_GT(store->memory_bytes(), 0u);
    // No conditions: every row kept.
    std::vector<Cond> none;
    EXPECT_EQ(run_filter(*store, none, 6), (Rows{0, 1, 2, 3, 4, 5}));
}

TEST(AttributeStore, EqualsAnyInteger) {
    auto store = build(kAllKinds, small_rows());
    using Op = ConditionOp;
    EXPECT_EQ(run_filter(*store, int_cond(0, Op::kEqualsAny, {1})), (Rows{0, 3}));
    EXPECT_EQ(run_filter(*store, int_cond(0, Op::kEqualsAny, {2, -7})), (Rows{1, 4}));
    EXPECT_EQ(run_filter(*store, int_cond(0, Op::kEqualsAny, {kMax})), (Rows{5}));
    // Duplicated operands, absent values.
    EXPECT_EQ(run_filter(*store, int_cond(0, Op::kEqualsAny, {1, 1, 99, 1})), (Rows{0, 3}));
    EXPECT_EQ(run_filter(*store, int_cond(0, Op::kEqualsAny, {99, 100})), Rows{});
    // NULL stores 0 internally; = 0 must still not match the NULL row.
    EXPECT_EQ(run_filter(*store, int_cond(0, Op::kEqualsAny, {0})), Rows{});
    // No operands: IN () matches nothing.
    EXPECT_EQ(run_filter(*store, int_cond(0, Op::kEqualsAny, {})), Rows{});
}

TEST(AttributeStore, EqualsAnyText) {
    auto store = build(kAllKinds, small_rows());
    using Op = ConditionOp;
    EXPECT_EQ(run_filter(*store, text_cond(1, Op::kEqualsAny, {"red"})), (Rows{0, 5}));
    EXPECT_EQ(run_filter(*store, text_cond(1, Op::kEqualsAny, {"green", "blue"})), (Rows{1, 4}));
    // The empty string is a value, not NULL.
    EXPECT_EQ(run_filter(*store, text_cond(1, Op::kEqualsAny, {""})), (Rows{3}));
    // Operands the dictionary does not have: ignored, the others still count.
    EXPECT_EQ(run_filter(*store, text_cond(1, Op::kEqualsAny, {"purple"})), Rows{});
    EXPECT_EQ(run_filter(*store, text_cond(1, Op::kEqualsAny, {"purple", "green", "x"})),
              (Rows{1}));
    EXPECT_EQ(run_filter(*store, text_cond(1, Op::kEqualsAny, {"RED"})), Rows{});
    EXPECT_EQ(run_filter(*store, text_cond(1, Op::kEqualsAny, {})), Rows{});
}

TEST(AttributeStore, OverlapsAndContainsIntegerArray) {
    auto store = build(kAllKinds, small_rows());
    using Op = ConditionOp;
    EXPECT_EQ(run_filter(*store, int_cond(2, Op::kOverlaps, {3})), (Rows{0, 3}));
    EXPECT_EQ(run_filter(*store, int_cond(2, Op::kOverlaps, {2, kMin})), (Rows{0, 4, 5}));
    EXPECT_EQ(run_filter(*store, int_cond(2, Op::kOverlaps, {42})), Rows{});
    // && with an empty array is false, even for the empty array.
    EXPECT_EQ(run_filter(*store, int_cond(2, Op::kOverlaps, {})), Rows{});

    EXPECT_EQ(run_filter(*store, int_cond(2, Op::kContains, {3})), (Rows{0, 3}));
    EXPECT_EQ(run_filter(*store, int_cond(2, Op::kContains, {1, 3})), (Rows{0}));
    EXPECT_EQ(run_filter(*store, int_cond(2, Op::kContains, {3, 3, 3})), (Rows{0, 3}));
    EXPECT_EQ(run_filter(*store, int_cond(2, Op::kContains, {1, 42})), Rows{});
    // @> '{}' matches every non-NULL row, the empty array included.
    EXPECT_EQ(run_filter(*store, int_cond(2, Op::kContains, {})), (Rows{0, 1, 3, 4, 5}));
}

TEST(AttributeStore, OverlapsAndContainsTextArray) {
    auto store = build(kAllKinds, small_rows());
    using Op = ConditionOp;
    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kOverlaps, {"b"})), (Rows{0, 3}));
    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kOverlaps, {"c", ""})), (Rows{3, 4}));
    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kOverlaps, {"zzz", "a"})), (Rows{0, 5}));
    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kOverlaps, {"zzz"})), Rows{});
    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kOverlaps, {})), Rows{});

    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kContains, {"a"})), (Rows{0, 5}));
    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kContains, {"a", "b"})), (Rows{0}));
    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kContains, {"b", "c", "b"})), (Rows{3}));
    // An operand nobody has: nothing contains it.
    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kContains, {"zzz"})), Rows{});
    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kContains, {"a", "zzz"})), Rows{});
    // An empty operand list: every non-NULL row.
    EXPECT_EQ(run_filter(*store, text_cond(3, Op::kContains, {})), (Rows{0, 1, 3, 4, 5}));
}

TEST(AttributeStore, NeverMatchesNothing) {
    auto store = build(kAllKinds, small_rows());
    for (int c = 0; c < 4; c++) {
        Cond never;
        never.column = c;
        never.op = ConditionOp::kNever;
        EXPECT_EQ(run_filter(*store, never), Rows{}) << "column " << c;
    }
}

TEST(AttributeStore, ConditionsAreAnded) {
    auto store = build(kAllKinds, small_rows());
    using Op = ConditionOp;
    std::vector<Cond> conds{int_cond(0, Op::kEqualsAny, {1, kMax}),
                            text_cond(1, Op::kEqualsAny, {"red", ""})};
    EXPECT_EQ(run_filter(*store, conds, 6), (Rows{0, 3, 5}));
    conds.push_back(int_cond(2, Op::kOverlaps, {3, kMin}));
    EXPECT_EQ(run_filter(*store, conds, 6), (Rows{0, 3, 5}));
    conds.push_back(text_cond(3, Op::kContains, {"a"}));
    EXPECT_EQ(run_filter(*store, conds, 6), (Rows{0, 5}));
    conds.push_back(int_cond(0, Op::kEqualsAny, {1}));
    EXPECT_EQ(run_filter(*store, conds, 6), (Rows{0}));
    Cond never;
    never.column = 2;
    never.op = ConditionOp::kNever;
    conds.push_back(never);
    EXPECT_EQ(run_filter(*store, conds, 6), Rows{});
}

TEST(AttributeStore, BitmapRowsBeyondStoreAreCleared) {
    auto store = build(kAllKinds, small_rows());
    // 6 rows in the store, a bitmap of 21: rows 6..20 cleared even with no
    // condition; bits past 21 in the last byte are not the filter's.
    Bytes bitmap(3, 0xff);
    store->filter(nullptr, 0, bitmap.data(), 21);
    for (std::int64_t r = 0; r < 6; r++) EXPECT_TRUE(bit(bitmap, r)) << r;
    for (std::int64_t r = 6; r < 21; r++) EXPECT_FALSE(bit(bitmap, r)) << r;
    for (std::int64_t r = 21; r < 24; r++) EXPECT_TRUE(bit(bitmap, r)) << "bit " << r << " touched";

    // With a condition too.
    Bytes bitmap2(3, 0xff);
    Cond c = int_cond(0, ConditionOp::kEqualsAny, {1});
    Condition cc = c.get();
    store->filter(&cc, 1, bitmap2.data(), 21);
    for (std::int64_t r = 0; r < 21; r++) EXPECT_EQ(bit(bitmap2, r), r == 0 || r == 3) << r;
}

TEST(AttributeStore, BitmapShorterThanStore) {
    auto store = build(kAllKinds, small_rows());
    // Only the first 4 rows are asked about; the byte holds 8 bits, the
    // bits for rows 4..7 must be left alone.
    Bytes bitmap(1, 0xff);
    Cond c = int_cond(0, ConditionOp::kEqualsAny, {1});
    Condition cc = c.get();
    store->filter(&cc, 1, bitmap.data(), 4);
    EXPECT_EQ(bitmap[0], 0xf0 | 0x01 | 0x08);
}

TEST(AttributeStore, ClearedRowsStayCleared) {
    auto store = build(kAllKinds, small_rows());
    // Rows 0 and 5 match "red" but row 0 is already cleared; a condition
    // never sets a bit.
    Bytes bitmap(1, 0);
    set_bit(bitmap, 1, true);
    set_bit(bitmap, 5, true);
    Cond c = text_cond(1, ConditionOp::kEqualsAny, {"red", "blue"});
    Condition cc = c.get();
    store->filter(&cc, 1, bitmap.data(), 6);
    EXPECT_EQ(bitmap[0], 1u << 5);
    // Contains {} matches every non-NULL row; the cleared ones stay cleared.
    Bytes bitmap2(1, 0);
    set_bit(bitmap2, 2, true);
    set_bit(bitmap2, 3, true);
    Cond all = int_cond(2, ConditionOp::kContains, {});
    Condition ca = all.get();
    store->filter(&ca, 1, bitmap2.data(), 6);
    EXPECT_EQ(bitmap2[0], 1u << 3);
}

TEST(AttributeStore, InvalidConditionsThrow) {
    auto store = build(kAllKinds, small_rows());
    Bytes bitmap = all_set(6);
    auto expect_internal = [&](Cond cond) {
        Condition c = cond.get();
        try {
            store->filter(&c, 1, bitmap.data(), 6);
            ADD_FAILURE() << "no exception for column " << cond.column << " op "
                          << static_cast<int>(cond.op);
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::kInternal);
        }
    };
    expect_internal(int_cond(4, ConditionOp::kEqualsAny, {1}));
    expect_internal(int_cond(-1, ConditionOp::kEqualsAny, {1}));
    expect_internal(int_cond(0, ConditionOp::kOverlaps, {1}));
    expect_internal(text_cond(1, ConditionOp::kContains, {"red"}));
    expect_internal(int_cond(2, ConditionOp::kEqualsAny, {1}));
    expect_internal(text_cond(3, ConditionOp::kEqualsAny, {"a"}));
}

// ---------------------------------------------------------------------------
// Random data against the reference.

std::vector<std::string> vocabulary() {
    std::vector<std::string> words;
    for (int i = 0; i < 40; i++) words.push_back("w" + std::to_string(i));
    words.push_back("");
    words.push_back(std::string("nul\0inside", 10));
    words.push_back(std::string(300, 'x'));
    words.push_back("\xc3\xa9t\xc3\xa9");
    return words;
}

struct RandomData {
    std::vector<AttributeKind> kinds;
    std::vector<Row> rows;
    std::vector<std::vector<Cond>> queries;
};

// rows rows over a random column layout of every kind (some kinds twice),
// and queries of 1..4 ANDed conditions.
RandomData random_data(std::uint32_t seed, int nrows, int nqueries,
                       bool empty_integer_arrays = true) {
    std::mt19937 rng(seed);
    RandomData d;
    d.kinds = {AttributeKind::kInteger,   AttributeKind::kText,    AttributeKind::kIntegerArray,
               AttributeKind::kTextArray, AttributeKind::kInteger, AttributeKind::kTextArray};
    const std::vector<std::string> words = vocabulary();
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    auto random_int = [&]() -> std::int64_t {
        int pick = uniform(0, 99);
        if (pick == 0) return kMin;
        if (pick == 1) return kMax;
        if (pick == 2) return -1;
        return uniform(0, 24);
    };
    // Skewed towards the first words, so that some are frequent.
    auto random_word = [&]() -> const std::string& {
        int i = uniform(0, 3) == 0 ? uniform(0, static_cast<int>(words.size()) - 1) : uniform(0, 8);
        return words[static_cast<std::size_t>(i)];
    };
    for (int r = 0; r < nrows; r++) {
        Row row;
        for (AttributeKind kind : d.kinds) {
            if (uniform(0, 9) == 0) {
                row.push_back(null_cell());
                continue;
            }
            int len = uniform(0, 5);
            switch (kind) {
                case AttributeKind::kInteger:
                    row.push_back(int_cell(random_int()));
                    break;
                case AttributeKind::kText:
                    row.push_back(text_cell(random_word()));
                    break;
                case AttributeKind::kIntegerArray: {
                    std::vector<std::int64_t> v;
                    if (!empty_integer_arrays) len = std::max(len, 1);
                    for (int i = 0; i < len; i++) v.push_back(random_int());
                    row.push_back(ints_cell(v));
                    break;
                }
                case AttributeKind::kTextArray: {
                    std::vector<std::string> v;
                    for (int i = 0; i < len; i++) v.push_back(random_word());
                    row.push_back(texts_cell(v));
                    break;
                }
            }
        }
        d.rows.push_back(std::move(row));
    }
    for (int q = 0; q < nqueries; q++) {
        std::vector<Cond> conds;
        int n = uniform(1, 4);
        for (int i = 0; i < n; i++) {
            Cond c;
            c.column = uniform(0, static_cast<int>(d.kinds.size()) - 1);
            AttributeKind kind = d.kinds[static_cast<std::size_t>(c.column)];
            bool array = kind == AttributeKind::kIntegerArray || kind == AttributeKind::kTextArray;
            int pick = uniform(0, 29);
            if (pick == 0)
                c.op = ConditionOp::kNever;
            else if (!array)
                c.op = ConditionOp::kEqualsAny;
            else
                c.op = pick % 2 ? ConditionOp::kOverlaps : ConditionOp::kContains;
            int operands = uniform(0, 3);
            if (c.op == ConditionOp::kContains && uniform(0, 1)) operands = uniform(0, 1);
            for (int k = 0; k < operands; k++) {
                bool absent = uniform(0, 9) == 0;
                if (is_text_kind(kind))
                    c.texts.push_back(absent ? "absent" + std::to_string(uniform(0, 3))
                                             : random_word());
                else
                    c.integers.push_back(absent ? 1000 + uniform(0, 3) : random_int());
            }
            conds.push_back(std::move(c));
        }
        d.queries.push_back(std::move(conds));
    }
    return d;
}

constexpr int kRandomRows = 5000;
constexpr int kRandomQueries = 200;

TEST(AttributeStoreRandom, FilterMatchesReference) {
    RandomData d = random_data(42, kRandomRows, kRandomQueries);
    auto store = build(d.kinds, d.rows);
    ASSERT_EQ(store->rows(), kRandomRows);
    std::size_t nonempty = 0, partial = 0;
    for (std::size_t q = 0; q < d.queries.size(); q++) {
        Rows expected = reference(d.kinds, d.rows, d.queries[q]);
        Rows actual = run_filter(*store, d.queries[q], kRandomRows);
        ASSERT_EQ(actual, expected) << "query " << q;
        if (!expected.empty()) nonempty++;
        if (!expected.empty() && expected.size() < d.rows.size()) partial++;
    }
    // The random queries exercise something.
    EXPECT_GT(nonempty, d.queries.size() / 4);
    EXPECT_GT(partial, d.queries.size() / 4);
}

TEST(AttributeStoreRandom, FilterWithRandomStartBitmap) {
    RandomData d = random_data(7, kRandomRows, 50);
    auto store = build(d.kinds, d.rows);
    std::mt19937 rng(99);
    const std::int64_t bitmap_rows = kRandomRows + 29;  // some rows past the store
    for (std::size_t q = 0; q < d.queries.size(); q++) {
        Bytes bitmap(static_cast<std::size_t>((bitmap_rows + 7) / 8));
        for (auto& b : bitmap) b = static_cast<std::uint8_t>(rng());
        Bytes before = bitmap;
        std::vector<Condition> conds;
        for (Cond& c : d.queries[q]) conds.push_back(c.get());
        store->filter(conds.data(), static_cast<int>(conds.size()), bitmap.data(), bitmap_rows);
        for (std::int64_t r = 0; r < bitmap_rows; r++) {
            bool want = bit(before, r) && r < kRandomRows;
            if (want)
                for (const Cond& c : d.queries[q])
                    want = want && matches(d.kinds, d.rows[static_cast<std::size_t>(r)], c);
            ASSERT_EQ(bit(bitmap, r), want) << "query " << q << " row " << r;
        }
        // Bits of the last byte past bitmap_rows are untouched.
        for (std::int64_t r = bitmap_rows; r < static_cast<std::int64_t>(bitmap.size()) * 8; r++)
            ASSERT_EQ(bit(bitmap, r), bit(before, r));
    }
}

TEST(AttributeStoreRandom, SerializeRoundTrip) {
    RandomData d = random_data(43, kRandomRows, kRandomQueries);
    auto store = build(d.kinds, d.rows);
    Bytes bytes = serialize(*store);
    auto copy = deserialize(bytes);
    ASSERT_NE(copy, nullptr);
    EXPECT_EQ(copy->rows(), store->rows());
    ASSERT_EQ(copy->columns(), store->columns());
    for (int c = 0; c < copy->columns(); c++) EXPECT_EQ(copy->kind(c), store->kind(c));
    for (std::size_t q = 0; q < d.queries.size(); q++)
        ASSERT_EQ(run_filter(*copy, d.queries[q], kRandomRows),
                  run_filter(*store, d.queries[q], kRandomRows))
            << "query " << q;
    // And the bytes are stable.
    EXPECT_EQ(serialize(*copy), bytes);
    // The copy keeps growing like the original.
    append_row(*copy, d.kinds, d.rows[0]);
    append_row(*store, d.kinds, d.rows[0]);
    EXPECT_EQ(serialize(*copy), serialize(*store));
}

TEST(AttributeStore, SerializeSmall) {
    auto store = build(kAllKinds, small_rows());
    Bytes bytes = serialize(*store);
    auto copy = deserialize(bytes);
    EXPECT_EQ(copy->rows(), 6);
    EXPECT_EQ(serialize(*copy), bytes);
    EXPECT_EQ(run_filter(*copy, text_cond(3, ConditionOp::kContains, {"b"})), (Rows{0, 3}));
    EXPECT_EQ(run_filter(*copy, int_cond(2, ConditionOp::kContains, {})), (Rows{0, 1, 3, 4, 5}));
    EXPECT_EQ(run_filter(*copy, text_cond(1, ConditionOp::kEqualsAny, {""})), (Rows{3}));
    // A serialize() buffer of the wrong size is refused.
    Bytes small(bytes.size() - 1);
    EXPECT_THROW(store->serialize(small.data(), small.size()), Error);
    Bytes big(bytes.size() + 1);
    EXPECT_THROW(store->serialize(big.data(), big.size()), Error);
}

// A store with no rows (a new index), or an array column whose rows are all
// NULL or empty so far.
TEST(AttributeStore, SerializeEmptyStore) {
    for (const auto& kinds : {std::vector<AttributeKind>{}, kAllKinds}) {
        AttributeStore empty(kinds);
        Bytes bytes = serialize(empty);
        auto copy = deserialize(bytes);
        EXPECT_EQ(copy->rows(), 0);
        EXPECT_EQ(copy->columns(), static_cast<int>(kinds.size()));
        EXPECT_EQ(serialize(*copy), bytes);
    }
    std::vector<AttributeKind> kinds{AttributeKind::kIntegerArray, AttributeKind::kTextArray};
    auto store = build(kinds, {{ints_cell({}), texts_cell({})}, {null_cell(), null_cell()}});
    Bytes bytes = serialize(*store);
    auto copy = deserialize(bytes);
    EXPECT_EQ(copy->rows(), 2);
    EXPECT_EQ(run_filter(*copy, int_cond(0, ConditionOp::kContains, {})), (Rows{0}));
    EXPECT_EQ(serialize(*copy), bytes);
}

// Deserialising must fail with benzer::Error on every truncation.
TEST(AttributeStore, DeserializeTruncatedThrows) {
    auto store = build(kAllKinds, small_rows());
    Bytes bytes = serialize(*store);
    for (std::size_t n = 0; n < bytes.size(); n++) {
        Bytes prefix(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
        try {
            auto copy = deserialize(prefix);
            ADD_FAILURE() << "a prefix of " << n << " of " << bytes.size() << " bytes was accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::kDataException) << n;
        } catch (const std::exception& e) {
            ADD_FAILURE() << "prefix " << n << ": not a benzer::Error: " << e.what();
        }
    }
    // Also with a null pointer and no data.
    EXPECT_THROW(AttributeStore::deserialize(nullptr, 0), Error);
}

// Serialised layout, for the corruption tests: magic (4), column count (4),
// rows (8), then per column: kind (1), null bitmap, [text: dictionary count
// (4), (length (4), bytes) each], [array: offsets (rows + 1) x 8, element
// count (8)], values (8 each integer, 4 each text id).
constexpr std::size_t kRowsFieldBegin = 8;
constexpr std::size_t kRowsFieldEnd = 16;

// Every single-byte corruption either throws benzer::Error or gives a store
// that works. The row count field (bytes 8..15) is left to
// DeserializeHugeRowCount below.
TEST(AttributeStore, DeserializeCorruptBytesThrowsOnlyBenzerError) {
    auto store = build(kAllKinds, small_rows());
    Bytes bytes = serialize(*store);
    int accepted = 0, rejected = 0;
    for (std::size_t i = 0; i < bytes.size(); i++) {
        if (i >= kRowsFieldBegin && i < kRowsFieldEnd) continue;
        for (std::uint8_t mask : {0xffu, 0x01u, 0x80u, 0x10u}) {
            Bytes corrupt = bytes;
            corrupt[i] ^= mask;
            try {
                auto copy = deserialize(corrupt);
                accepted++;
                // It serialises again (the data stays self-consistent).
                Bytes again = serialize(*copy);
                EXPECT_EQ(copy->rows(), store->rows());
            } catch (const Error& e) {
                rejected++;
                EXPECT_EQ(e.kind(), ErrorKind::kDataException) << "byte " << i;
            } catch (const std::exception& e) {
                ADD_FAILURE() << "byte " << i << " ^ " << int(mask)
                              << ": not a benzer::Error: " << e.what();
            }
        }
    }
    EXPECT_GT(rejected, 0);
    EXPECT_GT(accepted, 0);  // flipped values, nulls, dictionary text
}

// Writes v at byte offset at.
template <typename T>
void poke(Bytes& bytes, std::size_t at, T v) {
    ASSERT_LE(at + sizeof(T), bytes.size());
    std::memcpy(bytes.data() + at, &v, sizeof(T));
}

// A corrupt row count must be rejected before anything is sized by it.
TEST(AttributeStore, DeserializeHugeRowCount) {
    AttributeStore store({AttributeKind::kInteger});
    AttributeValue v;
    v.is_null = false;
    v.integer = 5;
    store.append(&v);
    Bytes bytes = serialize(store);
    for (std::int64_t rows : {std::int64_t(1) << 50, std::int64_t(1) << 62, kMax}) {
        Bytes corrupt = bytes;
        poke<std::int64_t>(corrupt, kRowsFieldBegin, rows);
        try {
            auto copy = deserialize(corrupt);
            ADD_FAILURE() << "rows " << rows << " accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::kDataException);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "rows " << rows << ": not a benzer::Error: " << e.what();
        }
    }
}

// A smaller corrupt row count that can be allocated: still rejected.
TEST(AttributeStore, DeserializeLargeRowCountRejected) {
    auto store = build({AttributeKind::kIntegerArray}, {{ints_cell({1, 2})}});
    Bytes bytes = serialize(*store);
    poke<std::int64_t>(bytes, kRowsFieldBegin, 100000);
    EXPECT_THROW(deserialize(bytes), Error);
}

// Array offsets must stay within the elements: otherwise filter() and
// append_from() read past the values.
TEST(AttributeStore, DeserializeRejectsOffsetsPastElements) {
    // One int[] column, rows {1,2}, {3}, {4,5,6}: offsets 0,2,3,6.
    std::vector<AttributeKind> kinds{AttributeKind::kIntegerArray};
    auto store = build(kinds, {{ints_cell({1, 2})}, {ints_cell({3})}, {ints_cell({4, 5, 6})}});
    Bytes bytes = serialize(*store);
    const std::size_t offsets_at = 16 + 1 + 1;  // header, kind, 1 null byte
    std::uint64_t check[4];
    std::memcpy(check, bytes.data() + offsets_at, sizeof check);
    ASSERT_EQ(check[0], 0u);
    ASSERT_EQ(check[1], 2u);
    ASSERT_EQ(check[3], 6u);

    // offsets 0,100000,3,6: row 0 would span 100000 elements of 6.
    Bytes corrupt = bytes;
    poke<std::uint64_t>(corrupt, offsets_at + 8, 100000);
    // (If it were accepted, filtering would read out of bounds; the test
    // does not try.)
    EXPECT_THROW(deserialize(corrupt), Error);

    // offsets 0,7,3,6.
    Bytes corrupt2 = bytes;
    poke<std::uint64_t>(corrupt2, offsets_at + 8, 7);
    EXPECT_THROW(deserialize(corrupt2), Error);

    // Decreasing offsets 0,3,2,6 are inconsistent too.
    Bytes corrupt3 = bytes;
    poke<std::uint64_t>(corrupt3, offsets_at + 8, 3);
    poke<std::uint64_t>(corrupt3, offsets_at + 16, 2);
    EXPECT_THROW(deserialize(corrupt3), Error);
}

// A non-NULL text value must have a dictionary id: the "no id" marker of
// NULL rows makes append_from() index the dictionary with 0xFFFFFFFF.
TEST(AttributeStore, DeserializeRejectsMissingTextIdOnNonNullRow) {
    std::vector<AttributeKind> kinds{AttributeKind::kText};
    auto store = build(kinds, {{null_cell()}, {text_cell("a")}});
    Bytes bytes = serialize(*store);
    const std::size_t nulls_at = 16 + 1;
    ASSERT_EQ(bytes[nulls_at], 0x01);
    Bytes corrupt = bytes;
    corrupt[nulls_at] = 0;  // row 0 no longer NULL, its id is still "none"
    // (If it were accepted, append_from(row 0) would read dictionary[2^32-1]
    // and crash; the test does not try.)
    EXPECT_THROW(deserialize(corrupt), Error);
}

TEST(AttributeStore, DeserializeRejectsMissingTextIdInArray) {
    std::vector<AttributeKind> kinds{AttributeKind::kTextArray};
    auto store = build(kinds, {{texts_cell({"a"})}});
    Bytes bytes = serialize(*store);
    // kind, 1 null byte, dictionary (count 4 + length 4 + "a"), offsets 2 x 8,
    // element count 8, then the one id.
    const std::size_t id_at = 16 + 1 + 1 + 4 + 4 + 1 + 16 + 8;
    ASSERT_EQ(bytes.size(), id_at + 4);
    Bytes corrupt = bytes;
    poke<std::uint32_t>(corrupt, id_at, 0xFFFFFFFFu);
    EXPECT_THROW(deserialize(corrupt), Error);
}

TEST(AttributeStore, DeserializeRejectsBadHeader) {
    auto store = build(kAllKinds, small_rows());
    Bytes bytes = serialize(*store);
    Bytes bad_magic = bytes;
    bad_magic[0] ^= 1;
    EXPECT_THROW(deserialize(bad_magic), Error);
    Bytes negative_rows = bytes;
    poke<std::int64_t>(negative_rows, kRowsFieldBegin, -1);
    EXPECT_THROW(deserialize(negative_rows), Error);
    Bytes many_columns = bytes;
    poke<std::uint32_t>(many_columns, 4, 1000000);
    EXPECT_THROW(deserialize(many_columns), Error);
    Bytes bad_kind = bytes;
    bad_kind[16] = 9;
    EXPECT_THROW(deserialize(bad_kind), Error);
    bad_kind[16] = 0;
    EXPECT_THROW(deserialize(bad_kind), Error);
}

// ---------------------------------------------------------------------------
// The encoded row form and append_from.

TEST(AttributeStoreRandom, EncodedRowsRoundTrip) {
    // (Empty integer arrays: EncodedRowWithEmptyIntegerArray.)
    RandomData d = random_data(44, 1000, 50, /*empty_integer_arrays=*/true);
    auto store = build(d.kinds, d.rows);
    AttributeStore decoded(d.kinds);
    for (const Row& row : d.rows) {
        Values v(d.kinds, row);
        Bytes encoded = AttributeStore::encode_row(d.kinds, v.data());
        std::size_t size = AttributeStore::encoded_row_size(
            d.kinds.data(), static_cast<int>(d.kinds.size()), v.data());
        ASSERT_EQ(size, encoded.size());
        Bytes into(size, 0xAB);
        AttributeStore::encode_row_into(d.kinds.data(), static_cast<int>(d.kinds.size()), v.data(),
                                        into.data(), into.size());
        ASSERT_EQ(into, encoded);
        decoded.append_encoded(encoded.data(), encoded.size());
    }
    ASSERT_EQ(decoded.rows(), store->rows());
    EXPECT_EQ(serialize(decoded), serialize(*store));
    for (std::size_t q = 0; q < d.queries.size(); q++)
        ASSERT_EQ(run_filter(decoded, d.queries[q], decoded.rows()),
                  reference(d.kinds, d.rows, d.queries[q]))
            << "query " << q;
}

// Judging an encoded row on its own gives what filter() gives it stored.
TEST(AttributeStoreRandom, EncodedRowMatchesAgreesWithFilter) {
    RandomData d = random_data(46, 1500, 150, /*empty_integer_arrays=*/true);
    std::vector<Bytes> encoded;
    for (const Row& row : d.rows) {
        Values v(d.kinds, row);
        encoded.push_back(AttributeStore::encode_row(d.kinds, v.data()));
    }
    std::size_t some = 0;
    for (std::size_t q = 0; q < d.queries.size(); q++) {
        std::vector<Condition> c;
        for (Cond& cond : d.queries[q]) c.push_back(cond.get());
        Rows expected = reference(d.kinds, d.rows, d.queries[q]);
        Rows actual;
        for (std::size_t r = 0; r < encoded.size(); r++)
            if (AttributeStore::encoded_row_matches(
                    d.kinds.data(), static_cast<int>(d.kinds.size()), encoded[r].data(),
                    encoded[r].size(), c.data(), static_cast<int>(c.size())))
                actual.push_back(static_cast<std::int64_t>(r));
        ASSERT_EQ(actual, expected) << "query " << q;
        if (!expected.empty() && expected.size() < d.rows.size()) some++;
    }
    EXPECT_GT(some, d.queries.size() / 4);
    // Truncated data is an error, not a read past the end.
    Bytes& row = encoded[0];
    std::vector<Condition> none;
    EXPECT_THROW(
        AttributeStore::encoded_row_matches(d.kinds.data(), static_cast<int>(d.kinds.size()),
                                            row.data(), row.size() / 2, none.data(), 0),
        Error);
}

TEST(AttributeStore, EncodedRowErrors) {
    std::vector<Row> rows = small_rows();
    Values v(kAllKinds, rows[0]);
    Bytes encoded = AttributeStore::encode_row(kAllKinds, v.data());
    // Too small a buffer for encode_row_into.
    Bytes small(encoded.size() - 1);
    EXPECT_THROW(
        AttributeStore::encode_row_into(kAllKinds.data(), 4, v.data(), small.data(), small.size()),
        Error);
    // Every truncation is refused and appends nothing.
    AttributeStore store(kAllKinds);
    for (std::size_t n = 0; n < encoded.size(); n++) {
        try {
            store.append_encoded(encoded.data(), n);
            ADD_FAILURE() << "truncated row of " << n << " bytes accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::kDataException);
        }
        EXPECT_EQ(store.rows(), 0);
    }
    store.append_encoded(encoded.data(), encoded.size());
    EXPECT_EQ(store.rows(), 1);
    // An all-NULL row: one byte per column.
    Values nulls(kAllKinds, rows[2]);
    EXPECT_EQ(AttributeStore::encode_row(kAllKinds, nulls.data()).size(), 4u);
    // No columns: nothing at all.
    EXPECT_EQ(AttributeStore::encoded_row_size(nullptr, 0, nullptr), 0u);
}

// Pending rows with an empty array, and arrays given as (nullptr, 0).
TEST(AttributeStore, EncodedRowWithEmptyIntegerArray) {
    std::vector<AttributeKind> kinds{AttributeKind::kIntegerArray, AttributeKind::kTextArray};
    AttributeValue values[2];
    values[0].is_null = false;  // integers = nullptr, count = 0
    values[1].is_null = false;  // texts = nullptr, count = 0
    Bytes encoded = AttributeStore::encode_row(kinds, values);
    std::size_t size = AttributeStore::encoded_row_size(kinds.data(), 2, values);
    ASSERT_EQ(size, encoded.size());
    Bytes into(size);
    AttributeStore::encode_row_into(kinds.data(), 2, values, into.data(), into.size());
    EXPECT_EQ(into, encoded);
    AttributeStore store(kinds);
    store.append_encoded(encoded.data(), encoded.size());
    store.append(values);
    EXPECT_EQ(store.rows(), 2);
    EXPECT_EQ(run_filter(store, int_cond(0, ConditionOp::kContains, {})), (Rows{0, 1}));
    EXPECT_EQ(run_filter(store, int_cond(0, ConditionOp::kOverlaps, {1})), Rows{});
    EXPECT_EQ(run_filter(store, text_cond(1, ConditionOp::kContains, {})), (Rows{0, 1}));
}

TEST(AttributeStoreRandom, AppendFromCopiesRows) {
    RandomData d = random_data(45, 2000, 100);
    auto store = build(d.kinds, d.rows);
    // Every row in order: byte-identical.
    AttributeStore copy(d.kinds);
    for (std::int64_t r = 0; r < store->rows(); r++) copy.append_from(*store, r);
    EXPECT_EQ(serialize(copy), serialize(*store));

    // A shuffled subset with repeats (a compaction keeps some rows, a merge
    // interleaves): filter results follow the picked rows.
    std::mt19937 rng(5);
    std::vector<Row> picked_rows;
    AttributeStore picked(d.kinds);
    for (int i = 0; i < 1500; i++) {
        std::int64_t r = std::uniform_int_distribution<std::int64_t>(0, store->rows() - 1)(rng);
        picked.append_from(*store, r);
        picked_rows.push_back(d.rows[static_cast<std::size_t>(r)]);
    }
    for (std::size_t q = 0; q < d.queries.size(); q++)
        ASSERT_EQ(run_filter(picked, d.queries[q], picked.rows()),
                  reference(d.kinds, picked_rows, d.queries[q]))
            << "query " << q;

    // From a deserialised store too (its dictionary is rebuilt).
    auto loaded = deserialize(serialize(*store));
    AttributeStore again(d.kinds);
    for (std::int64_t r = 0; r < loaded->rows(); r++) again.append_from(*loaded, r);
    EXPECT_EQ(serialize(again), serialize(*store));
}

TEST(AttributeStore, AppendFromDifferentKindsThrows) {
    auto store = build(kAllKinds, small_rows());
    AttributeStore other({AttributeKind::kInteger});
    try {
        other.append_from(*store, 0);
        ADD_FAILURE() << "no exception";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kInternal);
    }
    EXPECT_EQ(other.rows(), 0);
}

}  // namespace

// Conditions are remembered per store (matches_of's memo): repeating one,
// interleaving others beyond the memo's size, and appending rows must all
// still give the reference answer.
TEST(AttributeStore, RememberedConditionsStayCorrect) {
    std::vector<AttributeKind> kinds{AttributeKind::kInteger};
    AttributeStore store(kinds);
    std::vector<Row> rows;
    for (int i = 0; i < 1000; i++) {
        rows.push_back(Row{int_cell(i % 37)});
        append_row(store, kinds, rows.back());
    }
    auto expect = [&](std::int64_t value) {
        Cond cond = int_cond(0, ConditionOp::kEqualsAny, {value});
        Rows want;
        for (std::size_t r = 0; r < rows.size(); r++)
            if (matches(kinds, rows[r], cond)) want.push_back(static_cast<std::int64_t>(r));
        EXPECT_EQ(run_filter(store, cond), want) << "value " << value;
    };
    for (int round = 0; round < 3; round++)
        for (std::int64_t v = 0; v < 40; v += 1 + round) expect(v);  // more than the memo holds
    expect(5);
    expect(5);
    // New rows make remembered answers stale.
    for (int i = 0; i < 10; i++) {
        rows.push_back(Row{int_cell(5)});
        append_row(store, kinds, rows.back());
    }
    expect(5);
}
