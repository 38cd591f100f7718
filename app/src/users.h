// users.h: the app's users, their passwords and their sessions.
//
// Passwords are stored as Argon2id strings (libsodium's crypto_pwhash_str:
// "$argon2id$v=19$m=65536,t=2,p=1$salt$hash"), so a copy of the users
// table gives no passwords. A session is a random 256-bit token in an
// HttpOnly, SameSite=Strict cookie; the database keeps only its SHA-256,
// so a copy of the sessions table gives no sessions either. Each session
// has its own CSRF token, which the page reads from /api/me (same-origin
// only) and sends back in X-CSRF-Token with every request that changes
// state.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace benzer_app {

// Initialises libsodium; false when it cannot (no entropy source).
bool crypto_ready();

// The Argon2id string of password (interactive limits: 64 MiB, 2 passes).
// At most two are computed at once, which bounds their memory at 128 MiB.
std::string hash_password(const std::string& password);

// True when password matches an Argon2id string from hash_password.
bool password_matches(const std::string& stored, const std::string& password);

// A new random token: 32 bytes, base64url without padding (43 chars).
std::string random_token();

// The SHA-256 of a token, in hex (what the sessions table keeps).
std::string token_digest(const std::string& token);

// True when a and b are equal, in time that does not depend on where they
// first differ.
bool same_secret(const std::string& a, const std::string& b);

// A user name: 1 to 64 letters, digits and . _ @ -.
bool valid_user_name(const std::string& name);

// The session cookie's value in a Cookie header, or "".
std::string session_cookie(const std::string& cookie_header);

constexpr const char* kSessionCookie = "benzer_session";
constexpr int kSessionHours = 12;

// Counts attempts per key in a sliding minute; bounded memory.
class RateLimit {
  public:
    explicit RateLimit(int per_minute) : per_minute_(per_minute) {}
    // True when one more attempt for key is allowed now (and counts it).
    bool allow(const std::string& key);

  private:
    int per_minute_;
    std::mutex mu_;
    std::map<std::string, std::pair<long long, int>> window_;  // key -> (minute, attempts)
};

}  // namespace benzer_app
