// attributes.cpp: columnar filter values and condition evaluation.
#include "attributes.h"

#include <algorithm>
#include <cstring>

#include "error.h"

namespace benzer {

namespace {

constexpr std::uint32_t kMagic = 0x31415A42;  // "BZA1"
constexpr std::uint32_t kNoId = 0xFFFFFFFFu;

bool is_array(AttributeKind kind) {
    return kind == AttributeKind::kIntegerArray || kind == AttributeKind::kTextArray;
}

bool is_text(AttributeKind kind) {
    return kind == AttributeKind::kText || kind == AttributeKind::kTextArray;
}

// Appends plain values to a byte vector.
struct Writer {
    std::vector<std::uint8_t>* out = nullptr;  // null: only count
    std::uint8_t* fixed = nullptr;             // or write into a fixed buffer
    std::size_t capacity = 0;
    std::size_t size = 0;

    void bytes(const void* data, std::size_t n) {
        if (n == 0) return;  // data may be null (an empty vector's data())
        if (out != nullptr) {
            const auto* p = static_cast<const std::uint8_t*>(data);
            out->insert(out->end(), p, p + n);
        } else if (fixed != nullptr) {
            if (size + n > capacity) throw Error(ErrorKind::kInternal, "attribute buffer overflow");
            std::memcpy(fixed + size, data, n);
        }
        size += n;
    }
    template <typename T>
    void value(T v) {
        bytes(&v, sizeof(v));
    }
};

// Reads plain values, checking bounds (the data comes from disk).
struct Reader {
    const std::uint8_t* data;
    std::size_t size;
    std::size_t position = 0;

    void bytes(void* out, std::size_t n) {
        if (n == 0) return;  // out may be null (an empty vector's data())
        if (n > size - position)
            throw Error(ErrorKind::kDataException, "truncated filter column data");
        std::memcpy(out, data + position, n);
        position += n;
    }
    template <typename T>
    T value() {
        T v;
        bytes(&v, sizeof(v));
        return v;
    }
    std::string_view view(std::size_t n) {
        if (n > size - position)
            throw Error(ErrorKind::kDataException, "truncated filter column data");
        std::string_view s(reinterpret_cast<const char*>(data + position), n);
        position += n;
        return s;
    }
};

}  // namespace

struct AttributeStore::Column {
    AttributeKind kind;
    std::vector<std::uint8_t> nulls;     // bit set: NULL
    std::vector<std::int64_t> integers;  // kInteger: per row; kIntegerArray: elements
    std::vector<std::uint32_t> ids;      // kText: per row; kTextArray: elements
    std::vector<std::uint64_t> offsets;  // arrays: rows + 1 entries
    std::vector<std::string> dictionary;
    std::unordered_map<std::string, std::uint32_t> lookup;

    explicit Column(AttributeKind k) : kind(k) {
        if (is_array(kind)) offsets.push_back(0);
    }

    std::uint32_t intern(std::string_view text) {
        auto it = lookup.find(std::string(text));
        if (it != lookup.end()) return it->second;
        auto id = static_cast<std::uint32_t>(dictionary.size());
        dictionary.emplace_back(text);
        lookup.emplace(dictionary.back(), id);
        return id;
    }

    // The id of text, or kNoId when no row has it.
    std::uint32_t find(std::string_view text) const {
        auto it = lookup.find(std::string(text));
        return it == lookup.end() ? kNoId : it->second;
    }

    void set_null(std::int64_t row, bool null) {
        std::size_t byte = static_cast<std::size_t>(row >> 3);
        if (nulls.size() <= byte) nulls.resize(byte + 1, 0);
        if (null) nulls[byte] |= static_cast<std::uint8_t>(1u << (row & 7));
    }

    bool is_null(std::int64_t row) const {
        std::size_t byte = static_cast<std::size_t>(row >> 3);
        return byte < nulls.size() && (nulls[byte] >> (row & 7)) & 1;
    }

    // Scalar columns: the rows of every value, grouped by value (ids for
    // text), so that "= v" costs the rows that have v, not a pass over all.
    // Built on the first filter that needs them; rebuilt if rows were
    // appended since.
    mutable std::vector<std::int64_t> posting_values;  // sorted, distinct
    mutable std::vector<std::size_t> posting_starts;   // values + 1 offsets
    mutable std::vector<std::int64_t> posting_rows;
    mutable std::int64_t posting_built_for = -1;

    void build_postings(std::int64_t rows) const {
        std::vector<std::pair<std::int64_t, std::int64_t>> pairs;
        pairs.reserve(static_cast<std::size_t>(rows));
        for (std::int64_t row = 0; row < rows; row++) {
            if (is_null(row)) continue;
            std::int64_t v = kind == AttributeKind::kInteger
                                 ? integers[static_cast<std::size_t>(row)]
                                 : static_cast<std::int64_t>(ids[static_cast<std::size_t>(row)]);
            pairs.emplace_back(v, row);
        }
        std::sort(pairs.begin(), pairs.end());
        posting_values.clear();
        posting_starts.clear();
        posting_rows.resize(pairs.size());
        for (std::size_t i = 0; i < pairs.size(); i++) {
            if (i == 0 || pairs[i].first != pairs[i - 1].first) {
                posting_values.push_back(pairs[i].first);
                posting_starts.push_back(i);
            }
            posting_rows[i] = pairs[i].second;
        }
        posting_starts.push_back(pairs.size());
        posting_built_for = rows;
    }
};

std::int64_t count_bits(const std::uint8_t* bitmap, std::size_t bytes) {
    std::int64_t count = 0;
    std::size_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
        std::uint64_t word;
        std::memcpy(&word, bitmap + i, 8);
        count += __builtin_popcountll(word);
    }
    for (; i < bytes; i++) count += __builtin_popcount(bitmap[i]);
    return count;
}

AttributeStore::AttributeStore(std::vector<AttributeKind> kinds) : kinds_(std::move(kinds)) {
    for (AttributeKind k : kinds_) columns_.push_back(std::make_unique<Column>(k));
}

AttributeStore::~AttributeStore() = default;

void AttributeStore::append(const AttributeValue* values) {
    for (std::size_t c = 0; c < columns_.size(); c++) {
        Column& col = *columns_[c];
        const AttributeValue& v = values[c];
        col.set_null(rows_, v.is_null);
        switch (col.kind) {
            case AttributeKind::kInteger:
                col.integers.push_back(v.is_null ? 0 : v.integer);
                break;
            case AttributeKind::kText:
                col.ids.push_back(v.is_null ? kNoId : col.intern(v.text));
                break;
            case AttributeKind::kIntegerArray:
                if (!v.is_null)
                    col.integers.insert(col.integers.end(), v.integers, v.integers + v.count);
                col.offsets.push_back(col.integers.size());
                break;
            case AttributeKind::kTextArray:
                if (!v.is_null)
                    for (std::uint32_t i = 0; i < v.count; i++)
                        col.ids.push_back(col.intern(v.texts[i]));
                col.offsets.push_back(col.ids.size());
                break;
        }
    }
    rows_++;
    if (!memo_.empty()) memo_.clear();
}

void AttributeStore::append_from(const AttributeStore& other, std::int64_t row) {
    if (other.kinds_ != kinds_) throw Error(ErrorKind::kInternal, "filter column kinds differ");
    std::vector<AttributeValue> values(columns_.size());
    std::vector<std::vector<std::string_view>> texts(columns_.size());
    for (std::size_t c = 0; c < columns_.size(); c++) {
        const Column& col = *other.columns_[c];
        AttributeValue& v = values[c];
        v.is_null = col.is_null(row);
        if (v.is_null) continue;
        switch (col.kind) {
            case AttributeKind::kInteger:
                v.integer = col.integers[static_cast<std::size_t>(row)];
                break;
            case AttributeKind::kText:
                v.text = col.dictionary[col.ids[static_cast<std::size_t>(row)]];
                break;
            case AttributeKind::kIntegerArray: {
                std::uint64_t begin = col.offsets[static_cast<std::size_t>(row)];
                std::uint64_t end = col.offsets[static_cast<std::size_t>(row) + 1];
                v.integers = col.integers.data() + begin;
                v.count = static_cast<std::uint32_t>(end - begin);
                break;
            }
            case AttributeKind::kTextArray: {
                std::uint64_t begin = col.offsets[static_cast<std::size_t>(row)];
                std::uint64_t end = col.offsets[static_cast<std::size_t>(row) + 1];
                for (std::uint64_t i = begin; i < end; i++)
                    texts[c].push_back(col.dictionary[col.ids[i]]);
                v.texts = texts[c].data();
                v.count = static_cast<std::uint32_t>(end - begin);
                break;
            }
        }
    }
    append(values.data());
}

namespace {

void encode_values(Writer& w, const AttributeKind* kinds, int count, const AttributeValue* values) {
    for (int c = 0; c < count; c++) {
        const AttributeValue& v = values[c];
        w.value<std::uint8_t>(v.is_null ? 1 : 0);
        if (v.is_null) continue;
        switch (kinds[c]) {
            case AttributeKind::kInteger:
                w.value<std::int64_t>(v.integer);
                break;
            case AttributeKind::kText:
                w.value<std::uint32_t>(static_cast<std::uint32_t>(v.text.size()));
                w.bytes(v.text.data(), v.text.size());
                break;
            case AttributeKind::kIntegerArray:
                w.value<std::uint32_t>(v.count);
                w.bytes(v.integers, sizeof(std::int64_t) * v.count);
                break;
            case AttributeKind::kTextArray:
                w.value<std::uint32_t>(v.count);
                for (std::uint32_t i = 0; i < v.count; i++) {
                    w.value<std::uint32_t>(static_cast<std::uint32_t>(v.texts[i].size()));
                    w.bytes(v.texts[i].data(), v.texts[i].size());
                }
                break;
        }
    }
}

}  // namespace

std::vector<std::uint8_t> AttributeStore::encode_row(const std::vector<AttributeKind>& kinds,
                                                     const AttributeValue* values) {
    std::vector<std::uint8_t> out;
    Writer w;
    w.out = &out;
    encode_values(w, kinds.data(), static_cast<int>(kinds.size()), values);
    return out;
}

std::size_t AttributeStore::encoded_row_size(const AttributeKind* kinds, int count,
                                             const AttributeValue* values) {
    Writer w;
    encode_values(w, kinds, count, values);
    return w.size;
}

void AttributeStore::encode_row_into(const AttributeKind* kinds, int count,
                                     const AttributeValue* values, std::uint8_t* out,
                                     std::size_t size) {
    Writer w;
    w.fixed = out;
    w.capacity = size;
    encode_values(w, kinds, count, values);
}

void AttributeStore::append_encoded(const std::uint8_t* data, std::size_t size) {
    Reader r{data, size};
    std::vector<AttributeValue> values(columns_.size());
    std::vector<std::vector<std::int64_t>> integers(columns_.size());
    std::vector<std::vector<std::string_view>> texts(columns_.size());
    for (std::size_t c = 0; c < columns_.size(); c++) {
        AttributeValue& v = values[c];
        v.is_null = r.value<std::uint8_t>() != 0;
        if (v.is_null) continue;
        switch (kinds_[c]) {
            case AttributeKind::kInteger:
                v.integer = r.value<std::int64_t>();
                break;
            case AttributeKind::kText:
                v.text = r.view(r.value<std::uint32_t>());
                break;
            case AttributeKind::kIntegerArray: {
                v.count = r.value<std::uint32_t>();
                if (v.count > (size - r.position) / sizeof(std::int64_t))
                    throw Error(ErrorKind::kDataException, "truncated filter column data");
                integers[c].resize(v.count);
                r.bytes(integers[c].data(), sizeof(std::int64_t) * v.count);
                v.integers = integers[c].data();
                break;
            }
            case AttributeKind::kTextArray: {
                v.count = r.value<std::uint32_t>();
                if (v.count > (size - r.position) / sizeof(std::uint32_t))
                    throw Error(ErrorKind::kDataException, "truncated filter column data");
                for (std::uint32_t i = 0; i < v.count; i++)
                    texts[c].push_back(r.view(r.value<std::uint32_t>()));
                v.texts = texts[c].data();
                break;
            }
        }
    }
    append(values.data());
}

bool AttributeStore::encoded_row_matches(const AttributeKind* kinds, int count,
                                         const std::uint8_t* data, std::size_t size,
                                         const Condition* conditions, int nconditions) {
    // Where each column's value starts (conditions name columns in any order).
    std::size_t starts[64];
    if (count > 64) throw Error(ErrorKind::kInternal, "too many filter columns");
    Reader r{data, size};
    for (int c = 0; c < count; c++) {
        starts[c] = r.position;
        if (r.value<std::uint8_t>() != 0) continue;  // NULL
        switch (kinds[c]) {
            case AttributeKind::kInteger:
                r.value<std::int64_t>();
                break;
            case AttributeKind::kText:
                r.view(r.value<std::uint32_t>());
                break;
            case AttributeKind::kIntegerArray: {
                std::uint32_t n = r.value<std::uint32_t>();
                if (n > (size - r.position) / sizeof(std::int64_t))
                    throw Error(ErrorKind::kDataException, "truncated filter column data");
                r.position += sizeof(std::int64_t) * n;
                break;
            }
            case AttributeKind::kTextArray: {
                std::uint32_t n = r.value<std::uint32_t>();
                for (std::uint32_t i = 0; i < n; i++) r.view(r.value<std::uint32_t>());
                break;
            }
        }
    }
    for (int i = 0; i < nconditions; i++) {
        const Condition& cond = conditions[i];
        if (cond.op == ConditionOp::kNever) return false;
        if (cond.column < 0 || cond.column >= count)
            throw Error(ErrorKind::kInternal, "filter condition on an unknown column");
        AttributeKind kind = kinds[cond.column];
        Reader v{data, size, starts[cond.column]};
        if (v.value<std::uint8_t>() != 0) return false;  // NULL matches nothing
        bool text = kind == AttributeKind::kText || kind == AttributeKind::kTextArray;
        // Whether element e (an integer, or a text) is operand k.
        auto is_operand = [&](std::int64_t integer, std::string_view s, std::uint32_t k) {
            return text ? cond.texts[k] == s : cond.integers[k] == integer;
        };
        auto any_operand = [&](std::int64_t integer, std::string_view s) {
            for (std::uint32_t k = 0; k < cond.count; k++)
                if (is_operand(integer, s, k)) return true;
            return false;
        };
        if (kind == AttributeKind::kInteger || kind == AttributeKind::kText) {
            if (cond.op != ConditionOp::kEqualsAny)
                throw Error(ErrorKind::kInternal, "unsupported condition on a scalar column");
            std::int64_t integer = 0;
            std::string_view s;
            if (kind == AttributeKind::kInteger)
                integer = v.value<std::int64_t>();
            else
                s = v.view(v.value<std::uint32_t>());
            if (!any_operand(integer, s)) return false;
            continue;
        }
        if (cond.op == ConditionOp::kEqualsAny)
            throw Error(ErrorKind::kInternal, "unsupported condition on an array column");
        std::uint32_t n = v.value<std::uint32_t>();
        std::vector<std::int64_t> integers;
        std::vector<std::string_view> texts;
        for (std::uint32_t e = 0; e < n; e++) {
            if (text)
                texts.push_back(v.view(v.value<std::uint32_t>()));
            else
                integers.push_back(v.value<std::int64_t>());
        }
        auto element_is = [&](std::uint32_t e, std::uint32_t k) {
            return text ? is_operand(0, texts[e], k) : is_operand(integers[e], {}, k);
        };
        if (cond.op == ConditionOp::kContains) {
            for (std::uint32_t k = 0; k < cond.count; k++) {
                bool found = false;
                for (std::uint32_t e = 0; e < n && !found; e++) found = element_is(e, k);
                if (!found) return false;
            }
        } else {
            bool any = false;
            for (std::uint32_t e = 0; e < n && !any; e++)
                for (std::uint32_t k = 0; k < cond.count && !any; k++) any = element_is(e, k);
            if (!any) return false;
        }
    }
    return true;
}

// Clears the rows that fail cond (see matches_of).
template <typename ForEachSet, typename Clear, typename InSet>
void AttributeStore::evaluate(const Condition& cond, const Column& col,
                              const std::vector<std::int64_t>& set, std::uint32_t missing,
                              ForEachSet& for_each_set, Clear& clear, InSet& in_set) const {
    if (cond.op == ConditionOp::kNever) {
        for_each_set(clear);
        return;
    }
    switch (col.kind) {
        case AttributeKind::kInteger:
        case AttributeKind::kText:
            if (cond.op != ConditionOp::kEqualsAny)
                throw Error(ErrorKind::kInternal, "unsupported condition on a scalar column");
            for_each_set([&](std::int64_t row) {
                if (col.is_null(row)) return clear(row);
                std::int64_t v =
                    col.kind == AttributeKind::kInteger
                        ? col.integers[static_cast<std::size_t>(row)]
                        : static_cast<std::int64_t>(col.ids[static_cast<std::size_t>(row)]);
                if (!in_set(v)) clear(row);
            });
            break;
        case AttributeKind::kIntegerArray:
        case AttributeKind::kTextArray: {
            if (cond.op == ConditionOp::kEqualsAny)
                throw Error(ErrorKind::kInternal, "unsupported condition on an array column");
            bool contains = cond.op == ConditionOp::kContains;
            if (contains && missing > 0) {  // an operand no row has
                for_each_set(clear);
                break;
            }
            for_each_set([&](std::int64_t row) {
                if (col.is_null(row)) return clear(row);
                std::uint64_t begin = col.offsets[static_cast<std::size_t>(row)];
                std::uint64_t end = col.offsets[static_cast<std::size_t>(row) + 1];
                auto element = [&](std::uint64_t e) {
                    return col.kind == AttributeKind::kIntegerArray
                               ? col.integers[e]
                               : static_cast<std::int64_t>(col.ids[e]);
                };
                if (contains) {
                    for (std::int64_t want : set) {
                        bool found = false;
                        for (std::uint64_t e = begin; e < end && !found; e++)
                            found = element(e) == want;
                        if (!found) return clear(row);
                    }
                } else {
                    bool any = false;
                    for (std::uint64_t e = begin; e < end && !any; e++) any = in_set(element(e));
                    if (!any) clear(row);
                }
            });
            break;
        }
    }
}

void AttributeStore::filter(const Condition* conditions, int count, std::uint8_t* bitmap,
                            std::int64_t bitmap_rows) const {
    // Rows the store does not have cannot match.
    for (std::int64_t row = rows_; row < bitmap_rows; row++)
        bitmap[row >> 3] &= static_cast<std::uint8_t>(~(1u << (row & 7)));
    std::int64_t rows = std::min(rows_, bitmap_rows);
    std::int64_t whole_bytes = rows / 8;
    for (int i = 0; i < count; i++) {
        const std::vector<std::uint8_t>& matches = matches_of(conditions[i]);
        for (std::int64_t b = 0; b < whole_bytes; b++)
            bitmap[b] &= matches[static_cast<std::size_t>(b)];
        for (std::int64_t row = whole_bytes * 8; row < rows; row++)
            if (!((matches[static_cast<std::size_t>(row >> 3)] >> (row & 7)) & 1))
                bitmap[row >> 3] &= static_cast<std::uint8_t>(~(1u << (row & 7)));
    }
}

// The rows matching one condition, as a bitmap over rows(), from the memo
// or evaluated (and remembered). Searches repeat the same few conditions
// (a season, a quality), and evaluating one is a pass over every row:
// 0.5 ms at 500 000 rows, more than the search it filters.
const std::vector<std::uint8_t>& AttributeStore::matches_of(const Condition& cond) const {
    if (cond.column < 0 || cond.column >= columns())
        throw Error(ErrorKind::kInternal, "filter condition on an unknown column");
    const Column& col = *columns_[static_cast<std::size_t>(cond.column)];
    // The operands as a sorted set of integers or dictionary ids.
    std::vector<std::int64_t> set;
    std::uint32_t missing = 0;  // operands absent from the dictionary
    if (is_text(col.kind)) {
        for (std::uint32_t k = 0; k < cond.count; k++) {
            std::uint32_t id = col.find(cond.texts[k]);
            if (id == kNoId)
                missing++;
            else
                set.push_back(id);
        }
    } else {
        set.assign(cond.integers, cond.integers + cond.count);
    }
    std::sort(set.begin(), set.end());
    set.erase(std::unique(set.begin(), set.end()), set.end());

    // The memo key: column, operator, operands (ids for texts), missing.
    std::string key;
    auto put = [&key](std::int64_t v) { key.append(reinterpret_cast<const char*>(&v), sizeof(v)); };
    put(cond.column);
    put(static_cast<std::int64_t>(cond.op));
    put(missing);
    for (std::int64_t v : set) put(v);
    for (auto it = memo_.begin(); it != memo_.end(); ++it)
        if (it->first == key) {
            if (it != memo_.begin()) std::iter_swap(it, memo_.begin());  // recently used first
            return memo_.front().second;
        }

    std::vector<std::uint8_t> result(static_cast<std::size_t>((rows_ + 7) / 8) + 1, 0xff);
    std::uint8_t* bitmap = result.data();
    if ((col.kind == AttributeKind::kInteger || col.kind == AttributeKind::kText) &&
        cond.op == ConditionOp::kEqualsAny) {
        // The rows of each operand, from the postings.
        if (col.posting_built_for != rows_) col.build_postings(rows_);
        std::fill(result.begin(), result.end(), 0);
        for (std::int64_t v : set) {
            auto at = std::lower_bound(col.posting_values.begin(), col.posting_values.end(), v);
            if (at == col.posting_values.end() || *at != v) continue;
            std::size_t i = static_cast<std::size_t>(at - col.posting_values.begin());
            for (std::size_t p = col.posting_starts[i]; p < col.posting_starts[i + 1]; p++) {
                std::int64_t row = col.posting_rows[p];
                bitmap[row >> 3] |= static_cast<std::uint8_t>(1u << (row & 7));
            }
        }
        return remember(std::move(key), std::move(result));
    }
    std::int64_t rows = rows_;
    auto clear = [&](std::int64_t row) {
        bitmap[row >> 3] &= static_cast<std::uint8_t>(~(1u << (row & 7)));
    };
    for (std::int64_t row = rows; row < static_cast<std::int64_t>(result.size()) * 8; row++)
        clear(row);
    // Calls fn(row) for every row still set.
    auto for_each_set = [&](auto&& fn) {
        for (std::int64_t byte = 0; byte * 8 < rows; byte++) {
            std::uint8_t bits = bitmap[byte];
            while (bits != 0) {
                int bit = __builtin_ctz(bits);
                bits &= static_cast<std::uint8_t>(bits - 1);
                std::int64_t row = byte * 8 + bit;
                if (row < rows) fn(row);
            }
        }
    };
    auto in_set = [&](std::int64_t v) {
        if (set.size() <= 8) return std::find(set.begin(), set.end(), v) != set.end();
        return std::binary_search(set.begin(), set.end(), v);
    };
    evaluate(cond, col, set, missing, for_each_set, clear, in_set);
    return remember(std::move(key), std::move(result));
}

std::vector<std::vector<std::uint8_t>> AttributeStore::sample_filters(int max_filters,
                                                                      std::int64_t min_rows,
                                                                      double max_fraction) const {
    std::vector<std::vector<std::uint8_t>> result;
    for (const auto& colp : columns_) {
        const Column& col = *colp;
        if (col.kind != AttributeKind::kInteger && col.kind != AttributeKind::kText) continue;
        if (col.posting_built_for != rows_) col.build_postings(rows_);
        // Values whose row count is in range, by count.
        std::vector<std::pair<std::size_t, std::size_t>> fitting;  // (count, value index)
        for (std::size_t i = 0; i < col.posting_values.size(); i++) {
            std::size_t count = col.posting_starts[i + 1] - col.posting_starts[i];
            if (static_cast<std::int64_t>(count) >= min_rows &&
                static_cast<double>(count) <= max_fraction * static_cast<double>(rows_))
                fitting.emplace_back(count, i);
        }
        if (fitting.empty()) continue;
        std::sort(fitting.begin(), fitting.end());
        std::vector<std::size_t> chosen{fitting.back().second};
        if (fitting.size() > 1) chosen.push_back(fitting[fitting.size() / 2].second);
        for (std::size_t i : chosen) {
            if (static_cast<int>(result.size()) >= max_filters) return result;
            std::vector<std::uint8_t> bits(static_cast<std::size_t>((rows_ + 7) / 8), 0);
            for (std::size_t p = col.posting_starts[i]; p < col.posting_starts[i + 1]; p++) {
                std::int64_t row = col.posting_rows[p];
                bits[static_cast<std::size_t>(row >> 3)] |=
                    static_cast<std::uint8_t>(1u << (row & 7));
            }
            result.push_back(std::move(bits));
        }
    }
    return result;
}

// Adds a condition's bitmap to the memo, forgetting the least recently
// used beyond kMemoEntries or kMemoBytes; returns the stored bitmap.
const std::vector<std::uint8_t>& AttributeStore::remember(std::string key,
                                                          std::vector<std::uint8_t> result) const {
    std::size_t bytes = result.size();
    for (const auto& entry : memo_) bytes += entry.second.size();
    while (!memo_.empty() && (memo_.size() >= kMemoEntries || bytes > kMemoBytes)) {
        bytes -= memo_.back().second.size();
        memo_.pop_back();
    }
    memo_.emplace(memo_.begin(), std::move(key), std::move(result));
    return memo_.front().second;
}

// Serialised form: magic, column count, rows, then per column its kind,
// null bitmap and data (see the file comment in attributes.h).
std::size_t AttributeStore::serialized_size() const {
    Writer w;
    w.value<std::uint32_t>(kMagic);
    w.value<std::uint32_t>(static_cast<std::uint32_t>(columns_.size()));
    w.value<std::int64_t>(rows_);
    std::size_t null_bytes = static_cast<std::size_t>((rows_ + 7) / 8);
    for (const auto& colp : columns_) {
        const Column& col = *colp;
        w.value<std::uint8_t>(static_cast<std::uint8_t>(col.kind));
        w.size += null_bytes;
        if (is_text(col.kind)) {
            w.value<std::uint32_t>(static_cast<std::uint32_t>(col.dictionary.size()));
            for (const std::string& s : col.dictionary) w.size += sizeof(std::uint32_t) + s.size();
        }
        if (is_array(col.kind)) {
            w.size += sizeof(std::uint64_t) * col.offsets.size();
            w.value<std::uint64_t>(0);
        }
        if (col.kind == AttributeKind::kInteger || col.kind == AttributeKind::kIntegerArray)
            w.size += sizeof(std::int64_t) * col.integers.size();
        else
            w.size += sizeof(std::uint32_t) * col.ids.size();
    }
    return w.size;
}

void AttributeStore::serialize(std::uint8_t* out, std::size_t size) const {
    Writer w;
    w.fixed = out;
    w.capacity = size;
    w.value<std::uint32_t>(kMagic);
    w.value<std::uint32_t>(static_cast<std::uint32_t>(columns_.size()));
    w.value<std::int64_t>(rows_);
    std::size_t null_bytes = static_cast<std::size_t>((rows_ + 7) / 8);
    for (const auto& colp : columns_) {
        const Column& col = *colp;
        w.value<std::uint8_t>(static_cast<std::uint8_t>(col.kind));
        std::vector<std::uint8_t> nulls(col.nulls);
        nulls.resize(null_bytes, 0);
        w.bytes(nulls.data(), null_bytes);
        if (is_text(col.kind)) {
            w.value<std::uint32_t>(static_cast<std::uint32_t>(col.dictionary.size()));
            for (const std::string& s : col.dictionary) {
                w.value<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
                w.bytes(s.data(), s.size());
            }
        }
        if (is_array(col.kind)) {
            w.bytes(col.offsets.data(), sizeof(std::uint64_t) * col.offsets.size());
            w.value<std::uint64_t>(col.kind == AttributeKind::kIntegerArray ? col.integers.size()
                                                                            : col.ids.size());
        }
        if (col.kind == AttributeKind::kInteger || col.kind == AttributeKind::kIntegerArray)
            w.bytes(col.integers.data(), sizeof(std::int64_t) * col.integers.size());
        else
            w.bytes(col.ids.data(), sizeof(std::uint32_t) * col.ids.size());
    }
    if (w.size != size) throw Error(ErrorKind::kInternal, "filter column size mismatch");
}

AttributeStore* AttributeStore::deserialize(const std::uint8_t* data, std::size_t size) {
    Reader r{data, size};
    if (r.value<std::uint32_t>() != kMagic)
        throw Error(ErrorKind::kDataException, "filter column data has a bad header");
    std::uint32_t ncols = r.value<std::uint32_t>();
    std::int64_t rows = r.value<std::int64_t>();
    // Every row takes at least a null bit in every column: a row count the
    // data cannot hold is corrupt (and must not size an allocation).
    if (ncols > 64 || rows < 0 || static_cast<std::uint64_t>(rows) / 8 > size)
        throw Error(ErrorKind::kDataException, "filter column data has a bad header");
    auto corrupt = [] {
        throw Error(ErrorKind::kDataException, "filter column data is inconsistent");
    };
    auto store = std::make_unique<AttributeStore>(std::vector<AttributeKind>{});
    store->rows_ = rows;
    std::size_t null_bytes = static_cast<std::size_t>((rows + 7) / 8);
    for (std::uint32_t c = 0; c < ncols; c++) {
        auto kind = static_cast<AttributeKind>(r.value<std::uint8_t>());
        if (kind < AttributeKind::kInteger || kind > AttributeKind::kTextArray)
            throw Error(ErrorKind::kDataException, "filter column data has an unknown kind");
        store->kinds_.push_back(kind);
        auto col = std::make_unique<Column>(kind);
        col->nulls.resize(null_bytes);
        r.bytes(col->nulls.data(), null_bytes);
        if (is_text(kind)) {
            std::uint32_t n = r.value<std::uint32_t>();
            if (n > size - r.position) corrupt();
            for (std::uint32_t i = 0; i < n; i++) {
                std::string_view s = r.view(r.value<std::uint32_t>());
                col->dictionary.emplace_back(s);
                if (!col->lookup.emplace(col->dictionary.back(), i).second) corrupt();
            }
        }
        std::uint64_t elements = static_cast<std::uint64_t>(rows);
        if (is_array(kind)) {
            if (static_cast<std::uint64_t>(rows) + 1 > (size - r.position) / sizeof(std::uint64_t))
                corrupt();
            col->offsets.resize(static_cast<std::size_t>(rows) + 1);
            r.bytes(col->offsets.data(), sizeof(std::uint64_t) * col->offsets.size());
            elements = r.value<std::uint64_t>();
            // Offsets start at 0, never decrease, and end at the element count.
            if (col->offsets.front() != 0 || col->offsets.back() != elements) corrupt();
            for (std::size_t i = 1; i < col->offsets.size(); i++)
                if (col->offsets[i] < col->offsets[i - 1]) corrupt();
        }
        if (elements > size) corrupt();
        if (kind == AttributeKind::kInteger || kind == AttributeKind::kIntegerArray) {
            col->integers.resize(static_cast<std::size_t>(elements));
            r.bytes(col->integers.data(), sizeof(std::int64_t) * elements);
        } else {
            col->ids.resize(static_cast<std::size_t>(elements));
            r.bytes(col->ids.data(), sizeof(std::uint32_t) * elements);
            // Every element of a text array, and the value of every non-NULL
            // text row, is a dictionary id.
            for (std::size_t i = 0; i < col->ids.size(); i++) {
                std::uint32_t id = col->ids[i];
                bool may_be_missing =
                    kind == AttributeKind::kText && col->is_null(static_cast<std::int64_t>(i));
                if (id == kNoId ? !may_be_missing : id >= col->dictionary.size()) corrupt();
            }
        }
        store->columns_.push_back(std::move(col));
    }
    if (r.position != size) corrupt();  // trailing bytes
    return store.release();
}

std::size_t AttributeStore::memory_bytes() const {
    std::size_t total = 0;
    for (const auto& colp : columns_) {
        const Column& col = *colp;
        total += col.nulls.size() + col.integers.size() * 8 + col.ids.size() * 4 +
                 col.offsets.size() * 8;
        for (const std::string& s : col.dictionary) total += s.size() * 2 + 48;
    }
    return total;
}

}  // namespace benzer
