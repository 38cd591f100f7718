// error.h: the exception type core code throws.
//
// It carries the class of the failure so the PostgreSQL side can choose the
// SQLSTATE (pg/guard.h) without parsing messages.
#pragma once

#include <stdexcept>
#include <string>

namespace benzer {

// Kinds of failure, mapped to SQLSTATEs by raise_guarded_error().
enum class ErrorKind {
    kNone,
    kInvalidParameter,  // bad option, bad factory string: 22023
    kDataException,     // bad data: 22000
    kOutOfMemory,       // std::bad_alloc, or a memory limit: 53200
    kCanceled,          // interrupted by the user: 57014
    kInternal,          // anything else: XX000
};

class Error : public std::runtime_error {
  public:
    Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const noexcept { return kind_; }

  private:
    ErrorKind kind_;
};

}  // namespace benzer
