// vit-infer CLI: the progress bar of classify and calibrate.
#pragma once

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

namespace vitcli {

// One self-overwriting line on stderr, only when stderr is a terminal (so logs, pipes and
// --json consumers never see it). Redrawn at most every 100 ms; cleared before anything else
// is written to the terminal.
class Progress {
 public:
  Progress(bool enabled, size_t total) : on_(enabled), total_(total), t0_(std::chrono::steady_clock::now()) {}
  ~Progress() { clear(); }

  void update(size_t files_done, int64_t rows_done, bool force = false) {
    if (!on_) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && drawn_ && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - t0_).count();
    int cols = 80;
    winsize ws{};
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) cols = ws.ws_col;
    char tail[96];
    std::snprintf(tail, sizeof tail, " %zu/%zu files  %lld rows  %.1f rows/s", files_done, total_,
                  static_cast<long long>(rows_done), secs > 0 ? rows_done / secs : 0.0);
    const int bar = std::max(10, std::min(40, cols - 1 - static_cast<int>(std::strlen(tail)) - 2));
    const int fill = total_ ? static_cast<int>(static_cast<double>(bar) * files_done / total_) : bar;
    std::string line = "\r[";
    for (int i = 0; i < bar; ++i) line += i < fill ? '#' : '.';
    line += ']';
    line += tail;
    if (static_cast<int>(line.size()) > cols) line.resize(static_cast<size_t>(cols));
    line += "\033[K";
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    drawn_ = true;
  }
  void clear() {
    if (!on_ || !drawn_) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    drawn_ = false;
  }

 private:
  bool on_;
  size_t total_;
  std::chrono::steady_clock::time_point t0_, last_{};
  bool drawn_ = false;
};

}  // namespace vitcli
