// A small JSON writer, and a parser for the flat JSON objects the API
// accepts in request bodies ({"key": "string" | number | true | false | null}).
#pragma once

#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace benzer_app {

// The length of the well-formed UTF-8 sequence at s[i] (1-4), or 0.
inline size_t utf8_sequence_length(const std::string& s, size_t i) {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    size_t n = c < 0x80                   ? 1
               : (c >= 0xc2 && c <= 0xdf) ? 2
               : (c >= 0xe0 && c <= 0xef) ? 3
               : (c >= 0xf0 && c <= 0xf4) ? 4
                                          : 0;
    if (n == 0 || i + n > s.size()) return 0;
    for (size_t k = 1; k < n; k++)
        if ((byte(i + k) & 0xc0) != 0x80) return 0;
    // No overlong forms, surrogates or code points above U+10FFFF.
    if ((c == 0xe0 && byte(i + 1) < 0xa0) || (c == 0xed && byte(i + 1) > 0x9f) ||
        (c == 0xf0 && byte(i + 1) < 0x90) || (c == 0xf4 && byte(i + 1) > 0x8f))
        return 0;
    return n;
}

// Writes s as a JSON string. Bytes that are not UTF-8 (a request can carry
// any) become U+FFFD, so the output is always valid JSON.
inline void json_escape(std::string& out, const std::string& s) {
    out.push_back('"');
    for (size_t i = 0; i < s.size(); i++) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x80) {
            size_t n = utf8_sequence_length(s, i);
            if (n == 0) {
                out += "\\ufffd";
            } else {
                out.append(s, i, n);
                i += n - 1;
            }
            continue;
        }
        switch (c) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out.push_back(static_cast<char>(c));
                }
        }
    }
    out.push_back('"');
}

// Builds JSON text left to right; commas are inserted automatically.
//   JsonWriter j; j.begin_object().key("a").value(1).end_object();
class JsonWriter {
  public:
    JsonWriter& begin_object() {
        sep();
        out_.push_back('{');
        first_.push_back(true);
        return *this;
    }
    JsonWriter& end_object() {
        out_.push_back('}');
        first_.pop_back();
        return *this;
    }
    JsonWriter& begin_array() {
        sep();
        out_.push_back('[');
        first_.push_back(true);
        return *this;
    }
    JsonWriter& end_array() {
        out_.push_back(']');
        first_.pop_back();
        return *this;
    }
    JsonWriter& key(const std::string& k) {
        sep();
        json_escape(out_, k);
        out_.push_back(':');
        after_key_ = true;
        return *this;
    }
    JsonWriter& value(const std::string& s) {
        sep();
        json_escape(out_, s);
        return *this;
    }
    JsonWriter& value(const char* s) { return value(std::string(s)); }
    JsonWriter& value(bool b) {
        sep();
        out_ += b ? "true" : "false";
        return *this;
    }
    JsonWriter& value(int v) { return value(static_cast<long long>(v)); }
    JsonWriter& value(long v) { return value(static_cast<long long>(v)); }
    JsonWriter& value(long long v) {
        sep();
        out_ += std::to_string(v);
        return *this;
    }
    JsonWriter& value(double v, const char* fmt = "%.6g") {
        sep();
        if (!std::isfinite(v)) {
            out_ += "null";
            return *this;
        }
        char buf[40];
        std::snprintf(buf, sizeof buf, fmt, v);
        out_ += buf;
        return *this;
    }
    JsonWriter& null() {
        sep();
        out_ += "null";
        return *this;
    }
    JsonWriter& raw(const std::string& json) {
        sep();
        out_ += json;
        return *this;
    }
    JsonWriter& value(const std::vector<std::string>& v) {
        begin_array();
        for (const auto& s : v) value(s);
        return end_array();
    }
    const std::string& str() const { return out_; }

  private:
    void sep() {
        if (after_key_) {
            after_key_ = false;
            return;
        }
        if (!first_.empty()) {
            if (!first_.back()) out_.push_back(',');
            first_.back() = false;
        }
    }
    std::string out_;
    std::vector<bool> first_;
    bool after_key_ = false;
};

// One value of a flat JSON object.
struct JsonScalar {
    enum Kind { String, Number, Bool, Null } kind = Null;
    std::string text;  // the string, or the number's text, or "true"/"false"
};

// Parses {"k": scalar, ...}. Returns false, with a message, on anything else
// (nested values, trailing garbage, duplicate keys, bad escapes).
inline bool parse_flat_json_object(const std::string& in, std::map<std::string, JsonScalar>& out,
                                   std::string& error) {
    size_t i = 0;
    auto ws = [&] {
        while (i < in.size() && (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r'))
            i++;
    };
    auto fail = [&](const std::string& m) {
        error = m + " at byte " + std::to_string(i);
        return false;
    };
    auto parse_string = [&](std::string& s) -> bool {
        if (i >= in.size() || in[i] != '"') return fail("expected a string");
        i++;
        while (i < in.size() && in[i] != '"') {
            unsigned char c = static_cast<unsigned char>(in[i]);
            if (c < 0x20) return fail("control character in string");
            if (c == '\\') {
                if (++i >= in.size()) return fail("bad escape");
                char e = in[i];
                switch (e) {
                    case '"':
                        s.push_back('"');
                        break;
                    case '\\':
                        s.push_back('\\');
                        break;
                    case '/':
                        s.push_back('/');
                        break;
                    case 'b':
                        s.push_back('\b');
                        break;
                    case 'f':
                        s.push_back('\f');
                        break;
                    case 'n':
                        s.push_back('\n');
                        break;
                    case 'r':
                        s.push_back('\r');
                        break;
                    case 't':
                        s.push_back('\t');
                        break;
                    case 'u': {
                        if (i + 4 >= in.size()) return fail("bad \\u escape");
                        unsigned cp = 0;
                        for (int k = 1; k <= 4; k++) {
                            char h = in[i + k];
                            cp <<= 4;
                            if (h >= '0' && h <= '9')
                                cp |= h - '0';
                            else if (h >= 'a' && h <= 'f')
                                cp |= h - 'a' + 10;
                            else if (h >= 'A' && h <= 'F')
                                cp |= h - 'A' + 10;
                            else
                                return fail("bad \\u escape");
                        }
                        i += 4;
                        if (cp >= 0xd800 && cp <= 0xdfff)
                            return fail("surrogates are not supported");
                        if (cp < 0x80) {
                            s.push_back(static_cast<char>(cp));
                        } else if (cp < 0x800) {
                            s.push_back(static_cast<char>(0xc0 | (cp >> 6)));
                            s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
                        } else {
                            s.push_back(static_cast<char>(0xe0 | (cp >> 12)));
                            s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
                            s.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
                        }
                        break;
                    }
                    default:
                        return fail("bad escape");
                }
                i++;
            } else {
                s.push_back(static_cast<char>(c));
                i++;
            }
        }
        if (i >= in.size()) return fail("unterminated string");
        i++;
        return true;
    };
    ws();
    if (i >= in.size() || in[i] != '{') return fail("expected a JSON object");
    i++;
    ws();
    if (i < in.size() && in[i] == '}') {
        i++;
    } else {
        for (;;) {
            ws();
            std::string k;
            if (!parse_string(k)) return false;
            if (out.count(k)) return fail("duplicate key \"" + k + "\"");
            ws();
            if (i >= in.size() || in[i] != ':') return fail("expected ':'");
            i++;
            ws();
            JsonScalar v;
            if (i >= in.size()) return fail("expected a value");
            char c = in[i];
            if (c == '"') {
                v.kind = JsonScalar::String;
                if (!parse_string(v.text)) return false;
            } else if (c == '-' || (c >= '0' && c <= '9')) {
                size_t start = i;
                if (in[i] == '-') i++;
                while (i < in.size() &&
                       ((in[i] >= '0' && in[i] <= '9') || in[i] == '.' || in[i] == 'e' ||
                        in[i] == 'E' || in[i] == '+' || in[i] == '-'))
                    i++;
                v.kind = JsonScalar::Number;
                v.text = in.substr(start, i - start);
            } else if (in.compare(i, 4, "true") == 0) {
                v.kind = JsonScalar::Bool;
                v.text = "true";
                i += 4;
            } else if (in.compare(i, 5, "false") == 0) {
                v.kind = JsonScalar::Bool;
                v.text = "false";
                i += 5;
            } else if (in.compare(i, 4, "null") == 0) {
                v.kind = JsonScalar::Null;
                i += 4;
            } else if (c == '{' || c == '[') {
                return fail("nested objects and arrays are not accepted");
            } else {
                return fail("unexpected character");
            }
            out.emplace(std::move(k), std::move(v));
            ws();
            if (i < in.size() && in[i] == ',') {
                i++;
                continue;
            }
            if (i < in.size() && in[i] == '}') {
                i++;
                break;
            }
            return fail("expected ',' or '}'");
        }
    }
    ws();
    if (i != in.size()) return fail("trailing characters after the object");
    return true;
}

}  // namespace benzer_app
