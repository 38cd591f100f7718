// factory.cpp: benzer's grammar of Faiss factory strings (see factory.h).
//
// A small recursive-descent reader over the comma-separated components.
// Every number is read as at most seven digits and checked against its
// bounds before anything is built, so no value Faiss would misuse (0, a
// negative, an overflowing stoi) gets through.
#include "core/factory.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

#include "core/engine.h"
#include "core/error.h"

namespace benzer {

namespace {

constexpr long kMaxNlist = 1L << 20;
constexpr long kMinHnswM = 2;
constexpr long kMaxHnswM = 256;
constexpr long kMaxPqBits = 8;

[[noreturn]] void invalid(const std::string& message) {
    throw Error(ErrorKind::kInvalidParameter, message);
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

// Reads one component at a time, and numbers inside it.
class Reader {
  public:
    Reader(const std::string& factory, int dim) : factory_(factory), dim_(dim) {
        std::string current;
        for (char c : factory) {
            if (c == ' ') continue;
            if (c == ',') {
                parts_.push_back(current);
                current.clear();
            } else {
                current += c;
            }
        }
        parts_.push_back(current);
        for (const std::string& p : parts_)
            if (p.empty()) invalid("empty component in factory string " + quoted(factory));
    }

    bool done() const { return next_ == parts_.size(); }
    const std::string& peek() const { return parts_[next_]; }
    std::string& take() { return parts_[next_++]; }
    bool last() const { return next_ + 1 == parts_.size(); }

    // A decimal number at text[*pos] (advancing *pos), within [lo, hi].
    static long number(const std::string& component, const std::string& text, size_t* pos,
                       const char* what, long lo, long hi) {
        size_t start = *pos;
        while (*pos < text.size() && std::isdigit(static_cast<unsigned char>(text[*pos]))) (*pos)++;
        if (*pos == start) invalid(quoted(component) + ": " + what + " is missing");
        std::string digits = text.substr(start, *pos - start);
        if (digits.size() > 7 || std::stol(digits) > hi || std::stol(digits) < lo)
            invalid(quoted(component) + ": " + what + " must be between " + std::to_string(lo) +
                    " and " + std::to_string(hi) + ", not " + digits);
        return std::stol(digits);
    }

    int dim() const { return dim_; }
    void set_dim(int d) { dim_ = d; }
    // The components, comma-separated, as read (some rewritten).
    std::string joined() const {
        std::string out;
        for (const std::string& p : parts_) out += (out.empty() ? "" : ",") + p;
        return out;
    }
    const std::string& factory() const { return factory_; }

  private:
    const std::string& factory_;
    std::vector<std::string> parts_;
    size_t next_ = 0;
    int dim_;  // the dimension at this point of the chain (0: unknown)
};

bool starts_with(const std::string& s, const char* prefix) {
    return s.compare(0, std::char_traits<char>::length(prefix), prefix) == 0;
}

// Upper bound for a dimension parameter: the input dimension when known.
long dim_bound(const Reader& r) { return r.dim() > 0 ? r.dim() : 65535; }

// "m divides d" where d is known.
void check_divides(const std::string& component, long m, int d, const char* what) {
    if (d > 0 && (m > d || d % m != 0))
        invalid(quoted(component) + ": the number of " + what + " (" + std::to_string(m) +
                ") must divide the dimension (" + std::to_string(d) + ")");
}

// PCA<d>, PCAR<d>, OPQ<m>[_<d>], RR<d>, L2norm. Returns false if the
// component is not a transform.
bool read_transform(Reader& r, FactorySpec& spec) {
    const std::string& p = r.peek();
    size_t pos = 0;
    if (p == "L2norm") {
        r.take();
        return true;
    }
    if (starts_with(p, "PCA")) {
        pos = starts_with(p, "PCAR") ? 4 : 3;
        long d = Reader::number(p, p, &pos, "the output dimension", 1, dim_bound(r));
        if (pos != p.size())
            invalid(quoted(p) + ": expected PCA<d> or PCAR<d> (whitened PCA is not supported)");
        r.set_dim(static_cast<int>(d));
        spec.min_training_rows = std::max<std::int64_t>(spec.min_training_rows, d);
        r.take();
        return true;
    }
    if (starts_with(p, "RR")) {
        pos = 2;
        long d = Reader::number(p, p, &pos, "the output dimension", 1, dim_bound(r));
        if (pos != p.size()) invalid(quoted(p) + ": expected RR<d>");
        r.set_dim(static_cast<int>(d));
        r.take();
        return true;
    }
    if (starts_with(p, "OPQ")) {
        pos = 3;
        long m = Reader::number(p, p, &pos, "the number of sub-quantizers", 1, 65535);
        long d = r.dim();
        if (pos < p.size() && p[pos] == '_') {
            pos++;
            d = Reader::number(p, p, &pos, "the output dimension", 1, dim_bound(r));
        }
        if (pos != p.size()) invalid(quoted(p) + ": expected OPQ<m> or OPQ<m>_<d>");
        check_divides(p, m, static_cast<int>(d), "sub-quantizers");
        r.set_dim(static_cast<int>(d));
        // OPQ trains an 8-bit product quantizer inside.
        spec.min_training_rows = std::max<std::int64_t>(spec.min_training_rows, 256);
        r.take();
        return true;
    }
    return false;
}

// PQ<m>[x<bits>][np|fs] at p (the whole component). fast_scan_ok: whether
// "fs" may follow; np_only: HNSW storage takes only 8-bit PQ<m>[np].
void read_pq(Reader& r, const std::string& p, FactorySpec& spec, bool fast_scan_ok,
             bool hnsw_storage) {
    size_t pos = 2;
    long m = Reader::number(p, p, &pos, "the number of sub-quantizers", 1, 65535);
    long bits = 8;
    if (!hnsw_storage && pos < p.size() && p[pos] == 'x') {
        pos++;
        bits = Reader::number(p, p, &pos, "the bits per sub-quantizer", 1, kMaxPqBits);
    }
    std::string suffix = p.substr(pos);
    if (suffix == "fs") {
        if (!fast_scan_ok || bits != 4)
            invalid(quoted(p) + ": FastScan (fs) needs 4 bits, written PQ<m>x4fs" +
                    (fast_scan_ok ? "" : ", and is not available here"));
        spec.fast_scan = true;
    } else if (!suffix.empty() && suffix != "np") {
        invalid(quoted(p) + ": expected PQ<m>[x<bits>][np|fs]");
    }
    check_divides(p, m, r.dim(), "sub-quantizers");
    spec.pq_m = static_cast<int>(m);
    spec.pq_bits = static_cast<int>(bits);
    spec.min_training_rows =
        std::max<std::int64_t>(spec.min_training_rows, std::int64_t(1) << bits);
}

bool is_sq(const std::string& p) { return p == "SQ4" || p == "SQ6" || p == "SQ8" || p == "SQfp16"; }

[[noreturn]] void unsupported(const Reader& r, const std::string& p) {
    if (starts_with(p, "NSG"))
        invalid(quoted(p) +
                " is not supported: NSG cannot add rows after it is built, and its "
                "build can loop without end on small tables; use HNSW<M>");
    if (starts_with(p, "IDMap"))
        invalid(quoted(p) + " is not supported: benzer maps rows to heap tuples itself; remove it");
    if (starts_with(p, "BFlat") || starts_with(p, "BHNSW") || starts_with(p, "BIVF"))
        invalid(quoted(p) + ": binary indexes do not apply to float vectors");
    if (starts_with(p, "Refine") || p == "RFlat")
        invalid(quoted(p) + ": only \"RFlat\" re-ranking, as the last component, is supported");
    invalid("unsupported component " + quoted(p) + " in factory string " + quoted(r.factory()) +
            " (supported: Flat, IVF<n>, HNSW<M>, PQ<m>[x<bits>][np|fs], SQ4|SQ6|SQ8|SQfp16, "
            "PCA<d>, OPQ<m>[_<d>], RR<d>, L2norm, and RFlat last)");
}

// The structure: Flat, IVF, HNSW, PQ, SQ.
void read_structure(Reader& r, FactorySpec& spec) {
    std::string& p = r.take();
    if (p == "Flat" || is_sq(p)) return;
    if (starts_with(p, "PQ")) {
        read_pq(r, p, spec, true, false);
        // IndexPQFastScan (PQ<m>x4fs without IVF) aborts on equal distances
        // for k > 20 in Faiss 1.7.3 (utils/partitioning.cpp, n_eq == 0),
        // and the implementation that avoids it needs codes Faiss drops
        // after adding. The plain 4-bit PQ index stores the same codes and
        // gives the same distances; on Debian's generic Faiss build it is
        // not slower.
        if (spec.fast_scan) {
            spec.fast_scan = false;
            p.resize(p.size() - 2);
        }
        return;
    }
    if (starts_with(p, "IVF")) {
        size_t pos = 3;
        long nlist = Reader::number(p, p, &pos, "the number of lists", 1, kMaxNlist);
        if (pos != p.size())
            invalid(quoted(p) +
                    ": expected IVF<nlist> (other coarse quantizers are not "
                    "supported)");
        spec.nlist = static_cast<int>(nlist);
        spec.min_training_rows = std::max<std::int64_t>(spec.min_training_rows, nlist);
        if (r.done() || r.peek() == "RFlat")
            invalid(quoted(p) +
                    " needs an encoding after it: IVF<n>,Flat, IVF<n>,PQ<m>np or "
                    "IVF<n>,SQ8");
        const std::string& code = r.take();
        if (code == "Flat" || is_sq(code)) return;
        if (starts_with(code, "PQ")) {
            read_pq(r, code, spec, true, false);
            return;
        }
        unsupported(r, code);
    }
    if (starts_with(p, "HNSW")) {
        size_t pos = 4;
        long m = Reader::number(p, p, &pos, "the number of neighbours (M)", kMinHnswM, kMaxHnswM);
        spec.hnsw_m = static_cast<int>(m);
        std::string storage;
        if (pos < p.size()) {
            if (p[pos] != '_') invalid(quoted(p) + ": expected HNSW<M> or HNSW<M>_<storage>");
            storage = p.substr(pos + 1);
        } else if (!r.done() && r.peek() != "RFlat") {
            storage = r.take();
        }
        if (storage.empty() || storage == "Flat" || is_sq(storage)) return;
        if (starts_with(storage, "PQ")) {
            read_pq(r, storage, spec, false, true);
            return;
        }
        invalid(quoted(p) + ": HNSW storage must be Flat, PQ<m>[np] or SQ4|SQ6|SQ8|SQfp16, not " +
                quoted(storage));
    }
    unsupported(r, p);
}

}  // namespace

double max_indexable_norm(const char* factory) noexcept {
    if (factory != nullptr && std::strstr(factory, "SQfp16") != nullptr) return 3e4;
    return kMaxIndexableNorm;
}

FactorySpec parse_factory(const std::string& factory, int dim) {
    if (factory.empty()) invalid("the factory string is empty");
    if (factory.size() > static_cast<size_t>(kMaxFactoryLength))
        invalid("the factory string is longer than " + std::to_string(kMaxFactoryLength) +
                " characters");
    for (char c : factory)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == ',' || c == '_' || c == ' '))
            invalid("invalid character '" + std::string(1, c) + "' in factory string " +
                    quoted(factory));
    FactorySpec spec;
    Reader r(factory, dim);
    while (!r.done() && read_transform(r, spec)) {
    }
    if (r.done()) invalid(quoted(factory) + " has no index structure (Flat, IVF, HNSW, PQ, SQ)");
    read_structure(r, spec);
    if (!r.done()) {
        if (r.peek() == "RFlat" && r.last()) {
            r.take();
            spec.refine = true;
        } else if (r.peek() == "RFlat") {
            invalid("only \"RFlat\" re-ranking, as the last component, is supported");
        } else {
            invalid("unexpected " + quoted(r.peek()) + " after the index structure in " +
                    quoted(factory));
        }
    }
    spec.canonical = r.joined();
    spec.transformed_dim = r.dim();
    return spec;
}

}  // namespace benzer
