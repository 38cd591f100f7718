// users.cpp: passwords, tokens and rate limits for the app's users (see
// users.h). libsodium does the cryptography: Argon2id, the random tokens,
// SHA-256 and the constant-time comparison.
#include "users.h"

#include "turns.h"

#include <sodium.h>

#include <cctype>
#include <chrono>
#include <stdexcept>

namespace benzer_app {

namespace {

// At most two Argon2id computations at once (64 MiB each).
TurnLimit g_hashing(2);

}  // namespace

bool crypto_ready() { return sodium_init() >= 0; }

std::string hash_password(const std::string& password) {
    TurnLimit::Turn turn(g_hashing);
    char out[crypto_pwhash_STRBYTES];
    if (crypto_pwhash_str_alg(
            out, password.data(), password.size(), crypto_pwhash_OPSLIMIT_INTERACTIVE,
            crypto_pwhash_MEMLIMIT_INTERACTIVE, crypto_pwhash_ALG_ARGON2ID13) != 0)
        throw std::runtime_error("out of memory hashing a password");
    return out;
}

bool password_matches(const std::string& stored, const std::string& password) {
    if (stored.compare(0, 10, "$argon2id$") != 0) return false;
    TurnLimit::Turn turn(g_hashing);
    return crypto_pwhash_str_verify(stored.c_str(), password.data(), password.size()) == 0;
}

std::string random_token() {
    unsigned char bytes[32];
    randombytes_buf(bytes, sizeof(bytes));
    char out[sodium_base64_ENCODED_LEN(sizeof(bytes), sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    sodium_bin2base64(out, sizeof(out), bytes, sizeof(bytes),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

std::string token_digest(const std::string& token) {
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(token.data()), token.size());
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    return hex;
}

bool same_secret(const std::string& a, const std::string& b) {
    return a.size() == b.size() && !a.empty() && sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool valid_user_name(const std::string& name) {
    if (name.empty() || name.size() > 64) return false;
    for (char c : name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '@' ||
              c == '-'))
            return false;
    return true;
}

std::string session_cookie(const std::string& header) {
    std::string name = std::string(kSessionCookie) + "=";
    size_t pos = 0;
    while (pos < header.size()) {
        while (pos < header.size() && (header[pos] == ' ' || header[pos] == ';')) pos++;
        size_t end = header.find(';', pos);
        if (end == std::string::npos) end = header.size();
        if (header.compare(pos, name.size(), name) == 0)
            return header.substr(pos + name.size(), end - pos - name.size());
        pos = end;
    }
    return "";
}

bool RateLimit::allow(const std::string& key) {
    long long minute = std::chrono::duration_cast<std::chrono::minutes>(
                           std::chrono::steady_clock::now().time_since_epoch())
                           .count();
    std::lock_guard<std::mutex> lock(mu_);
    if (window_.size() > 10000) window_.clear();  // bounded memory
    auto& w = window_[key];
    if (w.first != minute) w = {minute, 0};
    return ++w.second <= per_minute_;
}

}  // namespace benzer_app
