// turns.h: at most N threads at a time in a costly section.
//
// Decoding an uploaded picture (features.cpp) and checking a password with
// Argon2id (users.cpp) each take tens of MB while they run; the app has
// dozens of worker threads, so each section lets a few in at a time and
// the others wait their turn.
#pragma once

#include <condition_variable>
#include <mutex>

namespace benzer_app {

class TurnLimit {
  public:
    explicit TurnLimit(int limit) : limit_(limit) {}
    TurnLimit(const TurnLimit&) = delete;
    TurnLimit& operator=(const TurnLimit&) = delete;

    // Holds one of the limit's turns while it lives (waiting for one).
    class Turn {
      public:
        explicit Turn(TurnLimit& limit) : limit_(limit) {
            std::unique_lock<std::mutex> lock(limit_.mu_);
            limit_.cv_.wait(lock, [this] { return limit_.taken_ < limit_.limit_; });
            limit_.taken_++;
        }
        ~Turn() {
            {
                std::lock_guard<std::mutex> lock(limit_.mu_);
                limit_.taken_--;
            }
            limit_.cv_.notify_one();
        }
        Turn(const Turn&) = delete;
        Turn& operator=(const Turn&) = delete;

      private:
        TurnLimit& limit_;
    };

  private:
    std::mutex mu_;
    std::condition_variable cv_;
    int limit_;
    int taken_ = 0;
};

}  // namespace benzer_app
